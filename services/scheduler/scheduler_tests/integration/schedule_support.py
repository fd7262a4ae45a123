"""Helpers of the scheduler's integration tests: events for the handlers, and what they stored."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from scheduler.handlers import handle_batch
from scheduler.resolution import resolve_next_chunk
from scheduler.timer import settle_stopped
from sms_events.contracts import ClientCreated, Event, MailingScheduled
from sms_events.store import appending
from sms_events.testing.factories import envelope_for

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def new_id() -> int:
    return random.randint(10**9, 10**12)


def client_created(client_id: int, tag: str, zone: str = "UTC", code: str = "999") -> ClientCreated:
    return ClientCreated(
        client_id=client_id, phone=f"7{code}{client_id % 10**7:07d}", operator_code=code, tag=tag,
        time_zone=zone, updated_at=NOW,
    )  # fmt: skip


def mailing_scheduled(mailing_id: int, tag: str, start: datetime, **kw: object) -> MailingScheduled:
    fields: dict[str, object] = dict(
        mailing_id=mailing_id, text="hello", datetime_start=start,
        datetime_end=start + timedelta(days=1), client_filter=tag, updated_at=NOW,
    )  # fmt: skip
    fields.update(kw)
    return MailingScheduled.model_validate(fields)


async def apply_events(
    pool: asyncpg.Pool,
    events: Sequence[tuple[Event, int]],
    now: datetime = NOW,
    recorded_at: datetime | None = None,
    *,
    timer: bool = True,
) -> None:
    """Handle ``events`` at ``now``; they were recorded at ``recorded_at`` (default: ``now``).
    With ``timer``, also do what the timer does next with what the handlers asked for."""
    envelopes = [
        dataclasses.replace(envelope_for(e, v), time=recorded_at or now) for e, v in events
    ]
    async with pool.acquire() as conn:
        async with appending(conn):
            await handle_batch(conn, envelopes, clock=lambda: now)
        if not timer:
            return
        # What the timer does next with what the handlers asked for: resolve audiences (in
        # small chunks here, to cross chunk boundaries) and settle stopped mailings.
        while True:
            async with appending(conn):
                if not await resolve_next_chunk(conn, now, chunk=2):
                    break
        async with appending(conn):
            await settle_stopped(conn, limit=10_000)


async def stored_messages(pool: asyncpg.Pool, mailing_id: int) -> dict[int, asyncpg.Record]:
    rows = await pool.fetch("SELECT * FROM scheduler_messages WHERE mailing_id = $1", mailing_id)
    return {r["client_id"]: r for r in rows}


async def stored_events(pool: asyncpg.Pool, mailing_id: int, type_: str) -> list[dict[str, object]]:
    rows = await pool.fetch(
        "SELECT data FROM events WHERE type = $1 AND (data->>'mailing_id')::bigint = $2"
        " ORDER BY global_position",
        type_,
        mailing_id,
    )
    return [r["data"] for r in rows]
