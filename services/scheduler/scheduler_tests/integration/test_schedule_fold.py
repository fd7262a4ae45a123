"""``projection.fold``: the scheduler's tables from a crafted history, with the defaults it
gives events recorded before they carried everything, against the real PostgreSQL."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from scheduler.domain import PROJECTION_NAME
from scheduler.handlers import handle_batch
from scheduler.projection import PROJECTION, fold
from sms_events.broker import envelope_of
from sms_events.contracts import (
    ClientsLeftOut,
    DueMessage,
    Event,
    MailingAudienceResolved,
    MailingCancelled,
    MailingDeleted,
    MailingScheduled,
    MessagesCancelled,
    MessagesDelivered,
    MessagesDue,
    MessagesRecovered,
    MessagesRescheduled,
    MessagesScheduled,
    ScheduledMessage,
)
from sms_events.replay import checkpoint_reader
from sms_events.store import EventStore, appending
from sms_events.testing.factories import envelope_for

START = datetime(2026, 6, 1, 12, tzinfo=UTC)
END = START + timedelta(days=1)
RECORDED = START + timedelta(seconds=7)


def _id() -> int:
    return random.randint(10**9, 10**12)


async def _fold(pool: asyncpg.Pool, *events: tuple[Event, int]) -> None:
    envelopes = [dataclasses.replace(envelope_for(e, v), time=RECORDED) for e, v in events]
    # A rebuild reads only the types the projection lists: each one folded here must be.
    assert {e.type for e in envelopes} <= PROJECTION.types
    async with pool.acquire() as conn, conn.transaction():
        await fold(conn, envelopes)


def _mailing(mailing_id: int) -> MailingScheduled:
    return MailingScheduled(mailing_id=mailing_id, text="hi", datetime_start=START,
                            datetime_end=END, updated_at=START)  # fmt: skip


def _scheduled(mailing_id: int, *messages: tuple[int, int], **kw: Any) -> MessagesScheduled:
    return MessagesScheduled(mailing_id=mailing_id, batch_id="b", messages=[
        ScheduledMessage(message_id=m, client_id=c, due_at=START, **kw) for m, c in messages
    ])  # fmt: skip


def _due(mailing_id: int, message_id: int, **kw: Any) -> MessagesDue:
    item = DueMessage(message_id=message_id, client_id=1, phone="79990000001", attempt=1)
    return MessagesDue(
        mailing_id=mailing_id, batch_id="b", text="hi", not_after=END, messages=[item], **kw
    )


async def _message(pool: asyncpg.Pool, message_id: int) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT state, due_at, closes_at, attempts, last_error, handed_over_at"
        " FROM scheduler_messages WHERE message_id = $1",
        message_id,
    )
    return dict(row) if row else {}


async def test_old_events_get_the_mailing_end_and_their_record_time(pool: asyncpg.Pool) -> None:
    mailing, message = _id(), _id()
    await _fold(pool, (_mailing(mailing), 1), (_scheduled(mailing, (message, _id())), 1),
                (_due(mailing, message), 1))  # fmt: skip
    row = await _message(pool, message)
    assert (row["state"], row["closes_at"], row["handed_over_at"]) == ("handed_over", END, RECORDED)


async def test_a_retry_puts_the_message_back_with_its_calls_and_last_error(
    pool: asyncpg.Pool,
) -> None:
    mailing, message, client = _id(), _id(), _id()
    later, closes = START + timedelta(minutes=5), START + timedelta(hours=1)
    retry = MessagesRescheduled(mailing_id=mailing, batch_id="r", messages=[
        ScheduledMessage(message_id=message, client_id=client, due_at=later, closes_at=closes,
                         attempts=1, last_error="HTTP 503")])  # fmt: skip
    slot = ScheduledMessage(message_id=message, client_id=client, due_at=later, closes_at=END)
    moved = MessagesRescheduled(mailing_id=mailing, batch_id="m", messages=[slot])
    await _fold(pool, (_mailing(mailing), 1), (_scheduled(mailing, (message, client)), 1),
                (_due(mailing, message, handed_over_at=START), 1), (retry, 1))  # fmt: skip
    assert await _message(pool, message) == {
        "state": "scheduled", "due_at": later, "closes_at": closes, "attempts": 1,
        "last_error": "HTTP 503", "handed_over_at": None,
    }  # fmt: skip
    # A slot moved for another reason changes the slot only.
    await _fold(pool, (moved, 1))
    assert (await _message(pool, message))["last_error"] == "HTTP 503"
    delivered = MessagesDelivered.model_validate(
        {"mailing_id": mailing, "batch_id": "d",
         "messages": [{"message_id": message, "attempt": 2, "sent_at": later}]}
    )  # fmt: skip
    await _fold(pool, (_due(mailing, message), 1), (delivered, 1))
    row = await _message(pool, message)
    assert (row["state"], row["attempts"], row["last_error"]) == ("delivered", 2, "HTTP 503")


async def test_a_recovered_hand_over_waits_again(pool: asyncpg.Pool) -> None:
    mailing, message = _id(), _id()
    recovered = MessagesRecovered(mailing_id=mailing, batch_id="r", message_ids=[message])
    await _fold(pool, (_mailing(mailing), 1), (_scheduled(mailing, (message, _id())), 1),
                (_due(mailing, message), 1), (recovered, 1))  # fmt: skip
    row = await _message(pool, message)
    assert (row["state"], row["handed_over_at"]) == ("scheduled", None)


async def test_a_stopped_mailing_is_swept_once_nothing_is_left_scheduled(
    pool: asyncpg.Pool,
) -> None:
    cancelled, deleted = _id(), _id()
    a, b, c = _id(), _id(), _id()
    swept = "SELECT swept FROM scheduler_mailings WHERE mailing_id = $1"
    await _fold(
        pool,
        (_mailing(cancelled), 1),
        (_scheduled(cancelled, (a, _id()), (b, _id())), 1),
        (MailingCancelled(mailing_id=cancelled, cancelled_at=START), 2),
        (_mailing(deleted), 1),
        (_scheduled(deleted, (c, _id())), 1),
        (MailingDeleted(mailing_id=deleted, deleted_at=START), 2),
    )
    assert await pool.fetchval(swept, cancelled) is False  # the timer has not cancelled them
    assert await pool.fetchval(swept, deleted) is True
    assert await _message(pool, c) == {}  # deleted by the timer, with no event
    done = MessagesCancelled(mailing_id=cancelled, batch_id="c", message_ids=[a, b],
                             reason="mailing cancelled")  # fmt: skip
    await _fold(pool, (done, 1))
    assert await pool.fetchval(swept, cancelled) is True


async def test_clients_are_left_out_and_cleared(pool: asyncpg.Pool) -> None:
    mailing, x, y = _id(), _id(), _id()
    out = ClientsLeftOut(mailing_id=mailing, batch_id="o", left_out=[x, y], reason="no moment")
    cleared = ClientsLeftOut(mailing_id=mailing, batch_id="c", cleared=[x])
    await _fold(pool, (_mailing(mailing), 1), (out, 1), (cleared, 1))
    rows = await pool.fetch(
        "SELECT client_id, reason FROM scheduler_left_out WHERE mailing_id = $1", mailing
    )
    assert [(r["client_id"], r["reason"]) for r in rows] == [(y, "no moment")]


async def test_a_mailing_folded_by_a_rebuild_but_not_handled_yet_is_still_resolved(
    pool: asyncpg.Pool,
) -> None:
    store, mailing = EventStore(pool), _id()
    event = _mailing(mailing)
    await store.append(event.stream_id(), [event])
    [recorded] = await store.read_stream(event.stream_id())
    env = envelope_of(recorded, "/tests")
    job = "SELECT mode FROM scheduler_resolutions WHERE mailing_id = $1"

    async def handle() -> None:
        async with pool.acquire() as conn, appending(conn):
            await handle_batch(conn, [env], clock=lambda: START - timedelta(hours=1))

    # A rebuild folded it and was swapped in at its position; the consumer had not handled it.
    reader = checkpoint_reader(PROJECTION_NAME)
    async with pool.acquire() as conn, conn.transaction():
        await fold(conn, [env])
        await store.save_checkpoint(reader, recorded.checkpoint, conn=conn)
    try:
        await handle()
        assert await pool.fetchval(job, mailing) == "follow_base"
    finally:
        await pool.execute("DELETE FROM event_checkpoints WHERE reader = $1", reader)
    # Without the rebuild, the same version again is old news (a redelivery): no reaction.
    await pool.execute("DELETE FROM scheduler_resolutions WHERE mailing_id = $1", mailing)
    await handle()
    assert await pool.fetchval(job, mailing) is None


async def test_a_resolution_is_pending_until_the_audience_is_resolved(pool: asyncpg.Pool) -> None:
    resolved, running, stopped = _id(), _id(), _id()
    job = "SELECT mode FROM scheduler_resolutions WHERE mailing_id = $1"
    done = MailingAudienceResolved(mailing_id=resolved, batch_id="a", recipients=0,
                                   resolved_at=START)  # fmt: skip
    await _fold(
        pool,
        (_mailing(resolved), 1),
        (done, 1),
        (_mailing(running), 1),
        (_mailing(stopped), 1),
        (MailingCancelled(mailing_id=stopped, cancelled_at=START), 2),
    )
    assert await pool.fetchval(job, resolved) is None
    assert await pool.fetchval(job, running) == "add_missing"  # recorded after its start
    assert await pool.fetchval(job, stopped) is None
    await pool.execute("DELETE FROM scheduler_resolutions WHERE mailing_id = $1", running)
