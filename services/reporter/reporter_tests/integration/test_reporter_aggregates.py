"""The statistics aggregates against the real PostgreSQL: sends per minute, activity per
quarter hour, failures by reason, global totals and the client count are exact, equal a
recount of the message rows, survive redelivery, and do not depend on the arrival order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest

from sms_events.contracts import (
    ClientCreated,
    ClientDeleted,
    Event,
    MailingDeleted,
)
from sms_events.envelope import Envelope

from .reporter_support import (
    aggregates,
    assert_aggregates_consistent,
    assert_global_consistent,
    cancelled,
    commit_once,
    delivered,
    delivered_at,
    envelope,
    failed,
    final_failures,
    handle,
    ids,
    new_id,
    scheduled,
)

T1 = datetime(2031, 5, 4, 10, 0, tzinfo=UTC)


def minute(n: int) -> datetime:
    return T1 + timedelta(minutes=n)


def undelivered_at(
    mailing_id: int, message_id: int, at: datetime, error: str, attempts: int = 1
) -> Event:
    return final_failures(mailing_id, {message_id: (at, error)}, attempts)


async def totals(pool: asyncpg.Pool) -> dict[str, int]:
    return {r["name"]: r["value"] for r in await pool.fetch("SELECT * FROM reporter_totals")}


async def test_sends_per_minute_follow_each_messages_final_send_time(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(5)
    await handle(pool, scheduled(mailing, msgs))
    await handle(
        pool,
        delivered_at(mailing, {msgs[0]: minute(0), msgs[1]: minute(0) + timedelta(seconds=59)}),
        delivered_at(mailing, {msgs[2]: minute(2)}),
        undelivered_at(mailing, msgs[3], minute(3), "HTTP 400: invalid phone"),
    )
    got = await aggregates(pool, mailing)
    assert got["minutes"] == {minute(0): (2, 0), minute(2): (1, 0), minute(3): (0, 1)}
    assert got["quarters"] == {T1: (3, 1, 0, 4)}
    # A delivery outranks the final failure; an earlier delivery of a delivered message moves
    # it to the earlier minute. Both leave the old bucket.
    await handle(
        pool,
        delivered_at(mailing, {msgs[3]: minute(20)}, attempt=2),
        delivered_at(mailing, {msgs[2]: minute(1)}),
    )
    got = await aggregates(pool, mailing)
    assert got["minutes"] == {minute(0): (2, 0), minute(1): (1, 0), minute(20): (1, 0)}
    assert got["quarters"] == {T1: (3, 0, 0, 4), T1 + timedelta(minutes=15): (1, 0, 0, 1)}
    assert got["failures"] == {}  # the final failure became a delivery
    await assert_aggregates_consistent(pool, mailing)


async def test_failures_are_grouped_by_a_normalised_bounded_reason(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(4)
    chatty = "HTTP 400: " + "x" * 300
    await handle(pool, scheduled(mailing, msgs))
    await handle(
        pool,
        failed(mailing, msgs[:2], attempts=1, error="HTTP 503"),
        failed(mailing, msgs[:1], attempts=2, error="HTTP  503 "),
        failed(mailing, msgs[2:3], attempts=1, error="timeout"),
        undelivered_at(mailing, msgs[0], minute(5), "HTTP 400:\n invalid   phone", attempts=3),
        undelivered_at(mailing, msgs[1], minute(5), chatty, attempts=2),
    )
    # A retryable failure reported late, with the count of the final one, leaves the reason.
    await handle(pool, failed(mailing, msgs[:1], attempts=3, error="timeout"))
    got = (await aggregates(pool, mailing))["failures"]
    assert got == {
        "HTTP 503": (3, 0),
        "timeout": (2, 0),
        "HTTP 400: invalid phone": (0, 1),
        chatty[:100]: (0, 1),
    }
    await assert_aggregates_consistent(pool, mailing)


async def test_sql_and_python_normalise_reasons_alike(pool: asyncpg.Pool) -> None:
    from reporter.stats import reason

    samples = [None, "", "   ", "HTTP 503", " a\t\tb\nc\r\fd\ve ", "é" * 150, "ab " * 60]
    samples += ["x" * 99 + " y", "\u00a0nbsp kept\u00a0"]
    for text in samples:
        assert await pool.fetchval("SELECT reporter_reason($1)", text) == reason(text), text


async def test_cancellations_count_in_the_quarter_of_the_cancel(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(3)
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, envelope(cancelled(mailing, msgs[:2]), at=minute(40)))
    await handle(pool, envelope(cancelled(mailing, msgs[:1]), at=minute(10)))  # earlier, late
    await handle(pool, delivered_at(mailing, {msgs[1]: minute(50)}))  # outranks the cancel
    got = await aggregates(pool, mailing)
    assert got["quarters"] == {
        T1: (0, 0, 1, 0),
        T1 + timedelta(minutes=45): (1, 0, 0, 1),
    }
    await assert_aggregates_consistent(pool, mailing)


async def test_a_redelivered_event_changes_no_aggregate(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(4)
    consumer = f"reporter-{uuid4().hex[:8]}"
    events = [
        envelope(scheduled(mailing, msgs)),
        envelope(failed(mailing, msgs[:2], attempts=1, error="HTTP 503")),
        envelope(delivered_at(mailing, {msgs[0]: minute(1)}, attempt=2)),
        envelope(undelivered_at(mailing, msgs[1], minute(2), "HTTP 400: invalid phone", 2)),
        envelope(cancelled(mailing, msgs[2:3]), at=minute(3)),
    ]
    before = await totals(pool)
    await commit_once(pool, consumer, *events)
    once, once_totals = await aggregates(pool, mailing), await totals(pool)
    await commit_once(pool, consumer, *events)
    await commit_once(pool, consumer, *random.sample(events, 3))
    assert await aggregates(pool, mailing) == once
    assert await totals(pool) == once_totals
    moved = {k: once_totals[k] - before[k] for k in ("SC", "DL", "ND", "CA")}
    assert moved == {"SC": 1, "DL": 1, "ND": 1, "CA": 1}
    assert once["failures"] == {"HTTP 503": (2, 0), "HTTP 400: invalid phone": (0, 1)}
    await assert_aggregates_consistent(pool, mailing)


@pytest.mark.parametrize("seed", range(8))
async def test_aggregates_do_not_depend_on_the_arrival_order(pool: asyncpg.Pool, seed: int) -> None:
    rnd = random.Random(seed)
    n = rnd.randint(3, 20)
    steps = []
    for i in range(rnd.randint(5, 40)):
        picked = rnd.sample(range(n), rnd.randint(1, min(4, n)))
        steps.append((rnd.choice("SSDDFFUC"), picked, rnd.randint(1, 4), i))

    def build(mailing: int, base: int) -> list[Envelope]:
        out = []
        for kind, picked, k, i in steps:
            msgs, at = [base + p for p in picked], minute(7 * i)
            event: Event
            if kind == "S":
                event = scheduled(mailing, msgs)
            elif kind == "D":
                sends = {base + p: at + timedelta(seconds=13 * p) for p in picked}
                event = delivered_at(mailing, sends, attempt=k)
            elif kind == "F":
                event = failed(mailing, msgs, attempts=k, error=f"HTTP 50{k}")
            elif kind == "U":
                event = undelivered_at(mailing, msgs[0], at, f"HTTP 40{k}", attempts=k)
            else:
                event = cancelled(mailing, msgs)
            out.append(envelope(event, at=at))  # the same event time in both runs
        return out

    in_order, shuffled = new_id(), new_id()
    events_a, events_b = build(in_order, new_id()), build(shuffled, new_id())
    rnd.shuffle(events_b)
    for mailing, events in ((in_order, events_a), (shuffled, events_b)):
        rest = events
        while rest:
            size = rnd.randint(1, 6)
            batch, rest = rest[:size], rest[size:]
            await handle(pool, *batch)
            await assert_aggregates_consistent(pool, mailing)
    a, b = await aggregates(pool, in_order), await aggregates(pool, shuffled)
    assert a["minutes"] == b["minutes"]
    assert a["failures"] == b["failures"]
    # Attempts land in the quarter of the report that raised the count: the totals agree.
    assert {q: v[:3] for q, v in a["quarters"].items() if any(v[:3])} == {
        q: v[:3] for q, v in b["quarters"].items() if any(v[:3])
    }
    assert sum(v[3] for v in a["quarters"].values()) == sum(v[3] for v in b["quarters"].values())


async def test_a_deleted_mailing_leaves_the_global_figures(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(4)
    before = await totals(pool)
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, envelope(cancelled(mailing, msgs[:1]), at=minute(600)))
    await handle(pool, failed(mailing, msgs[1:2], attempts=1, error="timeout"))
    assert (await totals(pool))["SC"] - before["SC"] == 3
    quarter = T1 + timedelta(hours=10)
    assert (
        await pool.fetchval("SELECT cancelled FROM reporter_quarters WHERE quarter = $1", quarter)
        == 1
    )
    await handle(pool, MailingDeleted(mailing_id=mailing, deleted_at=minute(601)))
    after = await totals(pool)
    assert {k: after[k] - before[k] for k in ("SC", "DL", "ND", "CA")} == dict.fromkeys(
        ("SC", "DL", "ND", "CA"), 0
    )
    assert await aggregates(pool, mailing) == {"minutes": {}, "quarters": {}, "failures": {}}
    assert (
        await pool.fetchval("SELECT cancelled FROM reporter_quarters WHERE quarter = $1", quarter)
        == 0
    )
    await handle(pool, delivered(mailing, msgs[2:3]))  # late: the tombstone keeps it out
    assert await totals(pool) == after
    await assert_global_consistent(pool)


def client_created(client_id: int) -> ClientCreated:
    return ClientCreated(
        client_id=client_id,
        phone="79991234567",
        operator_code="999",
        time_zone="UTC",
        updated_at=T1,
    )


def client_deleted(client_id: int) -> ClientDeleted:
    return ClientDeleted(client_id=client_id, deleted_at=T1 + timedelta(hours=1))


async def test_the_client_count_is_exact_under_redelivery_and_any_order(
    pool: asyncpg.Pool,
) -> None:
    consumer = f"reporter-{uuid4().hex[:8]}"
    a, b, c, d = (new_id() for _ in range(4))
    base = (await totals(pool))["clients"]

    async def count() -> int:
        return (await totals(pool))["clients"] - base

    created_a = envelope(client_created(a))
    await commit_once(pool, consumer, created_a, client_created(b), client_created(c))
    assert await count() == 3
    await commit_once(pool, consumer, created_a)  # redelivered: filtered
    await handle(pool, client_created(a))  # the same fact in another event
    assert await count() == 3
    deleted_a = envelope(client_deleted(a))
    await commit_once(pool, consumer, deleted_a)
    assert await count() == 2
    # created -> deleted -> created redelivered (by another consumer name: no guard)
    await handle(pool, created_a, deleted_a, created_a)
    assert await count() == 2
    # deleted seen before created: never counted
    await handle(pool, client_deleted(d))
    await handle(pool, client_created(d))
    assert await count() == 2
    # created and deleted in one batch
    e = new_id()
    await handle(pool, client_deleted(e), client_created(e))
    assert await count() == 2
    await assert_global_consistent(pool)
