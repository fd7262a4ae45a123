"""The projection's pure rules: the status lattice, what each fact does to a message, and
counter deltas that always match a recount of the rows."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reporter.domain import (
    ClientValues,
    Fact,
    Kind,
    MailingDelta,
    MailingPatch,
    MessageState,
    Status,
    apply,
    apply_general,
    join,
    project,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
MAILING = 7
# Every fact below is recorded at T0: the message's event times.
AT_T0: dict[str, Any] = {"created_at": T0, "updated_at": T0}
DUE_T0: dict[str, Any] = {**AT_T0, "first_due_at": T0}  # scheduled for T0 first


def fact(kind: Kind, message_id: int = 1, **kw: object) -> Fact:
    return Fact(kind, message_id, MAILING, kw.pop("event_time", T0), **kw)  # type: ignore[arg-type]


def run(*facts: Fact, start: MessageState | None = None) -> MessageState:
    state = start
    for f in facts:
        state = apply(state, f)
    assert state is not None
    return state


# --- the lattice ---------------------------------------------------------------------------------


def test_status_precedence_is_delivered_over_undelivered_over_cancelled_over_scheduled() -> None:
    order = [Status.SCHEDULED, Status.WITHDRAWN, Status.CANCELLED, Status.UNDELIVERED]
    order.append(Status.DELIVERED)
    for low, high in itertools.pairwise(order):
        assert join(low, high) is high
        assert join(high, low) is high
    assert join(None, Status.CANCELLED) is Status.CANCELLED


def test_late_cancel_does_not_undo_a_delivery() -> None:
    state = run(
        fact(Kind.SCHEDULED, client_id=5, at=T0),
        fact(Kind.DELIVERED, at=T0 + timedelta(minutes=1), attempts=1),
        fact(Kind.CANCELLED),
    )
    assert state.status is Status.DELIVERED
    assert state.datetime_send == T0 + timedelta(minutes=1)


def test_delivery_that_raced_a_cancel_wins() -> None:
    state = run(
        fact(Kind.SCHEDULED, client_id=5, at=T0),
        fact(Kind.CANCELLED),
        fact(Kind.DELIVERED, at=T0 + timedelta(minutes=1), attempts=1),
    )
    assert state.status is Status.DELIVERED


# --- each fact -----------------------------------------------------------------------------------


def test_scheduled_creates_a_scheduled_message_due_at_its_time() -> None:
    state = run(fact(Kind.SCHEDULED, client_id=5, at=T0))
    assert state == MessageState(1, MAILING, 5, Status.SCHEDULED, T0, 0, None, **DUE_T0)


def test_rescheduled_moves_the_due_time() -> None:
    later = T0 + timedelta(hours=2)
    state = run(fact(Kind.SCHEDULED, client_id=5, at=T0), fact(Kind.RESCHEDULED, at=later))
    assert (state.status, state.datetime_send) == (Status.SCHEDULED, later)


def test_failed_attempt_keeps_it_scheduled_with_attempts_error_and_retry_time() -> None:
    retry = T0 + timedelta(seconds=30)
    state = run(
        fact(Kind.SCHEDULED, client_id=5, at=T0),
        fact(Kind.ATTEMPT_FAILED, at=retry, attempts=1, error="timeout"),
    )
    assert state == MessageState(1, MAILING, 5, Status.SCHEDULED, retry, 1, "timeout", **DUE_T0)


def test_undelivered_records_the_final_error_and_attempts() -> None:
    failed = T0 + timedelta(minutes=5)
    state = run(
        fact(Kind.SCHEDULED, client_id=5, at=T0),
        fact(Kind.ATTEMPT_FAILED, at=T0, attempts=1, error="timeout"),
        fact(Kind.UNDELIVERED, at=failed, attempts=2, error="rejected: 400"),
    )
    assert state == MessageState(
        1, MAILING, 5, Status.UNDELIVERED, failed, 2, "rejected: 400", **DUE_T0
    )


def test_delivered_after_retries_keeps_the_last_error_and_counts_every_attempt() -> None:
    sent = T0 + timedelta(minutes=1)
    state = run(
        fact(Kind.SCHEDULED, client_id=5, at=T0),
        fact(Kind.ATTEMPT_FAILED, at=T0, attempts=1, error="timeout"),
        fact(Kind.DELIVERED, at=sent, attempts=2),
    )
    assert state == MessageState(1, MAILING, 5, Status.DELIVERED, sent, 2, "timeout", **DUE_T0)


def test_cancel_keeps_the_due_time() -> None:
    state = run(fact(Kind.SCHEDULED, client_id=5, at=T0), fact(Kind.CANCELLED))
    assert (state.status, state.datetime_send) == (Status.CANCELLED, T0)


def test_withdrawn_message_is_invisible_and_a_late_schedule_does_not_revive_it() -> None:
    state = run(fact(Kind.SCHEDULED, client_id=5, at=T0), fact(Kind.WITHDRAWN))
    assert not state.visible
    assert not run(fact(Kind.SCHEDULED, client_id=5, at=T0), start=state).visible


def test_withdrawal_does_not_touch_a_message_already_settled() -> None:
    state = run(fact(Kind.DELIVERED, at=T0, attempts=1), fact(Kind.WITHDRAWN))
    assert state.status is Status.DELIVERED


def test_event_before_the_schedule_creates_the_row_and_the_schedule_fills_in_the_client() -> None:
    sent = T0 + timedelta(minutes=1)
    early = run(fact(Kind.DELIVERED, at=sent, attempts=1))
    assert early == MessageState(1, MAILING, None, Status.DELIVERED, sent, 1, None, **AT_T0)
    state = run(fact(Kind.SCHEDULED, client_id=5, at=T0), start=early)
    assert state == MessageState(1, MAILING, 5, Status.DELIVERED, sent, 1, None, **DUE_T0)


def test_event_times_are_the_first_fact_and_the_last_fact_that_changed_it() -> None:
    t1, t2, t3 = (T0 + timedelta(minutes=m) for m in (1, 2, 3))
    state = run(
        fact(Kind.SCHEDULED, client_id=5, at=T0, event_time=t1),
        fact(Kind.DELIVERED, at=t2, attempts=1, event_time=t2),
        fact(Kind.CANCELLED, event_time=t3),  # changes nothing: a delivery outranks it
        fact(Kind.SCHEDULED, client_id=5, at=T0, event_time=T0),  # redelivered, older
    )
    assert (state.created_at, state.updated_at) == (T0, t2)


def test_two_deliveries_keep_the_first_send_time() -> None:
    first, second = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    a = run(fact(Kind.DELIVERED, at=second, attempts=2), fact(Kind.DELIVERED, at=first, attempts=1))
    b = run(fact(Kind.DELIVERED, at=first, attempts=1), fact(Kind.DELIVERED, at=second, attempts=2))
    assert a.datetime_send == b.datetime_send == first


# --- batches and deltas --------------------------------------------------------------------------

KINDS = list(Kind)
facts_strategy = st.lists(
    st.builds(
        lambda kind, mid, minutes, attempts: Fact(
            kind,
            mid,
            MAILING + mid % 2,
            T0 + timedelta(minutes=minutes),
            client_id=mid * 10 if kind in (Kind.SCHEDULED, Kind.RESCHEDULED) else None,
            at=None
            if kind in (Kind.CANCELLED, Kind.WITHDRAWN)
            else T0 + timedelta(minutes=minutes),
            attempts=attempts if kind not in (Kind.SCHEDULED, Kind.RESCHEDULED) else 0,
            error="boom" if kind in (Kind.ATTEMPT_FAILED, Kind.UNDELIVERED) else None,
        ),
        st.sampled_from(KINDS),
        st.integers(1, 6),
        st.integers(0, 100),
        st.integers(0, 4),
    ),
    max_size=40,
)


def recount(states: dict[int, MessageState]) -> dict[int, Counter[str]]:
    out: dict[int, Counter[str]] = {}
    for s in states.values():
        if s.visible:
            c = out.setdefault(s.mailing_id, Counter())
            c["created"] += 1
            c[s.status.value] += 1
            c["attempts"] += s.attempts
    return out


def add(total: dict[int, Counter[str]], deltas: dict[int, MailingDelta]) -> None:
    for mailing_id, d in deltas.items():
        c = total.setdefault(mailing_id, Counter())
        c["created"] += d.created
        c["SC"] += d.scheduled
        c["DL"] += d.delivered
        c["ND"] += d.undelivered
        c["CA"] += d.cancelled
        c["attempts"] += d.attempts


@given(facts_strategy, st.lists(st.integers(1, 10), min_size=1, max_size=8))
def test_summed_deltas_always_equal_a_recount_of_the_rows(
    facts: list[Fact], cuts: list[int]
) -> None:
    stored: dict[int, MessageState] = {}
    counters: dict[int, Counter[str]] = {}
    rest = facts
    i = 0
    while rest:  # the facts arrive in batches of varying size
        size, i = cuts[i % len(cuts)], i + 1
        batch, rest = rest[:size], rest[size:]
        outcome = project(stored, batch)
        for _, new in outcome.changes:
            stored[new.message_id] = new
        add(counters, outcome.mailings)
        expected = recount(stored)
        for mailing_id in counters.keys() | expected.keys():
            got = +counters.get(mailing_id, Counter())  # unary + drops zero entries
            assert got == expected.get(mailing_id, Counter())


@given(facts_strategy, st.randoms(use_true_random=False))
def test_final_status_and_attempts_do_not_depend_on_arrival_order(
    facts: list[Fact], rnd: object
) -> None:
    shuffled = list(facts)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a = {s.message_id: (s.status, s.attempts) for _, s in project({}, facts).changes}
    b = {s.message_id: (s.status, s.attempts) for _, s in project({}, shuffled).changes}
    assert a == b


def test_project_reports_only_what_changed_and_every_mailing_it_heard_of() -> None:
    stored = {1: run(fact(Kind.DELIVERED, at=T0, attempts=1))}
    outcome = project(stored, [fact(Kind.CANCELLED, event_time=T0 + timedelta(hours=1))])
    assert outcome.changes == []
    assert outcome.mailings[MAILING].last_event_at == T0 + timedelta(hours=1)
    assert outcome.mailings[MAILING].created == 0


def test_delta_tracks_first_and_last_delivery() -> None:
    facts = [
        fact(Kind.DELIVERED, 1, at=T0 + timedelta(minutes=3), attempts=1),
        fact(Kind.DELIVERED, 2, at=T0 + timedelta(minutes=1), attempts=1),
        fact(Kind.UNDELIVERED, 3, at=T0 + timedelta(minutes=9), attempts=1, error="x"),
    ]
    d = project({}, facts).mailings[MAILING]
    assert (d.first_sent_at, d.last_sent_at) == (
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=3),
    )
    assert (d.created, d.delivered, d.undelivered, d.attempts) == (3, 2, 1, 3)


# --- mailing events ------------------------------------------------------------------------------


def test_newest_mailing_state_wins_whatever_the_order() -> None:
    patch = MailingPatch(1)
    patch.state(T0 + timedelta(days=2), T0 + timedelta(days=3), T0 + timedelta(hours=1), 2)
    patch.state(T0, T0 + timedelta(days=1), T0, 1)  # older, arrives late
    assert (patch.datetime_start, patch.datetime_end) == (
        T0 + timedelta(days=2),
        T0 + timedelta(days=3),
    )


def test_pause_and_resume_follow_their_times_not_their_arrival() -> None:
    patch = MailingPatch(1)
    patch.pause(False, T0 + timedelta(minutes=5))  # resumed
    patch.pause(True, T0)  # the pause before it, late
    assert patch.paused is False
    patch.cancel(T0 + timedelta(hours=1))
    patch.cancel(T0 + timedelta(minutes=30))
    assert patch.cancelled_at == T0 + timedelta(minutes=30)


clients = st.builds(
    ClientValues, st.sampled_from(["900", "901"]), st.none() | st.just("vip"), st.just("UTC")
)
any_fact = st.builds(
    Fact,
    st.sampled_from(KINDS),
    st.integers(1, 6),
    st.just(MAILING),
    st.datetimes(timezones=st.just(UTC)),
    client_id=st.none() | st.integers(1, 60),
    at=st.none() | st.datetimes(timezones=st.just(UTC)),
    attempts=st.integers(-1, 4),
    error=st.none() | st.sampled_from(["boom", "HTTP 503", "opted_out"]),
    client=st.none() | clients,
)


@given(any_fact)
def test_a_first_fact_leaves_what_the_general_rule_gives_with_no_old_state(f: Fact) -> None:
    # apply() takes a shortcut for a message's first fact (every message takes it once).
    assert apply(None, f) == apply_general(None, f)
