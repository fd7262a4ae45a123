"""The timer: hands due messages to the dispatcher, and times again those that missed their
send slot.

All state is in PostgreSQL (``scheduler_messages.due_at``/``closes_at``), so a restart forgets
nothing, and ``FOR UPDATE SKIP LOCKED`` lets several scheduler replicas share the work.
Hand-over is flow controlled: at most ``max_in_flight`` messages are with the dispatcher at
once, so a pause or a cancel takes effect within that many messages, not after a queue of a
million.

A message is handed over only inside its slot (``due_at <= now < closes_at``). One that missed
its slot, whatever the reason (a backlog at the window's close, a pause, an outage, a stale
hand-over recovered, a due event dead-lettered), is timed again for its client's next window
from now, or settled when none is left before the end: that is also how a mailing whose end
has passed gets every unsent message settled, however late a message comes back.

Each round of the timer runs under a correlation id of its own (the ``messages.due`` events it
appends carry it, and the dispatcher's results after them); a message is followed across
services by its message id and mailing id (DEBUG lines, see README "Following one message").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from scheduler.domain import NO_SEND_MOMENT, PROJECTION_NAME, MailingStatus, MessageState, Unsent
from scheduler.metrics import DUE_BACKLOG, HANDED_OVER, HANDOVER_LATENESS
from scheduler.resolution import cancelled_events, load_mailings, message_events, resolve_next_chunk
from scheduler.settling import settle
from sms_events.batches import chunks, new_batch_id
from sms_events.contracts import (
    DueMessage,
    Event,
    MessagesDue,
    MessagesRecovered,
    MessagesRescheduled,
    ScheduledMessage,
)
from sms_events.db import Connection, is_transient
from sms_events.replay import writing
from sms_events.store import append_new_streams, appending
from sms_events.tracing import traced
from sms_events.waits import wait_any

__all__ = ["Timer", "hand_over_due", "recover_stale", "retime_missed", "settle_stopped"]

log = structlog.get_logger(__name__)

MESSAGES_PER_DUE_EVENT = 200

_SCHEDULED = MessageState.SCHEDULED.value
_HANDED_OVER = MessageState.HANDED_OVER.value
_CANCELLED = MessageState.CANCELLED.value
_ACTIVE = MailingStatus.ACTIVE.value
# The due backlog gauge counts up to this many per running mailing: an estimate that stays
# cheap however many messages wait.
BACKLOG_COUNT_CAP = 100_000


async def _in_flight(conn: Connection) -> int:
    """Messages with the dispatcher now, counted by a plain index scan. Every message passes
    through ``handed_over`` once, so the partial index fills with entries of rows that have
    moved on until a vacuum comes; the bitmap scan the planner prefers visits each of their rows
    on every count (34,000 entries for 5,000 live ones, 6 ms a round at 100,000 messages),
    while a plain scan marks each such entry dead as it passes and the next count skips it.
    Only this statement is planned so: the hand-over after it keeps the planner's choice."""
    await conn.execute("SET LOCAL enable_bitmapscan = off")
    try:
        return int(
            await conn.fetchval(
                f"SELECT count(*) FROM scheduler_messages WHERE state = '{_HANDED_OVER}'"
            )
        )
    finally:
        await conn.execute("SET LOCAL enable_bitmapscan = on")


async def hand_over_due(conn: Connection, now: datetime, *, limit: int, max_in_flight: int) -> int:
    """Move messages of running mailings whose slot is open to ``handed_over`` and append
    ``messages.due`` events for them, in one transaction. Returns how many were handed over."""
    in_flight = await _in_flight(conn)
    budget = min(limit, max_in_flight - int(in_flight))
    if budget <= 0:
        return 0
    # Each running mailing's due messages come from its own (mailing_id, due_at) index, in
    # due order, and the scan stops after `budget` rows: the cost does not grow with how many
    # messages wait, only with how many mailings run at once.
    rows = await conn.fetch(
        f"""
        WITH running AS (
            SELECT mailing_id FROM scheduler_mailings
            WHERE status = '{_ACTIVE}' AND datetime_start <= $1 AND datetime_end > $1
        ), candidates AS (
            SELECT d.message_id, d.due_at FROM running r CROSS JOIN LATERAL (
                SELECT m.message_id, m.due_at FROM scheduler_messages m
                WHERE m.mailing_id = r.mailing_id AND m.state = '{_SCHEDULED}'
                  AND m.due_at <= $1 AND m.closes_at > $1
                ORDER BY m.due_at LIMIT $2) d
            ORDER BY d.due_at LIMIT $2
        ), due AS (
            SELECT m.message_id FROM scheduler_messages m JOIN candidates USING (message_id)
            WHERE m.state = '{_SCHEDULED}'
            FOR UPDATE OF m SKIP LOCKED
        )
        UPDATE scheduler_messages m
           SET state = '{_HANDED_OVER}', handed_over_at = $1, updated_at = now()
        FROM due, scheduler_clients c, scheduler_mailings g
        WHERE m.message_id = due.message_id AND c.client_id = m.client_id
          AND g.mailing_id = m.mailing_id
        RETURNING m.message_id, m.mailing_id, m.client_id, m.attempts, m.due_at, m.closes_at,
                  c.phone, g.text, g.datetime_end
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
                    handed_over_at=now,
                    messages=[
                        DueMessage(
                            message_id=r["message_id"],
                            client_id=r["client_id"],
                            phone=r["phone"],
                            attempt=r["attempts"] + 1,
                            due_at=r["due_at"],
                            closes_at=r["closes_at"],
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


async def retime_missed(conn: Connection, now: datetime, *, limit: int) -> int:
    """Give up to ``limit`` scheduled messages whose slot closed unsent their client's next
    slot from ``now``, or settle them when none is left (CA, or ND with the last error when the
    provider was tried). Returns how many it handled."""
    rows = await conn.fetch(
        f"""
        SELECT m.message_id, m.mailing_id, m.client_id, m.attempts,
               coalesce(m.last_error, '') AS last_error, c.time_zone
        FROM scheduler_messages m LEFT JOIN scheduler_clients c USING (client_id)
        WHERE m.state = '{_SCHEDULED}' AND m.closes_at <= $1
        ORDER BY m.closes_at
        LIMIT $2
        FOR UPDATE OF m SKIP LOCKED
        """,
        now,
        limit,
    )
    if not rows:
        return 0
    mailings = {
        g.mailing_id: g
        for g in await load_mailings(
            conn, "g.mailing_id = ANY($1)", list({r["mailing_id"] for r in rows})
        )
    }
    retimed: dict[int, list[tuple[asyncpg.Record, datetime, datetime]]] = defaultdict(list)
    unsent: dict[int, list[Unsent]] = defaultdict(list)
    for r in rows:
        mailing = mailings.get(r["mailing_id"])
        slot = None if mailing is None or mailing.stopped else mailing.slot(r["time_zone"], now)
        if slot is None:
            error = r["last_error"] or NO_SEND_MOMENT
            unsent[r["mailing_id"]].append(Unsent(r["message_id"], r["attempts"], error))
        else:
            retimed[r["mailing_id"]].append((r, slot.opens, slot.closes))
    await _retime(conn, retimed)
    for mailing_id, items in unsent.items():
        await settle(conn, mailing_id, items, now)
    return len(rows)


async def _retime(
    conn: Connection, retimed: dict[int, list[tuple[asyncpg.Record, datetime, datetime]]]
) -> None:
    items = [item for group in retimed.values() for item in group]
    if not items:
        return
    await conn.execute(
        """
        UPDATE scheduler_messages m SET due_at = u.due, closes_at = u.closes, updated_at = now()
        FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[])
             AS u(message_id, due, closes)
        WHERE m.message_id = u.message_id
        """,
        [r["message_id"] for r, _, _ in items],
        [due for _, due, _ in items],
        [closes for _, _, closes in items],
    )
    events: list[Event] = []
    for mailing_id, group in retimed.items():
        messages = [
            ScheduledMessage(
                message_id=r["message_id"], client_id=r["client_id"], due_at=due, closes_at=closes
            )
            for r, due, closes in group
        ]
        events += message_events(MessagesRescheduled, mailing_id, messages)
        log.info("messages_missed_their_slot", mailing_id=mailing_id, count=len(group))
    await append_new_streams(conn, events)


async def settle_stopped(conn: Connection, *, limit: int) -> int:
    """Cancel up to ``limit`` unsent messages of cancelled mailings (delete them for deleted
    ones, which never started) and append what was cancelled; a mailing with none left is
    marked settled. Returns how many messages it handled."""
    done = 0
    for row in await conn.fetch(
        "SELECT mailing_id, status FROM scheduler_mailings"
        f" WHERE NOT swept AND status IN ('{MailingStatus.CANCELLED}', '{MailingStatus.DELETED}')"
        " ORDER BY mailing_id LIMIT 10 FOR UPDATE SKIP LOCKED"
    ):
        mailing_id = row["mailing_id"]
        chosen = (
            f"SELECT message_id FROM scheduler_messages WHERE mailing_id = $1"
            f" AND state = '{_SCHEDULED}' LIMIT $2 FOR UPDATE SKIP LOCKED"
        )
        if row["status"] == MailingStatus.DELETED:
            result = await conn.execute(
                f"DELETE FROM scheduler_messages WHERE message_id IN ({chosen})",
                mailing_id,
                limit - done,
            )
            count = int(result.split()[-1])
        else:
            ids = [
                r["message_id"]
                for r in await conn.fetch(
                    f"UPDATE scheduler_messages SET state = '{_CANCELLED}', updated_at = now()"
                    f" WHERE message_id IN ({chosen}) RETURNING message_id",
                    mailing_id,
                    limit - done,
                )
            ]
            count = len(ids)
            await append_new_streams(conn, cancelled_events(mailing_id, ids, "mailing cancelled"))
        done += count
        if count < limit:
            await conn.execute(
                "UPDATE scheduler_mailings SET swept = true WHERE mailing_id = $1", mailing_id
            )
        if done >= limit:
            break
    return done


async def recover_stale(conn: Connection, now: datetime, lease: timedelta) -> int:
    """Messages handed over long ago with no result (their due event dead-lettered, say) go
    back on the timer in the slot they had: sent at once if it is still open, timed again for
    the next window if it closed. The dispatcher's claims make sure a copy of a due event still
    in flight somewhere and this new hand-over never both call the provider. Appends
    ``messages.recovered`` for them (the rows change with no other event)."""
    rows = await conn.fetch(
        f"UPDATE scheduler_messages SET state = '{_SCHEDULED}', handed_over_at = NULL,"
        " updated_at = now()"
        f" WHERE state = '{_HANDED_OVER}' AND handed_over_at < $1"
        " RETURNING mailing_id, message_id",
        now - lease,
    )
    by_mailing: dict[int, list[int]] = defaultdict(list)
    for r in rows:
        by_mailing[r["mailing_id"]].append(r["message_id"])
    await append_new_streams(
        conn,
        [
            MessagesRecovered(mailing_id=mailing_id, batch_id=new_batch_id(), message_ids=list(p))
            for mailing_id, ids in by_mailing.items()
            for p in chunks(sorted(ids), MESSAGES_PER_DUE_EVENT)
        ],
    )
    return len(rows)


class Timer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        batch: int = 2000,
        resolve_chunk: int = 5000,
        max_in_flight: int = 5000,
        tick: float = 0.2,
        lease: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._batch = batch
        self._resolve_chunk = resolve_chunk
        self._max_in_flight = max_in_flight
        self._tick = tick
        self._lease = lease
        self._clock = clock
        self.wake = asyncio.Event()
        self._last_sweep = datetime.min.replace(tzinfo=UTC)

    async def run(self, stop: asyncio.Event) -> None:
        failing = False
        while not stop.is_set():
            self.wake.clear()
            now = self._clock()
            try:
                with traced(None):  # a fresh correlation id per round
                    moved = await self._round(now)
                if failing:
                    log.info("timer_database_back")
                failing = False
            except Exception as exc:
                # Whatever went wrong, the timer must go on (a dead timer sends nothing): a
                # database away is logged once per outage, anything else every time. Never the
                # error's text: its detail may quote data (a phone).
                if not is_transient(exc):
                    log.error("timer_round_failed", error=type(exc).__name__,
                              sqlstate=getattr(exc, "sqlstate", None))  # fmt: skip
                elif not failing:
                    log.warning("timer_database_error", error=type(exc).__name__)
                failing = is_transient(exc)
                moved = 0
            if moved >= self._batch:
                continue  # more is due: go again at once
            await wait_any(self.wake, stop, timeout=self._tick)

    async def _round(self, now: datetime) -> int:
        """One chunk of an audience being resolved, then what missed its slot, what a stop
        leaves unsent, and what is due; once a second also recover stale hand-overs and
        estimate the due backlog. Each step is a transaction of its own and bounded. Returns
        how much it did (0: idle)."""
        async with self._pool.acquire() as conn:
            async with _step(conn):
                resolving = await resolve_next_chunk(conn, now, chunk=self._resolve_chunk)
            async with _step(conn):
                missed = await retime_missed(conn, now, limit=self._batch)
            async with _step(conn):
                stopped = await settle_stopped(conn, limit=self._batch)
            async with _step(conn):
                moved = await hand_over_due(
                    conn, now, limit=self._batch, max_in_flight=self._max_in_flight
                )
            if now - self._last_sweep >= timedelta(seconds=1):
                self._last_sweep = now
                async with _step(conn):
                    if recovered := await recover_stale(conn, now, self._lease):
                        log.warning("stale_hand_overs_recovered", count=recovered)
                DUE_BACKLOG.set(await _due_backlog(conn, now))
        more = self._batch if resolving else 0
        return max(moved, missed, stopped, more)


@contextlib.asynccontextmanager
async def _step(conn: Connection) -> AsyncIterator[None]:
    """One step of a round: a transaction that may append, and writes the scheduler's tables
    (a rebuild's swap waits for it, and it for the swap)."""
    async with appending(conn):
        await writing(conn, PROJECTION_NAME)
        yield


async def _due_backlog(conn: Connection, now: datetime) -> int:
    return int(
        await conn.fetchval(
            f"""
            SELECT count(*) FROM scheduler_mailings g CROSS JOIN LATERAL (
                SELECT 1 FROM scheduler_messages m
                WHERE m.mailing_id = g.mailing_id AND m.state = '{_SCHEDULED}'
                  AND m.due_at <= $1
                LIMIT {BACKLOG_COUNT_CAP}) d
            WHERE g.status = '{_ACTIVE}' AND g.datetime_start <= $1 AND g.datetime_end > $1
            """,
            now,
        )
    )
