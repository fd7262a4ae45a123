"""The timer: hands due messages to the dispatcher and settles mailings whose end has passed.

All state is in PostgreSQL (``scheduler_messages.due_at``), so a restart forgets nothing, and
``FOR UPDATE SKIP LOCKED`` lets several scheduler replicas share the work. Hand-over is flow
controlled: at most ``max_in_flight`` messages are with the dispatcher at once, so a pause or a
cancel takes effect within that many messages, not after a queue of a million.

Each round of the timer runs under a correlation id of its own (the ``messages.due`` events it
appends carry it, and the dispatcher's results after them); a message is followed across
services by its message id and mailing id (DEBUG lines, see README "Following one message").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from scheduler.handlers import settle
from scheduler.metrics import DUE_BACKLOG, HANDED_OVER, HANDOVER_LATENESS
from sms_events.batches import chunks, new_batch_id
from sms_events.contracts import DueMessage, Event, MessagesDue
from sms_events.db import Connection
from sms_events.store import append_new_streams, appending
from sms_events.tracing import traced

__all__ = ["Timer", "hand_over_due", "sweep_ended"]

log = structlog.get_logger(__name__)

MESSAGES_PER_DUE_EVENT = 200


@dataclass(frozen=True, slots=True)
class _Unsent:
    message_id: int
    attempts: int
    error: str


async def hand_over_due(conn: Connection, now: datetime, *, limit: int, max_in_flight: int) -> int:
    """Move due messages of running mailings to ``handed_over`` and append ``messages.due``
    events for them, in one transaction. Returns how many were handed over."""
    in_flight = await conn.fetchval(
        "SELECT count(*) FROM scheduler_messages WHERE state = 'handed_over'"
    )
    budget = min(limit, max_in_flight - int(in_flight))
    if budget <= 0:
        return 0
    rows = await conn.fetch(
        """
        WITH running AS (
            SELECT mailing_id FROM scheduler_mailings
            WHERE status = 'active' AND datetime_start <= $1 AND datetime_end > $1
        ), due AS (
            SELECT m.message_id FROM scheduler_messages m JOIN running USING (mailing_id)
            WHERE m.state = 'scheduled' AND m.due_at <= $1
            ORDER BY m.due_at
            LIMIT $2
            FOR UPDATE OF m SKIP LOCKED
        )
        UPDATE scheduler_messages m
           SET state = 'handed_over', handed_over_at = $1, updated_at = now()
        FROM due, scheduler_clients c, scheduler_mailings g
        WHERE m.message_id = due.message_id AND c.client_id = m.client_id
          AND g.mailing_id = m.mailing_id
        RETURNING m.message_id, m.mailing_id, m.client_id, m.attempts, m.due_at, c.phone,
                  g.text, g.datetime_end
        """,
        now,
        budget,
    )
    if not rows:
        return 0
    by_mailing: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for r in rows:
        by_mailing[r["mailing_id"]].append(r)
    events: list[Event] = []
    for mailing_id, mrows in by_mailing.items():
        for part in chunks(mrows, MESSAGES_PER_DUE_EVENT):
            events.append(
                MessagesDue(
                    mailing_id=mailing_id,
                    batch_id=new_batch_id(),
                    text=part[0]["text"],
                    not_after=part[0]["datetime_end"],
                    messages=[
                        DueMessage(
                            message_id=r["message_id"],
                            client_id=r["client_id"],
                            phone=r["phone"],
                            attempt=r["attempts"] + 1,
                        )
                        for r in part
                    ],
                )
            )
    await append_new_streams(conn, events)
    HANDED_OVER.inc(len(rows))
    for r in rows:
        HANDOVER_LATENESS.observe(max(0.0, (now - r["due_at"]).total_seconds()))
    for mailing_id, mrows in by_mailing.items():
        log.info("messages_handed_over", mailing_id=mailing_id, count=len(mrows))
    if log.is_enabled_for(logging.DEBUG):
        for r in rows:
            log.debug(
                "message_handed_over",
                message_id=r["message_id"],
                mailing_id=r["mailing_id"],
                attempt=r["attempts"] + 1,
            )
    return len(rows)


async def sweep_ended(conn: Connection, now: datetime) -> int:
    """Settle the unsent messages of mailings whose end has passed (CA, or ND when tried)."""
    settled = 0
    for row in await conn.fetch(
        "SELECT mailing_id FROM scheduler_mailings"
        " WHERE datetime_end <= $1 AND NOT swept AND status IN ('active', 'paused')"
        " FOR UPDATE SKIP LOCKED",
        now,
    ):
        unsent = await conn.fetch(
            "SELECT message_id, attempts, coalesce(last_error, '') AS error"
            " FROM scheduler_messages WHERE mailing_id = $1 AND state = 'scheduled'"
            " FOR UPDATE",
            row["mailing_id"],
        )
        failures = [
            _Unsent(r["message_id"], r["attempts"], r["error"] or "end reached") for r in unsent
        ]
        await settle(conn, row["mailing_id"], failures, now)
        # Messages still with the dispatcher come back as results; a failed one then finds
        # no send moment left and is settled by the attempt_failed handler.
        await conn.execute(
            "UPDATE scheduler_mailings SET swept = true WHERE mailing_id = $1", row["mailing_id"]
        )
        settled += len(failures)
    return settled


async def recover_stale(conn: Connection, now: datetime, lease: timedelta) -> int:
    """Messages handed over long ago with no result (their due event dead-lettered, say) go
    back on the timer; the dispatcher de-duplicates attempts it already made."""
    result = await conn.execute(
        "UPDATE scheduler_messages SET state = 'scheduled', due_at = $1, handed_over_at = NULL"
        " WHERE state = 'handed_over' AND handed_over_at < $2",
        now,
        now - lease,
    )
    return int(result.split()[-1])


class Timer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        batch: int = 2000,
        max_in_flight: int = 5000,
        tick: float = 0.2,
        lease: timedelta = timedelta(minutes=10),
    ) -> None:
        self._pool = pool
        self._batch = batch
        self._max_in_flight = max_in_flight
        self._tick = tick
        self._lease = lease
        self.wake = asyncio.Event()
        self._last_sweep = datetime.min.replace(tzinfo=UTC)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            now = datetime.now(UTC)
            try:
                with traced(None):  # a fresh correlation id per round
                    moved = await self._round(now)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("timer_database_error", error=str(exc))
                moved = 0
            if moved >= self._batch:
                continue  # more is due: go again at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(self.wake, stop), self._tick)

    async def _round(self, now: datetime) -> int:
        """Hand over what is due; once a second also sweep ended mailings, recover stale
        hand-overs and measure the due backlog. Returns how many were handed over."""
        async with self._pool.acquire() as conn:
            async with appending(conn):
                moved = await hand_over_due(
                    conn, now, limit=self._batch, max_in_flight=self._max_in_flight
                )
            if now - self._last_sweep >= timedelta(seconds=1):
                self._last_sweep = now
                async with appending(conn):
                    await sweep_ended(conn, now)
                async with conn.transaction():
                    if recovered := await recover_stale(conn, now, self._lease):
                        log.warning("stale_hand_overs_recovered", count=recovered)
                DUE_BACKLOG.set(
                    await conn.fetchval(
                        "SELECT count(*) FROM scheduler_messages"
                        " WHERE state = 'scheduled' AND due_at <= $1",
                        now,
                    )
                )
        return moved


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
