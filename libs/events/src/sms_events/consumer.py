"""Consume events from RabbitMQ in batches, idempotently, with a dead-letter queue.

Each service owns one durable quorum queue bound to the routing keys it needs. Deliveries are
gathered into batches (up to ``batch_size``, or whatever arrived within ``batch_wait``) and
handled in one PostgreSQL transaction that also records every event id in
``processed_events``; a redelivered event is filtered out there, so it changes nothing. A
consumer writing a projection that ``sms-replay`` can rebuild also skips what the rebuild
already folded (``sms_events.replay.unfolded``). That
transaction is opened by ``sms_events.store.appending``, so the handler may append events,
unless the consumer is built with ``appends=False``. Acks go out after the commit, one per
batch. A batch whose handler raises is retried event by event; an event that still fails after
``attempts`` tries, or that is not a CloudEvent at all, goes to the queue's dead-letter queue
with the reason in its ``sms-dead-letter-reason`` header. So does every delivery the relay did
not sign (sms_events.signing), before it is even parsed: it is never handled. Database or
connection errors are not the event's fault: the batch is kept and retried until the database
is back. A statement cut off by a timeout is, though: it counts
as a failure like any other (``sms_events.db.is_transient``).

While it runs, a consumer reports its queue's depth (a passive declare every
``depth_interval`` seconds, on a channel of its own) and its lag: the age of the newest event
of each batch when it was handled (``sms_consumer_lag_seconds``, back to 0 once the queue has
stayed empty, with nothing handled, for an interval) and of every event
(``sms_consumer_event_age_seconds``).

Log lines written while a batch is handled carry the ``correlation_id`` of its first event and
``batch_events`` (handlers that append events trace each event themselves). In ``run_each``
every delivery is handled inside ``sms_events.tracing.traced`` with its event's correlation
id, so the events the handler appends carry it on, with the event as their cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import aio_pika
import asyncpg
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
)

from sms_events.broker import Broker, declare_exchange
from sms_events.db import Connection, error_label, is_transient
from sms_events.envelope import Envelope, EnvelopeError
from sms_events.horizon import appending
from sms_events.metrics import (
    CONSUMER_BATCH_SECONDS,
    CONSUMER_DEAD_LETTERED,
    CONSUMER_EVENT_AGE,
    CONSUMER_FAILURES,
    CONSUMER_HANDLED,
    CONSUMER_LAG,
    CONSUMER_QUEUE_DEPTH,
)
from sms_events.replay import unfolded
from sms_events.signing import SIGNATURE_HEADER
from sms_events.tracing import traced

__all__ = ["DEAD_LETTER_REASON", "BatchHandler", "Consumer", "EachHandler", "QueueSpec"]

log = structlog.get_logger(__name__)

BatchHandler = Callable[[Connection, Sequence[Envelope]], Awaitable[None]]
EachHandler = Callable[[Envelope], Awaitable[None]]

DEAD_LETTER_REASON = "sms-dead-letter-reason"
"""Header of a dead letter: why the consumer refused the event (``unsigned``, ``bad
signature``, ``unreadable: …`` or the last error's label)."""


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A service's queue: its name and the event types (routing keys, ``*``/``#`` allowed)."""

    name: str
    routing_keys: Sequence[str]
    # Safety net for a message that crashes the whole process before it can be rejected.
    delivery_limit: int = 20
    # Only one consumer of the queue at a time gets deliveries (the others stand by and take
    # over when it goes): for a consumer that relies on the queue's order (per-stream order).
    # RabbitMQ refuses to redeclare an existing queue with another value: a queue declared
    # before this was set must be deleted (it is empty once its consumers are stopped).
    single_active_consumer: bool = False


class Consumer:
    depth_interval: float = 5.0
    """Seconds between two readings of the queue's depth."""
    prune_interval: float = 600.0
    """Seconds between two prunings of this consumer's ``processed_events`` rows."""
    drain_s: float = 25.0
    """How long ``run_each`` lets the deliveries in hand finish on stop."""

    def __init__(
        self,
        spec: QueueSpec,
        pool: asyncpg.Pool,
        broker: Broker,
        handler: BatchHandler | None = None,
        *,
        batch_size: int = 500,
        batch_wait: float = 0.02,
        attempts: int = 3,
        prefetch: int | None = None,
        retention: timedelta = timedelta(days=7),
        appends: bool = True,
        projection: str | None = None,
    ) -> None:
        self.spec = spec
        # The projection (sms_events.replay) this consumer's handler writes: each batch skips
        # the events already folded into its tables by a rebuild, recognised by position.
        self._projection = projection
        # A batch handler that appends events must run in a transaction opened by appending(),
        # which makes readers of the whole store wait for it; a pure projection (the reporter)
        # passes False so that its batches never hold them back. True by default: a handler
        # that appends without it fails at its first insert, one that doesn't costs one lock.
        self._appends = appends
        self._pool = pool
        self._broker = broker
        self._handler = handler
        self._batch_size = batch_size
        self._batch_wait = batch_wait
        self._attempts = attempts
        self._prefetch = prefetch or batch_size * 2
        self._retention = retention
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._dlx: AbstractExchange | None = None
        self.queue_name = broker.settings.amqp_queue_prefix + spec.name
        self._in_hand = 0  # deliveries taken from the inbox (run) or being handled (run_each)
        self._handled_at = 0.0  # time.monotonic() of the last handling
        self._lag = CONSUMER_LAG.labels(spec.name)
        self._age = CONSUMER_EVENT_AGE.labels(spec.name)
        self._depth = CONSUMER_QUEUE_DEPTH.labels(spec.name)

    async def declare(self) -> AbstractQueue:
        """Declare the queue, its bindings and its dead-letter queue (idempotent)."""
        settings = self._broker.settings
        self._channel = await self._broker.channel(prefetch=self._prefetch)
        exchange = await declare_exchange(self._channel, settings)
        self._dlx = dlx = await self._channel.declare_exchange(
            f"{settings.amqp_exchange}.dlx", aio_pika.ExchangeType.DIRECT, durable=True
        )
        dlq = await self._channel.declare_queue(
            f"{self.queue_name}.dlq", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq.bind(dlx, routing_key=self.queue_name)
        self._queue = await self._channel.declare_queue(
            self.queue_name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": dlx.name,
                "x-dead-letter-routing-key": self.queue_name,
                "x-delivery-limit": self.spec.delivery_limit,
                **({"x-single-active-consumer": True} if self.spec.single_active_consumer else {}),
            },
        )
        for key in self.spec.routing_keys:
            await self._queue.bind(exchange, routing_key=key)
        return self._queue

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the batch in hand and hand back the rest."""
        queue = self._queue or await self.declare()
        tag = await queue.consume(self._inbox.put)
        watcher = asyncio.create_task(self._watch_depth(stop), name="queue-depth")
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
            await _cancel(watcher)
            await _cancel(pruner)
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
            # Whatever was delivered but not handled goes back to the queue for another consumer.
            while not self._inbox.empty():
                with contextlib.suppress(Exception):
                    await self._inbox.get_nowait().nack(requeue=True)
            await self._close_channel()

    async def run_each(self, stop: asyncio.Event, handler: EachHandler) -> None:
        """Consume until ``stop``, handling each delivery in its own task (up to ``prefetch``
        at once) and acking it when ``handler`` returns.

        For handlers that do slow I/O and keep their own idempotency records, such as the
        dispatcher's provider calls: a transaction held open around that I/O would hold back
        every reader of the event store (see store.py), so no transaction is opened here. On
        stop, the deliveries in hand are finished (up to ``drain_s``) before the channel
        closes; anything unacked then returns to the queue.
        """
        queue = self._queue or await self.declare()
        tasks: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            self._in_hand = len(tasks)

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.create_task(self._handle_each(message, handler, stop))
            tasks.add(task)
            self._in_hand = len(tasks)
            task.add_done_callback(done)

        tag = await queue.consume(on_message)
        watcher = asyncio.create_task(self._watch_depth(stop), name="queue-depth")
        log.info("consumer_started", queue=self.queue_name, mode="each")
        try:
            await stop.wait()
        finally:
            await _cancel(watcher)
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
            await self._drain(tasks)
            await self._close_channel()

    async def _close_channel(self) -> None:
        await _close(self._channel)
        self._channel = self._queue = self._dlx = None  # a later run declares on a new channel
        log.info("consumer_stopped", queue=self.queue_name)

    async def _drain(self, tasks: set[asyncio.Task[None]]) -> None:
        """Let the deliveries in hand finish (up to ``drain_s``) before the channel closes.

        A delivery that arrived while the consumer was being cancelled starts a task after
        the first look, so wait until the set stays empty, not only for the tasks seen first:
        a task cut off by the channel closing may have called the provider without recording
        it, and its redelivery would call again."""
        deadline = time.monotonic() + self.drain_s
        while tasks and (remaining := deadline - time.monotonic()) > 0:
            await asyncio.wait(set(tasks), timeout=remaining)
        if tasks:
            log.warning("consumer_drain_timeout", queue=self.queue_name, in_hand=len(tasks))

    async def _handle_each(
        self, message: AbstractIncomingMessage, handler: EachHandler, stop: asyncio.Event
    ) -> None:
        env = await self._accepted(message)
        if env is None:
            return
        with traced(env.correlationid, causation_id=str(env.id)):
            await self._handle_traced(message, env, handler, stop)

    async def _handle_traced(
        self,
        message: AbstractIncomingMessage,
        env: Envelope,
        handler: EachHandler,
        stop: asyncio.Event,
    ) -> None:
        delay = 0.2
        failures = 0
        while True:
            try:
                await handler(env)
                break
            except Exception as exc:
                if is_transient(exc):
                    if stop.is_set():
                        return  # unacked: back to the queue when the channel closes
                    # Not the event's fault: waited out, not counted as one of its attempts.
                    log.warning(
                        "consumer_transient_error", queue=self.queue_name, error=error_label(exc)
                    )
                else:
                    failures += 1
                    CONSUMER_FAILURES.labels(self.spec.name).inc()
                    if failures >= self._attempts:
                        await self._dead_letter(message, error_label(exc), event_type=env.type)
                        return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            delay = min(delay * 2, 5.0)
        await self._settle(message.ack())
        CONSUMER_HANDLED.labels(self.spec.name).inc()
        self._observe_ages((env,))

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
            if (env := await self._accepted(message)) is not None:
                parsed.append((message, env))
        if not parsed:
            return
        envelopes = [env for _, env in parsed]
        cid = next((env.correlationid for env in envelopes if env.correlationid), None)
        with structlog.contextvars.bound_contextvars(
            correlation_id=cid, batch_events=len(envelopes)
        ):
            await self._handle_parsed(parsed, envelopes, stop)

    async def _accepted(self, message: AbstractIncomingMessage) -> Envelope | None:
        """The delivery's envelope if the relay signed it and it parses; else it is
        dead-lettered (logged by the id and type its properties claim, never its body)."""
        signature = (message.headers or {}).get(SIGNATURE_HEADER)
        refusal = self._broker.signer.refusal(message.body, signature)
        if refusal is not None:
            await self._dead_letter(message, refusal, event_type=message.type)
            return None
        try:
            return Envelope.from_json(message.body)
        except EnvelopeError as exc:
            await self._dead_letter(message, f"unreadable: {exc}")
            return None

    async def _handle_parsed(
        self,
        parsed: list[tuple[AbstractIncomingMessage, Envelope]],
        envelopes: list[Envelope],
        stop: asyncio.Event,
    ) -> None:
        started = time.perf_counter()
        try:
            if not await self._commit_retrying(envelopes, stop):
                return  # stopping: the unacked deliveries return to the queue
        except Exception as exc:
            CONSUMER_FAILURES.labels(self.spec.name).inc()
            log.warning("consumer_batch_failed", queue=self.queue_name, error=error_label(exc))
            await self._one_by_one(parsed, stop)
            return
        await self._settle(parsed[-1][0].ack(multiple=True))
        CONSUMER_HANDLED.labels(self.spec.name).inc(len(parsed))
        CONSUMER_BATCH_SECONDS.labels(self.spec.name).observe(time.perf_counter() - started)
        self._observe_ages(envelopes)

    def _observe_ages(self, envelopes: Sequence[Envelope]) -> None:
        now = time.time()
        newest = 0.0
        for env in envelopes:
            at = env.time.timestamp()
            newest = max(newest, at)
            self._age.observe(max(0.0, now - at))
        self._lag.set(max(0.0, now - newest))
        self._handled_at = time.monotonic()

    def _idle_for(self, seconds: float) -> bool:
        return (
            self._in_hand == 0
            and self._inbox.empty()
            and time.monotonic() - self._handled_at >= seconds
        )

    async def _watch_depth(self, stop: asyncio.Event) -> None:
        """Refresh the queue-depth gauge until ``stop``; a passive declare on a channel of
        its own, so a failure (queue gone, broker restarting) never closes the consuming one.
        With the queue empty, nothing in hand and nothing handled for a whole interval (so
        that a scrape still sees the last batch's lag) the consumer is caught up: lag 0."""
        channel: AbstractChannel | None = None
        probe: AbstractQueue | None = None
        failing = False
        try:
            while not stop.is_set():
                try:
                    if probe is None or channel is None or channel.is_closed:
                        channel = await self._broker.channel()
                        probe = await channel.declare_queue(
                            self.queue_name, passive=True, robust=False
                        )
                    depth = (await probe.declare(timeout=self.depth_interval)).message_count
                    depth = depth or 0
                    self._depth.set(depth)
                    if depth == 0 and self._idle_for(self.depth_interval):
                        self._lag.set(0)
                    failing = False
                except Exception as exc:
                    if not failing:
                        log.warning(
                            "queue_depth_unavailable", queue=self.queue_name, error=repr(exc)
                        )
                    failing = True
                    probe = None
                    await _close(channel)
                    channel = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.depth_interval)
        finally:
            await _close(channel)

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

    async def _commit_retrying(self, envelopes: Sequence[Envelope], stop: asyncio.Event) -> bool:
        """Commit, waiting out database trouble (not the events' fault) until it is done or
        ``stop`` is set; returns whether it committed. Other errors propagate."""
        delay = 0.2
        while True:
            try:
                await self._commit(envelopes)
                return True
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if stop.is_set():
                    return False
                log.warning(
                    "consumer_transient_error", queue=self.queue_name, error=error_label(exc)
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 5.0)

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
                assert self._handler is not None, "run() needs a batch handler"
                await self._handler(conn, fresh)

    def _transaction(self, conn: Connection) -> contextlib.AbstractAsyncContextManager[object]:
        return appending(conn) if self._appends else conn.transaction()

    async def _one_by_one(
        self, parsed: list[tuple[AbstractIncomingMessage, Envelope]], stop: asyncio.Event
    ) -> None:
        for message, env in parsed:
            error: Exception | None = None
            for attempt in range(self._attempts):
                try:
                    if not await self._commit_retrying([env], stop):
                        return  # stopping: this and the rest go back to the queue
                    error = None
                    break
                except Exception as exc:
                    error = exc
                    if attempt + 1 < self._attempts:
                        await asyncio.sleep(0.1 * 2**attempt)
            if error is None:
                await self._settle(message.ack())
                CONSUMER_HANDLED.labels(self.spec.name).inc()
                self._observe_ages((env,))
            else:
                await self._dead_letter(message, error_label(error), event_type=env.type)

    async def _dead_letter(
        self, message: AbstractIncomingMessage, reason: str, event_type: str | None = None
    ) -> None:
        CONSUMER_DEAD_LETTERED.labels(self.spec.name).inc()
        log.error(
            "event_dead_lettered",
            queue=self.queue_name,
            message_id=message.message_id,
            event_type=event_type,
            reason=reason,
        )
        # A reject would dead-letter it too, but the broker's x-death header says only
        # "rejected": the copy published here says why. The reject remains the fallback.
        try:
            assert self._dlx is not None, "declare() first"
            await self._dlx.publish(
                aio_pika.Message(
                    body=message.body,
                    headers={**(message.headers or {}), DEAD_LETTER_REASON: reason},
                    content_type=message.content_type,
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    type=message.type,
                    timestamp=message.timestamp,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=self.queue_name,
            )
        except Exception as exc:
            log.warning("dead_letter_reason_lost", queue=self.queue_name, error=repr(exc))
            await self._settle(message.reject(requeue=False))
            return
        await self._settle(message.ack())

    async def _settle(self, action: Awaitable[None]) -> None:
        """Send an ack or reject; if the delivery's channel is gone (broker restart, network),
        the broker redelivers the message and processed_events makes that a no-op, so the
        consumer carries on instead of dying."""
        try:
            await action
        except Exception as exc:
            log.warning("consumer_settle_failed", queue=self.queue_name, error=repr(exc))


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


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    # gather, not a suppressed CancelledError: a cancellation of the caller still propagates.
    await asyncio.gather(task, return_exceptions=True)


async def _close(channel: AbstractChannel | None) -> None:
    if channel is not None:
        with contextlib.suppress(Exception):
            await channel.close()
