"""When a failed send is tried again: capped exponential backoff with full jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.backoff import retry_delay, retry_due

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@given(
    attempt=st.integers(1, 2000),
    base_s=st.floats(0, 600),
    cap_s=st.floats(0, 86_400),
    seed=st.integers(0, 2**32),
)
def test_delay_is_between_zero_and_the_capped_backoff(
    attempt: int, base_s: float, cap_s: float, seed: int
) -> None:
    due = retry_due(NOW, attempt, base_s, cap_s, random.Random(seed), None)
    delay = (due - NOW).total_seconds()
    ceiling = min(cap_s, base_s * 2 ** min(attempt - 1, 1000))
    assert 0 <= delay <= ceiling + 1e-6  # timedelta keeps microseconds
    assert delay <= cap_s + 1e-6


@given(
    attempt=st.integers(1, 50),
    base_s=st.floats(0, 600),
    cap_s=st.floats(0, 3600),
    retry_after_s=st.floats(0, 86_400),
    seed=st.integers(0, 2**32),
)
def test_retry_after_is_a_lower_bound(
    attempt: int, base_s: float, cap_s: float, retry_after_s: float, seed: int
) -> None:
    delay = retry_delay(attempt, base_s, cap_s, random.Random(seed), retry_after_s)
    assert delay >= retry_after_s
    assert delay <= max(retry_after_s, cap_s)


def test_retry_after_longer_than_the_cap_is_still_honoured() -> None:
    due = retry_due(NOW, 1, 1.0, 60.0, random.Random(1), retry_after_s=3600.0)
    assert due == NOW + timedelta(hours=1)


def test_first_retry_waits_at_most_the_base_delay() -> None:
    delays = [retry_delay(1, 2.0, 300.0, random.Random(seed)) for seed in range(200)]
    assert all(0 <= delay <= 2.0 for delay in delays)


def test_backoff_ceiling_doubles_with_each_attempt_until_the_cap() -> None:
    rng = random.Random(7)
    delays = {
        attempt: [retry_delay(attempt, 1.0, 10.0, rng) for _ in range(500)]
        for attempt in (1, 2, 3, 4, 5)
    }
    assert max(delays[1]) <= 1.0
    assert 1.0 < max(delays[2]) <= 2.0
    assert 2.0 < max(delays[3]) <= 4.0
    assert 4.0 < max(delays[4]) <= 8.0
    assert 8.0 < max(delays[5]) <= 10.0


def test_jitter_spreads_retries_of_the_same_attempt() -> None:
    rng = random.Random(3)
    assert len({retry_delay(6, 1.0, 60.0, rng) for _ in range(20)}) == 20


def test_same_seed_gives_the_same_due_time() -> None:
    first = retry_due(NOW, 3, 1.0, 60.0, random.Random(42), None)
    assert first == retry_due(NOW, 3, 1.0, 60.0, random.Random(42), None)


def test_due_time_is_in_utc() -> None:
    now = datetime(2026, 5, 1, 15, 0, tzinfo=timezone(timedelta(hours=3)))
    due = retry_due(now, 1, 0.0, 0.0, random.Random(0), None)
    assert due == now
    assert due.tzinfo is UTC


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_are_counted_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_due(NOW, attempt, 1.0, 60.0, random.Random(0), None)


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        retry_due(datetime(2026, 5, 1), 1, 1.0, 60.0, random.Random(0), None)
