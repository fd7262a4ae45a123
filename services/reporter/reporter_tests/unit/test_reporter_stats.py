"""The statistics rules: buckets, reasons, the mailing state, and batch tallies that always
sum to what the final message states contribute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from reporter.domain import Fact, Kind, MessageState, Status
from reporter.stats import (
    Activity,
    MailingState,
    Tally,
    delivery_rate,
    floor_minute,
    floor_quarter,
    mailing_state,
    reason,
    tally_batch,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def test_buckets_are_utc_minutes_and_quarter_hours() -> None:
    local = datetime(2025, 3, 1, 14, 52, 31, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert floor_minute(local) == datetime(2025, 3, 1, 9, 22, tzinfo=UTC)
    assert floor_quarter(local) == datetime(2025, 3, 1, 9, 15, tzinfo=UTC)


def test_reasons_fold_blanks_and_are_bounded() -> None:
    assert reason(" HTTP  400:\n invalid\tphone ") == "HTTP 400: invalid phone"
    assert reason(None) == reason("  ") == "unknown"
    assert reason("x" * 500) == "x" * 100
    assert reason("x" * 99 + " y") == "x" * 99


def test_delivery_rate_counts_final_outcomes_only() -> None:
    assert delivery_rate(0, 0) is None
    assert delivery_rate(2, 1) == 0.6667
    assert delivery_rate(5, 0) == 1.0


def state(now: datetime, **kw: object) -> MailingState:
    args: dict[str, object] = {
        "datetime_start": T0,
        "datetime_end": T0 + timedelta(days=1),
        "paused": False,
        "cancelled": False,
        "resolved": True,
        "scheduled_messages": 3,
    }
    args.update(kw)
    return mailing_state(now, **args)  # type: ignore[arg-type]


def test_mailing_state_rule() -> None:
    before, during, after = T0 - timedelta(hours=1), T0 + timedelta(hours=1), T0 + timedelta(days=2)
    assert state(before) is MailingState.SCHEDULED
    assert state(during) is MailingState.RUNNING
    assert state(after) is MailingState.FINISHED
    assert state(during, scheduled_messages=0) is MailingState.FINISHED
    assert state(during, scheduled_messages=0, resolved=False) is MailingState.RUNNING
    assert state(before, scheduled_messages=0) is MailingState.SCHEDULED  # not started yet
    assert state(during, paused=True) is MailingState.PAUSED
    assert state(before, paused=True) is MailingState.PAUSED
    assert state(after, paused=True) is MailingState.FINISHED
    assert state(after, cancelled=True, paused=True) is MailingState.CANCELLED
    assert state(during, datetime_start=None, datetime_end=None) is MailingState.RUNNING


facts_strategy = st.lists(
    st.builds(
        lambda kind, mid, minutes, attempts, err: Fact(
            kind,
            mid,
            7,
            T0 + timedelta(minutes=minutes),
            client_id=mid * 10 if kind in (Kind.SCHEDULED, Kind.RESCHEDULED) else None,
            at=None
            if kind in (Kind.CANCELLED, Kind.WITHDRAWN)
            else T0 + timedelta(minutes=minutes),
            attempts=attempts if kind not in (Kind.SCHEDULED, Kind.RESCHEDULED) else 0,
            error=f"e{err}" if kind in (Kind.ATTEMPT_FAILED, Kind.UNDELIVERED) else None,
        ),
        st.sampled_from(list(Kind)),
        st.integers(1, 6),
        st.integers(0, 100),
        st.integers(0, 4),
        st.integers(0, 2),
    ),
    max_size=40,
)


def contributions(states: dict[int, MessageState]) -> Tally:
    t = Tally()
    for s in states.values():
        t.state(s, +1)
    return t


def nonzero(t: Tally) -> tuple[dict[object, object], ...]:
    return (
        {k: tuple(v) for k, v in t.minutes.items() if any(v)},
        {k: (a.delivered, a.failed, a.cancelled) for k, a in t.quarters.items()
         if a.delivered or a.failed or a.cancelled},
        {k: v[1] for k, v in t.failures.items() if v[1]},
    )  # fmt: skip


@given(facts_strategy, st.lists(st.integers(1, 10), min_size=1, max_size=8))
def test_summed_tallies_equal_what_the_final_states_contribute(
    facts: list[Fact], cuts: list[int]
) -> None:
    stored: dict[int, MessageState] = {}
    total = Tally()
    rest, i, attempts_failed = facts, 0, 0
    while rest:
        size, i = cuts[i % len(cuts)], i + 1
        batch, rest = rest[:size], rest[size:]
        outcome, tally = tally_batch(stored, batch)
        for _, new in outcome.changes:
            stored[new.message_id] = new
        for k, v in tally.minutes.items():
            m = total.minutes.setdefault(k, [0, 0])
            m[0], m[1] = m[0] + v[0], m[1] + v[1]
        for k, a in tally.quarters.items():
            total.quarters.setdefault(k, Activity()).add(a)
        for key, v in tally.failures.items():
            f = total.failures.setdefault(key, [0, 0])
            f[0], f[1] = f[0] + v[0], f[1] + v[1]
            attempts_failed += v[0]
    assert nonzero(total) == nonzero(contributions(stored))
    visible_attempts = sum(s.attempts for s in stored.values() if s.visible)
    assert sum(a.attempts for a in total.quarters.values()) == visible_attempts
    assert attempts_failed == sum(1 for f in facts if f.kind is Kind.ATTEMPT_FAILED)


@given(facts_strategy, st.randoms(use_true_random=False))
def test_final_contributions_do_not_depend_on_the_order(facts: list[Fact], rnd: object) -> None:
    shuffled = list(facts)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a = {new.message_id: new for _, new in tally_batch({}, facts)[0].changes}
    b = {new.message_id: new for _, new in tally_batch({}, shuffled)[0].changes}
    assert nonzero(contributions(a)) == nonzero(contributions(b))


def test_the_final_failure_reason_is_not_replaced_by_a_late_retryable_one() -> None:
    facts = [
        Fact(Kind.UNDELIVERED, 1, 7, T0, at=T0, attempts=3, error="HTTP 400: bad"),
        Fact(Kind.ATTEMPT_FAILED, 1, 7, T0, at=T0, attempts=3, error="HTTP 503"),
    ]
    for order in (facts, facts[::-1]):
        (_, new), = tally_batch({}, order)[0].changes  # fmt: skip
        assert (new.status, new.last_error) == (Status.UNDELIVERED, "HTTP 400: bad")
