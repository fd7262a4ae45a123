"""Outbox relay: publishes every committed event to RabbitMQ, at least once, in store order
(the gap-free reader's order: each stream's events in version order).

The event store is the outbox. Commands append events in their own transaction, so an event
is published only if it committed, and every committed event is published: the relay reads the
store with the gap-free reader and only advances its checkpoint after the broker confirmed
the batch. A crash between confirm and checkpoint republishes the batch; consumers
de-duplicate by event id. One relay per database is active at a time (a PostgreSQL advisory
lock held on its own connection; PostgreSQL releases it if the holder dies), so any service can
run one and a standby takes over within a poll interval. The leader reads and saves its
checkpoint on that same connection, so losing the session stops it at once.

Only the leader reports the outbox gauges (backlog, age of the oldest unpublished event);
``sms_outbox_relay_leader`` says which process that is. They count the committed events after
the checkpoint, whether or not the read horizon lets the relay have them yet: an appender left
open holds the horizon back (see sms_events.store), and the outbox alert must then fire. A
standby, or a leader that lost the lock, reports 0 rather than the last figures it saw, so max()
over the instances is the current leader's view and an alert cannot fire on a former leader's
stale value.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
import structlog

from sms_events.broker import Broker, envelope_of
from sms_events.db import Connection, error_label
from sms_events.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISHED,
    OUTBOX_RELAY_LEADER,
)
from sms_events.retrying import OUTAGES, RetryPolicy
from sms_events.store import Checkpoint, EventStore, PageLimit, RecordedEvent
from sms_events.tracing import new_correlation_id
from sms_events.waits import wait_any

__all__ = ["RELAY_READER", "OutboxRelay"]

log = structlog.get_logger(__name__)

_LEADER_LOCK_KEY = 0x5E5_0002
RELAY_READER = "outbox-relay"
"""The relay's ``event_checkpoints`` reader: the last event it published."""
_NOTIFY_CHANNEL = "sms_events_appended"

# The first committed event after the checkpoint (an index-backed LIMIT 1 on the reader's order)
# and the highest position stored (the primary key's last entry).
_WAITING = """
SELECT (SELECT recorded_at FROM events
        WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
        ORDER BY transaction_id, global_position LIMIT 1) AS oldest,
       (SELECT max(global_position) FROM events) AS last
"""


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: Broker,
        *,
        source: str,
        batch_size: int = 2000,
        batch_bytes: int = 8 * 1024 * 1024,
        poll_interval: float = 1.0,
        retry: RetryPolicy = OUTAGES,
    ) -> None:
        self._pool = pool
        self._store = EventStore(pool)
        self._broker = broker
        self._source = source
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._poll_interval = poll_interval
        self._retry = retry
        self._wake = asyncio.Event()
        self.is_leader = False

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set; waits as a standby while another relay leads."""
        while not stop.is_set():
            try:
                await self._lead(stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("relay_database_error", error=error_label(exc))
                await _sleep_unless(stop, self._poll_interval)
            except Exception:
                # A relay that dies leaves every later event stored but unpublished while the
                # process lives on: log whatever it was and try again.
                log.exception("relay_failed")
                await _sleep_unless(stop, max(self._poll_interval, 1.0))

    async def _lead(self, stop: asyncio.Event) -> None:
        async with self._pool.acquire() as lock_conn:
            if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", _LEADER_LOCK_KEY):
                await _sleep_unless(stop, self._poll_interval)
                return
            self.is_leader = True
            OUTBOX_RELAY_LEADER.set(1)
            lock_conn.add_termination_listener(self._on_lock_lost)
            try:
                await lock_conn.add_listener(_NOTIFY_CHANNEL, self._on_notify)
                log.info("relay_leading")
                await self._publish_loop(stop, lock_conn)
            finally:
                self.is_leader = False
                _not_leading()
                lock_conn.remove_termination_listener(self._on_lock_lost)
                await _give_up_lock(lock_conn, self._on_notify)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    def _on_lock_lost(self, *_: Any) -> None:
        # The session holding the lock is gone, so PostgreSQL has freed the lock and a standby
        # may already lead: stop at once rather than at the next query.
        self.is_leader = False
        _not_leading()
        self._wake.set()

    async def _publish_loop(self, stop: asyncio.Event, lock_conn: Connection) -> None:
        # Reads and checkpoint writes go through the connection that holds the leader lock: if
        # that session dies (network, restart, pg_terminate_backend), PostgreSQL frees the lock
        # and a standby takes over, and this loop must fail at once instead of publishing on
        # from the pool beside the new leader.
        checkpoint = await self._store.load_checkpoint(RELAY_READER)
        sizing = PageLimit(self._batch_size)
        while not stop.is_set() and self.is_leader:
            self._wake.clear()
            events = await self._store.read_all(
                checkpoint,
                limit=self._batch_size,
                max_bytes=self._batch_bytes,
                conn=lock_conn,
                sizing=sizing,
            )
            if not events:
                await self._update_gauges(checkpoint, lock_conn)
                await wait_any(self._wake, stop, timeout=self._poll_interval)
                continue
            # The events carry their own correlation ids; this one ties the relay's own lines
            # about one batch together.
            with structlog.contextvars.bound_contextvars(correlation_id=new_correlation_id()):
                try:
                    await self._publish(events, stop, checkpoint, lock_conn)
                except Exception:
                    continue  # stopping or no longer leading: the loop's condition ends it
            checkpoint = events[-1].checkpoint
            await self._store.save_checkpoint(RELAY_READER, checkpoint, conn=lock_conn)
            OUTBOX_PUBLISHED.inc(len(events))
            self._wake.set()  # more may be waiting (a batch is cut by count or bytes): look again
            await self._update_gauges(checkpoint, lock_conn)

    async def _publish(
        self,
        events: list[RecordedEvent],
        stop: asyncio.Event,
        checkpoint: Checkpoint,
        lock_conn: Connection,
    ) -> None:
        """Publish ``events``; the broker down or nacking is waited out (the checkpoint kept)
        until it takes them, ``stop`` is set or the lead is lost (then the error is raised)."""
        async for attempt in self._retry.retrying(
            Exception,
            event="relay_publish_failed",
            stop=stop,
            give_up=lambda: not self.is_leader,
            batch=len(events),
        ):
            with attempt:
                try:
                    await self._broker.publish([envelope_of(e, self._source) for e in events])
                except Exception:
                    OUTBOX_PUBLISH_FAILURES.inc()
                    await self._update_gauges(checkpoint, lock_conn)
                    raise

    async def _update_gauges(self, checkpoint: Checkpoint, conn: Connection) -> None:
        # Committed events after the checkpoint, whatever the horizon: when an open appender
        # holds the horizon back, read_all returns nothing but these are what is waiting, and
        # the outbox alert must see them.
        row = await conn.fetchrow(
            _WAITING, str(checkpoint.transaction_id), checkpoint.global_position
        )
        if not self.is_leader:  # the lock may have gone while we asked
            return
        if row is None or row["oldest"] is None:
            OUTBOX_BACKLOG.set(0)
            OUTBOX_OLDEST_AGE.set(0)
            return
        # An estimate: positions are not gap-free, but the gauge only has to show a trend (and
        # is at least 1 while anything waits).
        OUTBOX_BACKLOG.set(max(1, int(row["last"]) - checkpoint.global_position))
        OUTBOX_OLDEST_AGE.set(max(0.0, time.time() - row["oldest"].timestamp()))


def _not_leading() -> None:
    """What a process that does not lead reports: no lead, and none of the leader's figures."""
    OUTBOX_RELAY_LEADER.set(0)
    OUTBOX_BACKLOG.set(0)
    OUTBOX_OLDEST_AGE.set(0)


async def _give_up_lock(lock_conn: Connection, on_notify: Any) -> None:
    """Release the leader lock, or end the session when that fails: the pool must never hand
    out a connection that still holds it, or no relay could lead again."""
    released = False
    try:
        await lock_conn.remove_listener(_NOTIFY_CHANNEL, on_notify)
        released = bool(await lock_conn.fetchval("SELECT pg_advisory_unlock($1)", _LEADER_LOCK_KEY))
    except Exception as exc:
        log.warning("relay_unlock_failed", error=error_label(exc))
    finally:
        if not released and not lock_conn.is_closed():
            lock_conn.terminate()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
