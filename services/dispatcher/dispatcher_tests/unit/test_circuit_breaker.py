"""The circuit breaker as a state machine: every transition, with time passed in."""

from __future__ import annotations

import random

import pytest

from dispatcher.breaker import BreakerConfig, BreakerState, CircuitBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def breaker(**fields: object) -> CircuitBreaker:
    defaults: dict[str, object] = {
        "failure_threshold": 3,
        "failure_ratio": 0.5,
        "window_s": 10.0,
        "min_calls": 10,
        "cooldown_s": 1.0,
        "max_cooldown_s": 8.0,
        "backoff": 2.0,
    }
    return CircuitBreaker(BreakerConfig(**{**defaults, **fields}))  # type: ignore[arg-type]


def fail(b: CircuitBreaker, now: float, times: int = 1) -> None:
    for _ in range(times):
        assert b.allow(now)
        b.record(now, success=False)


def succeed(b: CircuitBreaker, now: float, times: int = 1) -> None:
    for _ in range(times):
        assert b.allow(now)
        b.record(now, success=True)


def open_breaker(b: CircuitBreaker, now: float = 100.0) -> float:
    fail(b, now, b.config.failure_threshold)
    assert b.state is OPEN
    return now


# -- closed ----------------------------------------------------------------------------------


def test_starts_closed_and_lets_every_call_through() -> None:
    b = breaker()
    assert b.state is CLOSED
    assert all(b.allow(float(t)) for t in range(100))
    assert b.retry_at(5.0) == 5.0
    assert b.retry_in(5.0) == 0.0


def test_opens_after_the_threshold_of_consecutive_failures() -> None:
    b = breaker(failure_threshold=3)
    fail(b, 1.0, 2)
    assert b.state is CLOSED
    assert b.consecutive_failures == 2
    fail(b, 1.1)
    assert b.state is OPEN


def test_a_success_resets_the_consecutive_count() -> None:
    b = breaker(failure_threshold=3)
    fail(b, 1.0, 2)
    succeed(b, 1.0)
    assert b.consecutive_failures == 0
    fail(b, 1.0, 2)
    assert b.state is CLOSED


def test_opens_when_the_failure_ratio_over_the_window_is_reached() -> None:
    b = breaker(failure_threshold=100, failure_ratio=0.5, min_calls=10)
    for i in range(4):  # alternate: never two failures in a row
        succeed(b, 1.0 + i)
        fail(b, 1.0 + i)
    assert b.state is CLOSED  # 8 calls: below min_calls
    succeed(b, 5.0)
    fail(b, 5.0)
    assert b.state is OPEN  # 10 calls, 5 failures


def test_the_ratio_stays_closed_below_it() -> None:
    b = breaker(failure_threshold=100, failure_ratio=0.5, min_calls=10)
    for i in range(20):
        succeed(b, 1.0 + i * 0.1, 2)
        fail(b, 1.0 + i * 0.1)
    assert b.state is CLOSED  # one failure in three


def test_failures_older_than_the_window_no_longer_count() -> None:
    b = breaker(failure_threshold=100, failure_ratio=0.5, min_calls=10, window_s=10.0)
    fail(b, 1.0, 8)  # below min_calls: closed
    succeed(b, 20.0)
    fail(b, 20.0)
    # With the failures of t=1 still counted this would be 9 failures in 10 calls.
    assert b.state is CLOSED
    succeed(b, 20.5, 3)
    fail(b, 21.0, 5)  # now 10 calls in the window, 6 failed
    assert b.state is OPEN


def test_a_clock_stepping_back_does_not_break_the_window() -> None:
    b = breaker(failure_threshold=100, failure_ratio=0.5, min_calls=4)
    succeed(b, 50.0)
    fail(b, 40.0)
    succeed(b, 45.0)
    fail(b, 49.0)
    assert b.state is OPEN


# -- open ------------------------------------------------------------------------------------


def test_denies_calls_while_open_until_the_cooldown_ends() -> None:
    b = breaker(cooldown_s=2.0)
    opened = open_breaker(b)
    assert not b.allow(opened + 0.5)
    assert not b.allow(opened + 1.999)
    assert b.retry_at(opened + 0.5) == opened + 2.0
    assert b.retry_in(opened + 0.5) == pytest.approx(1.5)
    assert b.state is OPEN


def test_results_arriving_while_open_change_nothing() -> None:
    b = breaker(cooldown_s=2.0)
    opened = open_breaker(b)
    b.record(opened + 0.1, success=True)  # a call let through before it opened
    b.record(opened + 1.0, success=False)
    assert b.state is OPEN
    assert b.retry_at(opened + 1.0) == opened + 2.0


# -- half-open -------------------------------------------------------------------------------


def test_after_the_cooldown_lets_one_probe_through() -> None:
    b = breaker(cooldown_s=2.0)
    opened = open_breaker(b)
    assert b.allow(opened + 2.0)
    assert b.state is HALF_OPEN
    assert not b.allow(opened + 2.1)
    assert b.retry_at(opened + 2.1) == pytest.approx(opened + 2.1 + b.config.cooldown_s)


def test_a_successful_probe_closes_and_forgets_old_failures() -> None:
    b = breaker(cooldown_s=1.0, failure_threshold=3)
    opened = open_breaker(b)
    assert b.allow(opened + 1.0)
    b.record(opened + 1.1, success=True)
    assert b.state is CLOSED
    assert b.consecutive_failures == 0
    fail(b, opened + 1.2, 2)
    assert b.state is CLOSED


def test_a_failed_probe_reopens_with_a_growing_cooldown_up_to_the_cap() -> None:
    b = breaker(cooldown_s=1.0, max_cooldown_s=5.0, backoff=2.0)
    now = open_breaker(b)
    waits = []
    for _ in range(5):
        now = b.retry_at(now)
        assert b.allow(now)
        b.record(now, success=False)
        assert b.state is OPEN
        waits.append(b.retry_at(now) - now)
    assert waits == [2.0, 4.0, 5.0, 5.0, 5.0]


def test_the_cooldown_starts_over_after_closing() -> None:
    b = breaker(cooldown_s=1.0, max_cooldown_s=8.0)
    now = open_breaker(b)
    for _ in range(2):  # two failed probes: cool-down 4 s
        now = b.retry_at(now)
        assert b.allow(now)
        b.record(now, success=False)
    now = b.retry_at(now)
    assert b.allow(now)
    b.record(now, success=True)
    assert b.state is CLOSED
    assert b.cooldown_s == 1.0
    open_breaker(b, now)
    assert b.retry_in(now) == 1.0


def test_several_probes_must_all_succeed_to_close() -> None:
    b = breaker(half_open_probes=3)
    now = open_breaker(b) + 1.0
    assert [b.allow(now) for _ in range(4)] == [True, True, True, False]
    b.record(now, success=True)
    b.record(now, success=True)
    assert b.state is HALF_OPEN
    b.record(now, success=True)
    assert b.state is CLOSED


def test_one_failed_probe_of_several_reopens() -> None:
    b = breaker(half_open_probes=3)
    now = open_breaker(b) + 1.0
    assert b.allow(now)
    assert b.allow(now)
    b.record(now, success=True)
    b.record(now, success=False)
    assert b.state is OPEN


def test_a_probe_never_recorded_frees_its_slot_after_the_probe_timeout() -> None:
    b = breaker(probe_timeout_s=5.0, cooldown_s=1.0)
    now = open_breaker(b) + 1.0
    assert b.allow(now)  # the probe's caller crashed and never records
    assert not b.allow(now + 4.9)
    assert b.retry_at(now + 4.9) == pytest.approx(now + 5.0)
    assert b.allow(now + 5.0)
    assert b.state is HALF_OPEN


def test_reports_every_transition() -> None:
    seen: list[tuple[BreakerState, BreakerState, float]] = []
    b = CircuitBreaker(
        failure_threshold=1,
        cooldown_s=1.0,
        on_change=lambda old, new, t: seen.append((old, new, t)),
    )
    fail(b, 10.0)
    assert b.allow(11.0)
    b.record(11.0, success=False)
    assert b.allow(13.0)
    b.record(13.0, success=True)
    assert seen == [
        (CLOSED, OPEN, 10.0),
        (OPEN, HALF_OPEN, 11.0),
        (HALF_OPEN, OPEN, 11.0),
        (OPEN, HALF_OPEN, 13.0),
        (HALF_OPEN, CLOSED, 13.0),
    ]


# -- configuration ---------------------------------------------------------------------------


def test_takes_its_settings_as_keywords() -> None:
    b = CircuitBreaker(failure_threshold=20, cooldown_s=5, max_cooldown_s=60)
    assert b.config == BreakerConfig(failure_threshold=20, cooldown_s=5, max_cooldown_s=60)


def test_refuses_a_config_and_keywords_together() -> None:
    with pytest.raises(TypeError):
        CircuitBreaker(BreakerConfig(), cooldown_s=2)


@pytest.mark.parametrize(
    "fields",
    [
        {"failure_threshold": 0},
        {"failure_ratio": 0},
        {"failure_ratio": 1.5},
        {"window_s": 0},
        {"cooldown_s": 0},
        {"cooldown_s": 10, "max_cooldown_s": 5},
        {"backoff": 0.5},
        {"half_open_probes": 0},
        {"probe_timeout_s": 0},
    ],
)
def test_refuses_nonsense_settings(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**fields)  # type: ignore[arg-type]


# -- invariants over random histories --------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_invariants_hold_over_random_histories(seed: int) -> None:
    rng = random.Random(seed)
    cfg = BreakerConfig(
        failure_threshold=rng.randint(1, 6),
        min_calls=rng.randint(1, 20),
        failure_ratio=rng.uniform(0.1, 1.0),
        cooldown_s=rng.uniform(0.1, 2.0),
        max_cooldown_s=10.0,
        half_open_probes=rng.randint(1, 3),
        probe_timeout_s=3.0,
    )
    b = CircuitBreaker(cfg)
    now = 0.0
    in_flight = 0
    for _ in range(2000):
        now += rng.expovariate(10.0)
        state_before = b.state
        retry_at = b.retry_at(now)
        allowed = b.allow(now)
        assert retry_at >= now
        if state_before is CLOSED:
            assert allowed
        if allowed:
            assert retry_at == now
            in_flight += 1
        assert cfg.cooldown_s <= b.cooldown_s <= cfg.max_cooldown_s
        if in_flight and rng.random() < 0.7:
            b.record(now, success=rng.random() < 0.6)
            in_flight -= 1
        if b.state is OPEN:  # just opened, or still cooling down: nothing goes through
            assert b.retry_at(now) > now
            assert not b.allow(now)
