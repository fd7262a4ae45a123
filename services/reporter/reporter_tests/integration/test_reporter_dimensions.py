"""Statistics by dimension and delivery latency on the real database: a varied history (old
events without client values, retries, a late delivery over a failure, cancels, withdrawals, a
reschedule with other values, a redelivered batch, a deleted mailing), checked after every
batch against a GROUP BY over reporter_messages, and read back as the /stats answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from reporter import queries
from reporter.breakdown import latency_bucket, upper_edge
from sms_events.contracts import MailingDeleted, MessagesRescheduled, ScheduledMessage

from .reporter_support import (
    T0,
    assert_aggregates_consistent,
    breakdown,
    cancelled,
    client_values,
    commit_once,
    delivered_at,
    envelope,
    failed,
    final_failures,
    handle,
    ids,
    new_id,
    scheduled,
    withdrawn,
)


def rescheduled_elsewhere(mailing_id: int, message_ids: list[int]) -> MessagesRescheduled:
    """A reschedule carrying other client values (as no scheduler sends): they must not win."""
    return MessagesRescheduled(
        mailing_id=mailing_id,
        batch_id=f"r{new_id()}",
        messages=[
            ScheduledMessage(
                message_id=m,
                client_id=1,
                due_at=T0 + timedelta(minutes=10),
                operator_code="000",
                tag="moved",
                time_zone="UTC",
            )
            for m in message_ids
        ],
    )


def _edge(seconds: float) -> float:
    return round(upper_edge(latency_bucket(seconds)) or 0, 3)


async def test_breakdown_follows_every_status_change_and_equals_a_recount(
    pool: asyncpg.Pool,
) -> None:
    mailing, msgs = new_id(), ids(12)
    base = msgs[0]
    values = {m: client_values(m - base) for m in msgs}
    consumer = f"test-{new_id()}"
    # Two messages from before events carried the client: unknown.
    first = envelope(scheduled(mailing, msgs[:10], client=lambda m: values[m]))
    steps: list[list[Any]] = [
        [first, scheduled(mailing, msgs[10:])],
        [first],  # redelivered: the consumer's guard drops it
        [rescheduled_elsewhere(mailing, msgs[:2])],
        [failed(mailing, msgs[:4], attempts=1, error="HTTP 503")],
        [delivered_at(mailing, {m: T0 + timedelta(seconds=20) for m in msgs[:3]}, attempt=2)],
        [final_failures(mailing, {msgs[3]: (T0 + timedelta(minutes=3), "HTTP 400")}, 2)],
        # A late delivery outranks the failure: the message moves from ND to DL.
        [delivered_at(mailing, {msgs[3]: T0 + timedelta(seconds=90)})],
        [cancelled(mailing, msgs[4:6]), withdrawn(mailing, msgs[6:8])],
        [delivered_at(mailing, {msgs[10]: T0 + timedelta(seconds=1)})],
    ]
    for batch in steps:
        await commit_once(pool, consumer, *batch)
        await assert_aggregates_consistent(pool, mailing)

    stats = await queries.mailing_stats(pool, mailing)
    assert stats is not None
    counted = {
        (dim, b["value"]): b["messages"]
        for dim in ("operator_code", "tag", "time_zone")
        for b in stats["by_dimension"][dim]
    }

    def expect(dim: str, value: str | None) -> dict[str, int]:
        out = {"SC": 0, "DL": 0, "ND": 0, "CA": 0}
        for m in msgs[:10]:
            if m in msgs[6:8]:
                continue  # withdrawn: nowhere
            if values[m][dim] == value:
                status = "DL" if m in msgs[:4] else "CA" if m in msgs[4:6] else "SC"
                out[status] += 1
        return out

    for dim in ("operator_code", "tag", "time_zone"):
        for value in {values[m][dim] for m in msgs[:10]}:
            assert counted[(dim, value)] == expect(dim, value), (dim, value)
    assert stats["by_dimension"]["unknown"] == {"SC": 1, "DL": 1, "ND": 0, "CA": 0}
    assert ("operator_code", "000") not in counted  # the reschedule's values never win
    # Five delivered: 20 s (three), 90 s, 1 s after their first due time (T0).
    assert stats["latency"] == {
        "settled": 5,
        "p50_s": _edge(20),
        "p90_s": _edge(90),
        "p99_s": _edge(90),
        "max_s": _edge(90),
        "resolution": 0.259,
    }
    # The list order: most messages first.
    totals = [sum(b["messages"].values()) for b in stats["by_dimension"]["time_zone"]]
    assert totals == sorted(totals, reverse=True)


async def test_a_deleted_mailing_leaves_no_breakdown_rows(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(3)
    await handle(pool, scheduled(mailing, msgs, client=client_values))
    await handle(pool, delivered_at(mailing, dict.fromkeys(msgs, T0 + timedelta(seconds=5))))
    assert (await breakdown(pool, mailing))["latency"] == {latency_bucket(5): 3}
    await handle(pool, MailingDeleted(mailing_id=mailing, deleted_at=T0 + timedelta(hours=1)))
    assert await breakdown(pool, mailing) == {"dimensions": {}, "latency": {}}
