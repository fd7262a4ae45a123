"""The per-delivery consumer: each delivery handled in a task of its own, with no transaction
around it, and acked when its handler returns (see the package's docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from sms_events.broker import Broker
from sms_events.consumer.topology import ConsumerQueue, QueueSpec, cancel_task, through_outages
from sms_events.db import error_label, is_transient
from sms_events.envelope import Envelope
from sms_events.metrics import CONSUMER_FAILURES
from sms_events.retrying import EVENT_FAILURES, OUTAGES, RetryPolicy
from sms_events.tracing import traced

__all__ = ["DeliveryConsumer", "DeliveryHandler"]

log = structlog.get_logger(__name__)

DeliveryHandler = Callable[[Envelope], Awaitable[None]]


class DeliveryConsumer:
    """Hands each delivery to ``handler`` in its own task (up to ``prefetch`` at once) and
    acks it when ``handler`` returns.

    For handlers that do slow I/O and keep their own idempotency records, such as the
    dispatcher's provider calls: a transaction held open around that I/O would hold back
    every reader of the event store (see store.py), so none is opened here, and nothing is
    written to ``processed_events``. On stop, the deliveries in hand are finished (up to
    ``drain_s``) before the channel closes; anything unacked then returns to the queue.
    """

    depth_interval: float = 5.0
    """Seconds between two readings of the queue's depth."""
    drain_s: float = 25.0
    """How long ``run`` lets the deliveries in hand finish on stop."""

    def __init__(
        self,
        spec: QueueSpec,
        broker: Broker,
        handler: DeliveryHandler,
        *,
        prefetch: int = 1000,
        failures: RetryPolicy = EVENT_FAILURES,
        outages: RetryPolicy = OUTAGES,
    ) -> None:
        self.spec = spec
        self._queue = ConsumerQueue(spec, broker, prefetch=prefetch)
        self.queue_name = self._queue.name
        self._handler = handler
        # A failing event is tried ``failures.attempts`` times, then dead-lettered; an outage
        # is waited out by ``outages`` and counts as no try.
        self._failures = failures
        self._outages = outages
        self._tasks: set[asyncio.Task[None]] = set()

    async def declare(self) -> AbstractQueue:
        """Declare the queue, its bindings and its dead-letter queue (idempotent)."""
        return await self._queue.declare()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop``, then let the deliveries in hand finish (``drain_s``)."""
        queue = await self._queue.declared()

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.create_task(self._handle(message, stop))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        tag = await queue.consume(on_message)
        watcher = asyncio.create_task(
            self._queue.watch_depth(stop, self.depth_interval, lambda: bool(self._tasks)),
            name="queue-depth",
        )
        log.info("consumer_started", queue=self.queue_name, mode="each")
        try:
            await stop.wait()
        finally:
            await cancel_task(watcher)
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
            await self._drain()
            await self._queue.close()

    async def _drain(self) -> None:
        """Let the deliveries in hand finish (up to ``drain_s``) before the channel closes.

        A delivery that arrived while the consumer was being cancelled starts a task after
        the first look, so wait until the set stays empty, not only for the tasks seen first:
        a task cut off by the channel closing may have called the provider without recording
        it, and its redelivery would call again."""
        deadline = time.monotonic() + self.drain_s
        while self._tasks and (remaining := deadline - time.monotonic()) > 0:
            await asyncio.wait(set(self._tasks), timeout=remaining)
        if self._tasks:
            log.warning("consumer_drain_timeout", queue=self.queue_name, in_hand=len(self._tasks))

    async def _handle(self, message: AbstractIncomingMessage, stop: asyncio.Event) -> None:
        env = await self._queue.accepted(message)
        if env is None:
            return
        with traced(env.correlationid, causation_id=str(env.id)):
            await self._handle_traced(message, env, stop)

    async def _handle_traced(
        self, message: AbstractIncomingMessage, env: Envelope, stop: asyncio.Event
    ) -> None:
        failures = 0

        async def once() -> None:
            nonlocal failures
            try:
                await through_outages(
                    self._outages, lambda: self._handler(env), stop=stop, queue=self.queue_name
                )
            except Exception as exc:
                if not is_transient(exc):
                    failures += 1
                    CONSUMER_FAILURES.labels(self.spec.name).inc()
                raise

        try:
            async for attempt in self._failures.retrying(
                Exception, event="consumer_event_retried", stop=stop, queue=self.queue_name
            ):
                with attempt:
                    await once()
        except Exception as exc:
            limit = self._failures.attempts
            if stop.is_set() and (limit is None or failures < limit):
                return  # unacked: back to the queue when the channel closes
            await self._queue.dead_letter(message, error_label(exc), event_type=env.type)
            return
        await self._queue.settle(message.ack())
        self._queue.handled((env,))
