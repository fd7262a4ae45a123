"""Helpers for the reporter's integration tests: unique ids, envelopes from contract models,
running the batch handler, and reading rows and counters back."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from reporter.handlers import handle_batch
from sms_events.contracts import (
    DeliveredMessage,
    Event,
    FailedAttempt,
    MessageAttemptsFailed,
    MessagesCancelled,
    MessagesDelivered,
    MessagesScheduled,
    MessagesUndelivered,
    MessagesWithdrawn,
    ScheduledMessage,
    UndeliveredMessage,
)
from sms_events.envelope import Envelope
from sms_events.testing.factories import envelope_for

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
COUNTERS = (
    "created_messages",
    "scheduled_messages",
    "delivered_messages",
    "undelivered_messages",
    "cancelled_messages",
    "attempts_total",
)
_rng = random.SystemRandom()


def new_id() -> int:
    """A mailing or message id no other test (or run) uses."""
    return _rng.randrange(10**12, 2**62)


def ids(n: int) -> list[int]:
    """``n`` consecutive fresh message ids."""
    base = new_id()
    return list(range(base, base + n))


def envelope(event: Event, at: datetime | None = None) -> Envelope:
    env = envelope_for(event)
    return dataclasses.replace(env, time=at) if at is not None else env


async def handle(pool: asyncpg.Pool, *items: Event | Envelope) -> None:
    """Project one batch, as the consumer would, in one transaction."""
    envelopes = [i if isinstance(i, Envelope) else envelope(i) for i in items]
    async with pool.acquire() as conn, conn.transaction():
        await handle_batch(conn, envelopes)


# --- event builders ------------------------------------------------------------------------------


def scheduled(mailing_id: int, message_ids: Sequence[int], due: datetime = T0) -> Event:
    return MessagesScheduled(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        messages=[
            ScheduledMessage(message_id=m, client_id=m % 1_000_000 + 1, due_at=due)
            for m in message_ids
        ],
    )


def delivered(
    mailing_id: int, message_ids: Sequence[int], attempt: int = 1, sent: datetime = T0
) -> Event:
    return MessagesDelivered(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        messages=[
            DeliveredMessage(message_id=m, attempt=attempt, sent_at=sent) for m in message_ids
        ],
    )


def failed(
    mailing_id: int, message_ids: Sequence[int], attempts: int = 1, error: str = "timeout"
) -> Event:
    return MessageAttemptsFailed(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        messages=[
            FailedAttempt(
                message_id=m,
                attempts=attempts,
                error=error,
                retry_at=T0 + timedelta(seconds=30 * attempts),
            )
            for m in message_ids
        ],
    )


def undelivered(
    mailing_id: int, message_ids: Sequence[int], attempts: int = 3, error: str = "rejected"
) -> Event:
    return MessagesUndelivered(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        messages=[
            UndeliveredMessage(
                message_id=m, attempts=attempts, error=error, failed_at=T0 + timedelta(minutes=5)
            )
            for m in message_ids
        ],
    )


def cancelled(mailing_id: int, message_ids: Sequence[int]) -> Event:
    return MessagesCancelled(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        message_ids=list(message_ids),
        reason="mailing cancelled",
    )


def withdrawn(mailing_id: int, message_ids: Sequence[int]) -> Event:
    return MessagesWithdrawn(
        mailing_id=mailing_id, batch_id=f"b{new_id()}", message_ids=list(message_ids)
    )


# --- reading back --------------------------------------------------------------------------------


async def counters(pool: asyncpg.Pool, mailing_id: int) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM reporter_mailings WHERE mailing_id = $1", mailing_id)
    assert row is not None, f"no reporter_mailings row for {mailing_id}"
    return dict(row)


async def counts(pool: asyncpg.Pool, mailing_id: int) -> dict[str, int]:
    """Just the counters that must equal a recount of the rows."""
    row = await counters(pool, mailing_id)
    return {k: row[k] for k in COUNTERS}


async def recount(pool: asyncpg.Pool, mailing_id: int) -> dict[str, int]:
    """The same counters computed from reporter_messages with a GROUP BY."""
    rows = await pool.fetch(
        "SELECT status::text AS status, count(*) AS n, sum(attempts) AS attempts"
        " FROM reporter_messages WHERE mailing_id = $1 GROUP BY status",
        mailing_id,
    )
    by = {r["status"]: r for r in rows}
    return {
        "created_messages": sum(r["n"] for r in rows),
        "scheduled_messages": by["SC"]["n"] if "SC" in by else 0,
        "delivered_messages": by["DL"]["n"] if "DL" in by else 0,
        "undelivered_messages": by["ND"]["n"] if "ND" in by else 0,
        "cancelled_messages": by["CA"]["n"] if "CA" in by else 0,
        "attempts_total": sum(int(r["attempts"]) for r in rows),
    }


async def messages(pool: asyncpg.Pool, mailing_id: int) -> dict[int, dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT *, status::text AS status FROM reporter_messages WHERE mailing_id = $1",
        mailing_id,
    )
    return {r["message_id"]: dict(r) for r in rows}


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it returns True; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)
