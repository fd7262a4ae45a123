"""The batch consumer: deliveries handled in batches, each in one PostgreSQL transaction that
also records the events' ids in ``processed_events`` (see the package's docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from sms_events.broker import Broker
from sms_events.consumer.topology import ConsumerQueue, QueueSpec, cancel_task, through_outages
from sms_events.db import Connection, error_label, is_transient
from sms_events.envelope import Envelope
from sms_events.horizon import appending
from sms_events.metrics import CONSUMER_BATCH_SECONDS, CONSUMER_FAILURES
from sms_events.replay import unfolded
from sms_events.retrying import EVENT_FAILURES, OUTAGES, RetryPolicy

__all__ = ["BatchConsumer", "BatchHandler", "prune_processed"]

log = structlog.get_logger(__name__)

BatchHandler = Callable[[Connection, Sequence[Envelope]], Awaitable[None]]


class BatchConsumer:
    """Hands ``handler`` batches of new events inside the transaction that marks them
    processed; acks each batch once it committed."""

    depth_interval: float = 5.0
    """Seconds between two readings of the queue's depth."""
    prune_interval: float = 600.0
    """Seconds between two prunings of this consumer's ``processed_events`` rows."""

    def __init__(
        self,
        spec: QueueSpec,
        pool: asyncpg.Pool,
        broker: Broker,
        handler: BatchHandler,
        *,
        batch_size: int = 500,
        batch_wait: float = 0.02,
        failures: RetryPolicy = EVENT_FAILURES,
        outages: RetryPolicy = OUTAGES,
        prefetch: int | None = None,
        retention: timedelta = timedelta(days=7),
        appends: bool = True,
        projection: str | None = None,
    ) -> None:
        self.spec = spec
        self._queue = ConsumerQueue(spec, broker, prefetch=prefetch or batch_size * 2)
        self.queue_name = self._queue.name
        # The projection (sms_events.replay) this consumer's handler writes: each batch skips
        # the events already folded into its tables by a rebuild, recognised by position.
        self._projection = projection
        # A batch handler that appends events must run in a transaction opened by appending(),
        # which makes readers of the whole store wait for it; a pure projection (the reporter)
        # passes False so that its batches never hold them back. True by default: a handler
        # that appends without it fails at its first insert, one that doesn't costs one lock.
        self._appends = appends
        self._pool = pool
        self._handler = handler
        self._batch_size = batch_size
        self._batch_wait = batch_wait
        # An event of a failed batch is tried alone ``failures.attempts`` times, then
        # dead-lettered; an outage is waited out by ``outages`` and counts as no try.
        self._failures = failures
        self._outages = outages
        self._retention = retention
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._in_hand = 0  # deliveries taken from the inbox

    async def declare(self) -> AbstractQueue:
        """Declare the queue, its bindings and its dead-letter queue (idempotent)."""
        return await self._queue.declare()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the batch in hand and hand back the rest."""
        queue = await self._queue.declared()
        tag = await queue.consume(self._inbox.put)
        watcher = asyncio.create_task(
            self._queue.watch_depth(stop, self.depth_interval, self._busy), name="queue-depth"
        )
        pruner = asyncio.create_task(self._prune(stop), name="processed-events-pruner")
        log.info("consumer_started", queue=self.queue_name)
        try:
            while not stop.is_set():
                batch = await self._next_batch(stop)
                if batch:
                    self._in_hand = len(batch)
                    try:
                        await self._handle(batch, stop)
                    finally:
                        self._in_hand = 0
        finally:
            await cancel_task(watcher)
            await cancel_task(pruner)
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
            # Whatever was delivered but not handled goes back to the queue for another consumer.
            while not self._inbox.empty():
                with contextlib.suppress(Exception):
                    await self._inbox.get_nowait().nack(requeue=True)
            await self._queue.close()

    def _busy(self) -> bool:
        return self._in_hand > 0 or not self._inbox.empty()

    async def _next_batch(self, stop: asyncio.Event) -> list[AbstractIncomingMessage]:
        getter = asyncio.ensure_future(self._inbox.get())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({getter, stopper}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not getter.done():
            getter.cancel()
            return []
        batch = [getter.result()]
        deadline = time.monotonic() + self._batch_wait
        while len(batch) < self._batch_size:
            if self._inbox.empty():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    batch.append(await asyncio.wait_for(self._inbox.get(), remaining))
                continue
            batch.append(self._inbox.get_nowait())
        return batch

    async def _handle(self, batch: list[AbstractIncomingMessage], stop: asyncio.Event) -> None:
        parsed: list[tuple[AbstractIncomingMessage, Envelope]] = []
        for message in batch:
            if (env := await self._queue.accepted(message)) is not None:
                parsed.append((message, env))
        if not parsed:
            return
        envelopes = [env for _, env in parsed]
        cid = next((env.correlationid for env in envelopes if env.correlationid), None)
        with structlog.contextvars.bound_contextvars(
            correlation_id=cid, batch_events=len(envelopes)
        ):
            await self._handle_parsed(parsed, envelopes, stop)

    async def _handle_parsed(
        self,
        parsed: list[tuple[AbstractIncomingMessage, Envelope]],
        envelopes: list[Envelope],
        stop: asyncio.Event,
    ) -> None:
        started = time.perf_counter()
        try:
            if not await self._commit_waiting(envelopes, stop):
                return  # stopping: the unacked deliveries return to the queue
        except Exception as exc:
            CONSUMER_FAILURES.labels(self.spec.name).inc()
            log.warning("consumer_batch_failed", queue=self.queue_name, error=error_label(exc))
            await self._one_by_one(parsed, stop)
            return
        await self._queue.settle(parsed[-1][0].ack(multiple=True))
        CONSUMER_BATCH_SECONDS.labels(self.spec.name).observe(time.perf_counter() - started)
        self._queue.handled(envelopes)

    async def _prune(self, stop: asyncio.Event) -> None:
        """Forget handled event ids older than the retention, in small deletes, every
        ``prune_interval``: a redelivery or a relay's republish comes within minutes, so ids
        older than days only grow the table (by one row per event, per consumer)."""
        while not stop.is_set():
            try:
                pruned = await prune_processed(self._pool, self.spec.name, self._retention)
                if pruned:
                    log.info("processed_events_pruned", queue=self.queue_name, rows=pruned)
            except Exception as exc:
                log.warning("processed_events_not_pruned", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.prune_interval)

    async def _commit_waiting(self, envelopes: Sequence[Envelope], stop: asyncio.Event) -> bool:
        """Commit, waiting out database trouble (not the events' fault) until it is done or
        ``stop`` is set; returns whether it committed. Other errors propagate."""
        try:
            await through_outages(
                self._outages, lambda: self._commit(envelopes), stop=stop, queue=self.queue_name
            )
        except Exception as exc:
            if is_transient(exc) and stop.is_set():
                return False
            raise
        return True

    async def _commit(self, envelopes: Sequence[Envelope]) -> None:
        async with self._pool.acquire() as conn, self._transaction(conn):
            fresh_ids = {
                r["event_id"]
                for r in await conn.fetch(
                    """
                    INSERT INTO processed_events (consumer, event_id)
                    SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id
                    """,
                    self.spec.name,
                    list({env.id for env in envelopes}),
                )
            }
            fresh: list[Envelope] = []
            for env in envelopes:
                if env.id in fresh_ids:
                    fresh_ids.discard(env.id)  # a duplicate inside one batch is handled once
                    fresh.append(env)
            if self._projection is not None:
                fresh = await unfolded(conn, self._projection, fresh)
            if fresh:
                await self._handler(conn, fresh)

    def _transaction(self, conn: Connection) -> contextlib.AbstractAsyncContextManager[object]:
        return appending(conn) if self._appends else conn.transaction()

    async def _one_by_one(
        self, parsed: list[tuple[AbstractIncomingMessage, Envelope]], stop: asyncio.Event
    ) -> None:
        for message, env in parsed:
            try:
                async for attempt in self._failures.retrying(
                    Exception, event="consumer_event_retried", queue=self.queue_name
                ):
                    with attempt:
                        if not await self._commit_waiting([env], stop):
                            return  # stopping: this and the rest go back to the queue
            except Exception as exc:
                await self._queue.dead_letter(message, error_label(exc), event_type=env.type)
                continue
            await self._queue.settle(message.ack())
            self._queue.handled((env,))


async def prune_processed(
    pool: asyncpg.Pool, consumer: str, retention: timedelta, *, chunk: int = 5000
) -> int:
    """Delete ``consumer``'s processed event ids older than ``retention``, ``chunk`` rows per
    transaction. Returns how many went."""
    total = 0
    while True:
        result = await pool.execute(
            """
            DELETE FROM processed_events p USING (
                SELECT event_id FROM processed_events
                WHERE consumer = $1 AND processed_at < now() - $2::interval
                LIMIT $3) old
            WHERE p.consumer = $1 AND p.event_id = old.event_id
            """,
            consumer,
            retention,
            chunk,
        )
        deleted = int(result.split()[-1])
        total += deleted
        if deleted < chunk:
            return total
