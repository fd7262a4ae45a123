"""Opt-outs and holds in the dispatcher against the real PostgreSQL and RabbitMQ: the projection
keeps the newest version per phone, and a call never starts for a phone known to have opted out
or for a mailing known to be paused or cancelled."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import pytest
from prometheus_client import REGISTRY

from dispatcher import call_checks, opt_outs
from dispatcher.holds import hold_of
from dispatcher.projections import PROJECTIONS_QUEUE, handle_projections
from dispatcher.ratelimit import RateLimiter
from fake_provider import RunningProvider
from sms_events.broker import Broker
from sms_events.consumer import BatchConsumer, QueueSpec
from sms_events.contracts import (
    OPTED_OUT,
    ImportedOptOut,
    MailingPaused,
    OptOutRecorded,
    OptOutRemoved,
    OptOutsImported,
)
from sms_events.envelope import Envelope
from sms_events.testing.factories import envelope_for

from .dispatch_support import due_messages, eventually, new_dispatcher, new_phone, outcomes_of

NOW = datetime.now(UTC)


def _recorded(phone: str, version: int) -> Envelope:
    event = OptOutRecorded(phone=phone, source="api", reason="STOP", opted_out_at=NOW)
    return envelope_for(event, sequence=version)


def _removed(phone: str, version: int) -> Envelope:
    return envelope_for(OptOutRemoved(phone=phone, removed_at=NOW), sequence=version)


def _imported(*items: tuple[str, int]) -> Envelope:
    opt_outs = [ImportedOptOut(phone=p, version=v) for p, v in items]
    return envelope_for(OptOutsImported(batch_id=str(uuid4()), opted_out_at=NOW, opt_outs=opt_outs))


async def _apply(pool: asyncpg.Pool, *envelopes: Envelope) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await handle_projections(conn, envelopes)


async def _state(pool: asyncpg.Pool, phone: str) -> tuple[bool, int] | None:
    row = await pool.fetchrow(
        "SELECT opted_out, version FROM dispatcher_opt_outs WHERE phone = $1", phone
    )
    return None if row is None else (row["opted_out"], row["version"])


def _refused() -> float:
    labels = {"reason": OPTED_OUT}
    return REGISTRY.get_sample_value("dispatcher_messages_refused_total", labels) or 0.0


# --- the projection ------------------------------------------------------------------------


async def test_record_remove_and_record_again_keep_the_newest_version(pool: asyncpg.Pool) -> None:
    phone = new_phone()
    await _apply(pool, _recorded(phone, 1))
    assert await _state(pool, phone) == (True, 1)
    await _apply(pool, _removed(phone, 2))
    assert await _state(pool, phone) == (False, 2)  # kept: a late older event cannot resurrect
    await _apply(pool, _recorded(phone, 3))
    assert await _state(pool, phone) == (True, 3)
    assert await opt_outs.opted_out_among(pool, [phone, new_phone()]) == {phone}


async def test_an_import_opts_each_phone_out_at_its_own_version(pool: asyncpg.Pool) -> None:
    removed_later, fresh = new_phone(), new_phone()
    await _apply(pool, _removed(removed_later, 6))
    await _apply(pool, _imported((removed_later, 5), (fresh, 1)))
    assert await _state(pool, removed_later) == (False, 6)
    assert await _state(pool, fresh) == (True, 1)


async def test_events_out_of_order_end_at_the_newest_version(pool: asyncpg.Pool) -> None:
    phone, other = new_phone(), new_phone()
    await _apply(pool, _removed(phone, 4), _recorded(other, 2))  # one batch, other arrives later
    await _apply(pool, _recorded(phone, 3), _imported((phone, 1)), _removed(other, 1))
    assert await _state(pool, phone) == (False, 4)
    assert await _state(pool, other) == (True, 2)


async def test_a_redelivered_batch_changes_nothing(pool: asyncpg.Pool) -> None:
    phone, other = new_phone(), new_phone()
    batch = [_recorded(phone, 1), _imported((other, 1)), _removed(phone, 2)]
    await _apply(pool, *batch)
    await _apply(pool, _recorded(other, 2))
    await _apply(pool, *batch)
    assert (await _state(pool, phone), await _state(pool, other)) == ((False, 2), (True, 2))


# --- the check when a call starts ----------------------------------------------------------


async def test_opted_out_phones_are_handed_back_unsent_and_the_others_delivered(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    due, ids = due_messages(n=5, attempt=2)
    out = {m.message_id: m.phone for m in due.messages[:2]}
    await _apply(pool, _recorded(out[ids[0]], 1), _imported((out[ids[1]], 1)))
    refused_before = _refused()
    await (await new_dispatcher(pool, provider.url)).handle(envelope_for(due))

    results = await outcomes_of(pool, due.mailing_id)
    back = results["messages.attempt_failed"]
    assert {m["message_id"] for m in back} == set(out)
    # Handed back for the scheduler to cancel: no attempt counted (attempt 2 was due).
    assert {(m["attempts"], m["error"]) for m in back} == {(1, OPTED_OUT)}
    assert sorted(m["message_id"] for m in results["messages.delivered"]) == sorted(ids[2:])
    calls = {m: provider.provider.journal.message(m)["count"] for m in ids}
    assert calls == {m: int(m not in out) for m in ids}
    assert _refused() - refused_before == 2


async def test_an_opt_out_while_a_batch_waits_for_the_rate_stops_its_later_calls(
    pool: asyncpg.Pool, provider: RunningProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 5 calls a second, 15 calls take about 3 s: opted out after the first call, the phones
    are refused within about a second, with one lookup per second for the whole batch."""
    lookups = 0
    lookup = call_checks.opted_out_among

    async def counted(db: asyncpg.Pool, phones: Collection[str]) -> set[str]:
        nonlocal lookups
        lookups += 1
        return await lookup(db, phones)

    monkeypatch.setattr(call_checks, "opted_out_among", counted)
    limiter = RateLimiter(pool, 5, key=f"opt-out-{random.getrandbits(32)}", slot_s=0.2)
    phone = new_phone()
    due, ids = due_messages(n=15, phones=[phone] * 15)
    dispatcher = await new_dispatcher(pool, provider.url, concurrency=15, limiter=limiter)
    started = time.monotonic()
    handling = asyncio.create_task(dispatcher.handle(envelope_for(due)))

    async def called() -> bool:
        return _calls(provider, ids) >= 1

    await eventually(called, what="the first call")
    await _apply(pool, _recorded(phone, 1))
    await asyncio.wait_for(handling, 10)
    elapsed = time.monotonic() - started

    results = await outcomes_of(pool, due.mailing_id)
    back = results.get("messages.attempt_failed", [])
    assert {m["error"] for m in back} == {OPTED_OUT}
    assert len(back) >= 5  # the last 2 s or more of the batch
    assert len(results["messages.delivered"]) + len(back) == len(ids)
    assert _calls(provider, ids) == len(results["messages.delivered"])
    assert lookups <= elapsed + 2  # the claim's, then at most one a second


async def test_a_pause_while_a_batch_waits_for_the_rate_stops_its_later_calls(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    """As with an opt-out: the calls still waiting for rate tokens when the pause lands are
    handed back unsent (the scheduler keeps them until the mailing resumes)."""
    limiter = RateLimiter(pool, 5, key=f"pause-{random.getrandbits(32)}", slot_s=0.2)
    due, ids = due_messages(n=15)
    dispatcher = await new_dispatcher(pool, provider.url, concurrency=15, limiter=limiter)
    handling = asyncio.create_task(dispatcher.handle(envelope_for(due)))

    async def called() -> bool:
        return _calls(provider, ids) >= 1

    await eventually(called, what="the first call")
    await _apply(pool, envelope_for(MailingPaused(mailing_id=due.mailing_id, paused_at=NOW)))
    await asyncio.wait_for(handling, 10)

    results = await outcomes_of(pool, due.mailing_id)
    back = results.get("messages.attempt_failed", [])
    assert {m["error"] for m in back} == {"mailing paused"}
    assert len(back) >= 5  # the last 2 s or more of the batch
    assert len(results["messages.delivered"]) + len(back) == len(ids)
    assert _calls(provider, ids) == len(results["messages.delivered"])


def _calls(provider: RunningProvider, ids: list[int]) -> int:
    return sum(provider.provider.journal.message(m)["count"] for m in ids)


# --- the queue, through the real broker -----------------------------------------------------


@pytest.fixture
async def projections_consumer(pool: asyncpg.Pool, broker: Broker) -> AsyncIterator[BatchConsumer]:
    # Its own queue and consumer name: a fresh processed_events history for this test.
    spec = QueueSpec(
        name=f"dispatcher-projections-{uuid4().hex[:8]}",
        routing_keys=PROJECTIONS_QUEUE.routing_keys,
    )
    consumer = BatchConsumer(spec, pool, broker, handle_projections, appends=False)
    await consumer.declare()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    yield consumer
    stop.set()
    await asyncio.wait_for(task, timeout=10)


async def test_the_queue_applies_holds_and_opt_outs_published_on_the_broker(
    pool: asyncpg.Pool, broker: Broker, projections_consumer: BatchConsumer
) -> None:
    mailing_id = random.randint(10**9, 10**12)
    phone, imported = new_phone(), new_phone()
    paused = envelope_for(MailingPaused(mailing_id=mailing_id, paused_at=NOW))
    recorded = _recorded(phone, 1)
    await broker.publish([paused, recorded, _imported((imported, 1))])

    async def applied() -> bool:
        async with pool.acquire() as conn:
            held = await hold_of(conn, mailing_id)
        opted_out = await opt_outs.opted_out_among(pool, [phone, imported])
        return held == "paused" and opted_out == {phone, imported}

    await eventually(applied, what="the pause and the opt-outs to be applied")

    # A redelivery of the opt-out behind its removal changes nothing.
    await broker.publish([_removed(phone, 2), recorded])

    async def removed() -> bool:
        return await _state(pool, phone) == (False, 2)

    await eventually(removed, what="the removal to be applied")
    await asyncio.sleep(0.2)  # the redelivered opt-out, right behind it
    assert await _state(pool, phone) == (False, 2)
