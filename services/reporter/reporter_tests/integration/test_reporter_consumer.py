"""Through the real broker and Consumer: a CloudEvent delivered twice is counted once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import pytest

from reporter.consumer import QUEUE
from reporter.handlers import handle_batch
from sms_events.broker import Broker
from sms_events.consumer import BatchConsumer, QueueSpec

from .reporter_support import (
    counts,
    delivered,
    envelope,
    eventually,
    ids,
    new_id,
    recount,
    scheduled,
)


@pytest.fixture
async def running_consumer(pool: asyncpg.Pool, broker: Broker) -> AsyncIterator[BatchConsumer]:
    # Its own queue and consumer name: a fresh processed_events history for this test.
    spec = QueueSpec(name=f"reporter-{uuid4().hex[:8]}", routing_keys=QUEUE.routing_keys)
    consumer = BatchConsumer(spec, pool, broker, handle_batch)
    await consumer.declare()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    yield consumer
    stop.set()
    await asyncio.wait_for(task, timeout=10)


async def test_the_same_cloudevent_published_twice_is_counted_once(
    pool: asyncpg.Pool, broker: Broker, running_consumer: BatchConsumer
) -> None:
    mailing, msgs = new_id(), ids(3)
    first = envelope(scheduled(mailing, msgs))
    await broker.publish([first])

    async def created() -> bool:
        row = await pool.fetchrow(
            "SELECT created_messages FROM reporter_mailings WHERE mailing_id = $1", mailing
        )
        return row is not None and row["created_messages"] == 3

    await eventually(created, what="the schedule to be projected")
    before = await counts(pool, mailing)

    # The duplicate, then a new event behind it: once the new one shows, the duplicate has
    # been through the consumer too (one queue, in order).
    marker = envelope(delivered(mailing, msgs[:1]))
    await broker.publish([first])
    await broker.publish([first, marker])

    async def marker_seen() -> bool:
        return bool((await counts(pool, mailing))["delivered_messages"] == 1)

    await eventually(marker_seen, what="the delivery to be projected")
    after = await counts(pool, mailing)
    assert after == {
        **before,
        "scheduled_messages": 2,
        "delivered_messages": 1,
        "attempts_total": 1,
    }
    assert after == await recount(pool, mailing)
    handled = await pool.fetchval(
        "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = $2",
        running_consumer.spec.name,
        first.id,
    )
    assert handled == 1


async def test_client_events_reach_the_reporter_queue_and_count_once(
    pool: asyncpg.Pool, broker: Broker, running_consumer: BatchConsumer
) -> None:
    from datetime import UTC, datetime

    from sms_events.contracts import ClientCreated, ClientDeleted, ClientUpdated

    async def clients() -> int:
        return int(await pool.fetchval("SELECT value FROM reporter_totals WHERE name = 'clients'"))

    before = await clients()
    now = datetime.now(UTC)
    a, b = new_id(), new_id()
    state = {"phone": "79991234567", "operator_code": "999", "time_zone": "UTC", "updated_at": now}
    created = [envelope(ClientCreated(client_id=c, **state)) for c in (a, b)]  # type: ignore[arg-type]
    updated = envelope(ClientUpdated(client_id=a, **state))  # type: ignore[arg-type]
    deleted = envelope(ClientDeleted(client_id=b, deleted_at=now))
    await broker.publish([*created, updated, deleted])
    await broker.publish([*created, deleted])  # redelivered

    mailing, msgs = new_id(), ids(1)
    marker = envelope(scheduled(mailing, msgs))
    await broker.publish([marker])

    async def marker_seen() -> bool:
        return bool(
            await pool.fetchval("SELECT 1 FROM reporter_mailings WHERE mailing_id = $1", mailing)
        )

    await eventually(marker_seen, what="the events before the marker to be handled")
    assert await clients() - before == 1
    live = await pool.fetch(
        "SELECT client_id, created, deleted_at IS NULL AS live FROM reporter_clients"
        " WHERE client_id = ANY($1::bigint[]) ORDER BY client_id",
        sorted((a, b)),
    )
    assert {r["client_id"]: r["live"] for r in live} == {a: True, b: False}


async def test_an_import_batch_reaches_the_reporter_queue_and_counts_its_new_clients(
    pool: asyncpg.Pool, broker: Broker, running_consumer: BatchConsumer
) -> None:
    from datetime import UTC, datetime

    from sms_events.contracts import ClientsImported, ImportedClient

    async def clients() -> int:
        return int(await pool.fetchval("SELECT value FROM reporter_totals WHERE name = 'clients'"))

    before = await clients()
    state = {"phone": "79991234567", "operator_code": "999", "time_zone": "UTC"}
    batch = ClientsImported(
        batch_id=uuid4().hex,
        imported_at=datetime.now(UTC),
        clients=[
            ImportedClient(client_id=new_id(), version=1, created=True, **state),  # type: ignore[arg-type]
            ImportedClient(client_id=new_id(), version=1, created=True, **state),  # type: ignore[arg-type]
            ImportedClient(client_id=new_id(), version=4, created=False, **state),  # type: ignore[arg-type]
        ],
    )
    mailing = new_id()
    await broker.publish([envelope(batch), envelope(batch), envelope(scheduled(mailing, ids(1)))])

    async def marker_seen() -> bool:
        return bool(
            await pool.fetchval("SELECT 1 FROM reporter_mailings WHERE mailing_id = $1", mailing)
        )

    await eventually(marker_seen, what="the import batch before the marker to be handled")
    assert await clients() - before == 2
