"""How long ``sms-replay`` takes over a large history: N clients imported, one mailing to all of
them, every message scheduled and handed over, 5% failing once and retried (rescheduled and
handed over again, as the scheduler records it), every message delivered. The
history is appended straight into a fresh database with the event store's own append code (no
services run), then each registered projection is rebuilt and timed.

    .venv/bin/python scripts/bench_replay.py            # N=1000000
    N=100000 .venv/bin/python scripts/bench_replay.py
    ONLY=reporter .venv/bin/python scripts/bench_replay.py   # one projection

Uses TEST_DATABASE_URL (a database of its own, dropped at the end)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from sms_events.batches import chunks
from sms_events.contracts import (
    ClientsImported,
    DeliveredMessage,
    DueMessage,
    Event,
    FailedAttempt,
    ImportedClient,
    MailingAudienceResolved,
    MailingScheduled,
    MessageAttemptsFailed,
    MessagesDelivered,
    MessagesDue,
    MessagesRescheduled,
    MessagesScheduled,
    ScheduledMessage,
)
from sms_events.db import create_pool
from sms_events.logs import configure_logging
from sms_events.replay import Progress, projections, replay
from sms_events.runtime import run_on_fast_loop
from sms_events.store import EventStore, append_new_streams, appending
from sms_events.testing.environment import TestEnvironment

BATCH = 500  # messages or clients per event, as the services write them
DUE_BATCH = 200  # messages per messages.due, as the scheduler's timer writes them
EVENTS_PER_TRANSACTION = 40


def history(n: int, mailing_id: int = 1) -> list[list[Event]]:
    """The events, grouped as they are appended (one group per transaction)."""
    t0 = datetime(2030, 1, 1, 9, tzinfo=UTC)
    ids = range(1, n + 1)
    imports: list[Event] = [
        ClientsImported(
            batch_id=uuid4().hex,
            imported_at=t0,
            clients=[
                ImportedClient(
                    client_id=i,
                    version=1,
                    created=True,
                    phone=f"7{i:010d}",
                    operator_code=f"{i:010d}"[:3],
                    tag="bench",
                    time_zone="UTC",
                )
                for i in part
            ],
        )
        for part in chunks(ids, BATCH)
    ]
    start = t0 + timedelta(hours=1)
    scheduled: list[Event] = [
        MessagesScheduled(
            mailing_id=mailing_id,
            batch_id=uuid4().hex,
            messages=[ScheduledMessage(message_id=i, client_id=i, due_at=start) for i in part],
        )
        for part in chunks(ids, BATCH)
    ]
    end = start + timedelta(days=1)
    retried = range(1, n + 1, 20)
    retry_at = start + timedelta(seconds=30)

    def due(message_ids: Sequence[int], attempt: int, at: datetime) -> list[Event]:
        return [
            MessagesDue(
                mailing_id=mailing_id,
                batch_id=uuid4().hex,
                text="Bench",
                not_after=end,
                handed_over_at=at,
                messages=[
                    DueMessage(
                        message_id=i,
                        client_id=i,
                        phone=f"7{i:010d}",
                        attempt=attempt,
                        due_at=at,
                        closes_at=end,
                    )
                    for i in part
                ],
            )
            for part in chunks(message_ids, DUE_BATCH)
        ]

    failed: list[Event] = [
        MessageAttemptsFailed(
            mailing_id=mailing_id,
            batch_id=uuid4().hex,
            messages=[
                FailedAttempt(
                    message_id=i,
                    attempts=1,
                    error="HTTP 503",
                    retry_at=retry_at,
                    failed_at=start,
                    status=503,
                )
                for i in part
            ],
        )
        for part in chunks(retried, BATCH)
    ]
    rescheduled: list[Event] = [
        MessagesRescheduled(
            mailing_id=mailing_id,
            batch_id=uuid4().hex,
            messages=[
                ScheduledMessage(
                    message_id=i,
                    client_id=i,
                    due_at=retry_at,
                    closes_at=end,
                    attempts=1,
                    last_error="HTTP 503",
                )
                for i in part
            ],
        )
        for part in chunks(retried, BATCH)
    ]
    delivered: list[Event] = [
        MessagesDelivered(
            mailing_id=mailing_id,
            batch_id=uuid4().hex,
            messages=[
                DeliveredMessage(
                    message_id=i,
                    attempt=2 if i % 20 == 1 else 1,
                    sent_at=start + timedelta(seconds=i // 5000),
                    status=200,
                )
                for i in part
            ],
        )
        for part in chunks(ids, BATCH)
    ]
    mailing = MailingScheduled(mailing_id=mailing_id, text="Bench", datetime_start=start,
                               datetime_end=end, updated_at=t0)  # fmt: skip
    resolved = MailingAudienceResolved(mailing_id=mailing_id, batch_id=uuid4().hex,
                                       recipients=n, resolved_at=t0)  # fmt: skip
    groups = [list(g) for g in chunks(imports, EVENTS_PER_TRANSACTION)]
    groups.append([mailing])
    groups += [list(g) for g in chunks([*scheduled, resolved], EVENTS_PER_TRANSACTION)]
    groups += [list(g) for g in chunks(due(ids, 1, start), EVENTS_PER_TRANSACTION)]
    groups += [list(g) for g in chunks([*failed, *rescheduled], EVENTS_PER_TRANSACTION)]
    groups += [list(g) for g in chunks(due(retried, 2, retry_at), EVENTS_PER_TRANSACTION)]
    groups += [list(g) for g in chunks(delivered, EVENTS_PER_TRANSACTION)]
    return groups


async def main() -> None:
    n = int(os.environ.get("N", "1000000"))
    configure_logging("bench-replay", "WARNING")  # as sms-replay runs
    env = TestEnvironment.create(["gateway", "scheduler", "dispatcher", "reporter"])
    try:
        pool = await create_pool(env.database_url, min_size=2, max_size=3, command_timeout=600)
        store = EventStore(pool)
        started = time.monotonic()
        total = 0
        for group in history(n):
            async with pool.acquire() as conn, appending(conn):
                if isinstance(group[0], MailingScheduled):  # the mailing's own stream
                    await store.append(group[0].stream_id(), group, conn=conn)
                else:  # batch events each open a stream of their own
                    await append_new_streams(conn, group)
            total += len(group)
        size = await pool.fetchval("SELECT pg_size_pretty(pg_total_relation_size('events'))")
        print(f"history: {n:,} clients and messages, {total:,} events ({size}),"
              f" appended in {time.monotonic() - started:.1f} s")  # fmt: skip
        only = os.environ.get("ONLY")
        for name, projection in sorted(projections().items()):
            if only and name != only:
                continue
            last: list[Progress] = []
            began = time.monotonic()
            at = await replay(pool, projection, on_progress=last.append)
            took = time.monotonic() - began
            events = last[-1].events if last else 0
            print(
                f"sms-replay {name}: {events:,} events folded in {took:.1f} s"
                f" ({events / took:,.0f} events/s, {n / took:,.0f} messages/s),"
                f" swapped in at ({at.transaction_id}, {at.global_position})"
            )
            sys.stdout.flush()
        await pool.close()
    finally:
        env.destroy()


if __name__ == "__main__":
    run_on_fast_loop(main())  # as sms-replay runs
