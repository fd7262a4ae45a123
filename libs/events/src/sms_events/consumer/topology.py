"""What both consumers share: a service's queue, its bindings and its dead-letter queue, the
signature check and parse of each delivery, dead-lettering, acks, the queue's gauges, and how
database trouble is waited out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
)

from sms_events.broker import Broker, declare_exchange
from sms_events.db import is_transient
from sms_events.envelope import Envelope, EnvelopeError
from sms_events.metrics import (
    CONSUMER_DEAD_LETTERED,
    CONSUMER_EVENT_AGE,
    CONSUMER_HANDLED,
    CONSUMER_LAG,
    CONSUMER_QUEUE_DEPTH,
)
from sms_events.retrying import RetryPolicy
from sms_events.signing import SIGNATURE_HEADER

__all__ = ["DEAD_LETTER_REASON", "ConsumerQueue", "QueueSpec"]

log = structlog.get_logger(__name__)

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


class ConsumerQueue:
    """One consumer's view of its queue: declared on a channel of its own with ``prefetch``,
    every delivery checked (signed by the relay, a CloudEvent) before a handler sees it, and
    refused ones dead-lettered with the reason. It also keeps the consumer's gauges: queue
    depth, lag and event age (``sms_consumer_*``, labelled by the spec's name)."""

    def __init__(self, spec: QueueSpec, broker: Broker, *, prefetch: int) -> None:
        self.spec = spec
        self.name = broker.settings.amqp_queue_prefix + spec.name
        self._broker = broker
        self._prefetch = prefetch
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._dlx: AbstractExchange | None = None
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
            f"{self.name}.dlq", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq.bind(dlx, routing_key=self.name)
        self._queue = await self._channel.declare_queue(
            self.name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": dlx.name,
                "x-dead-letter-routing-key": self.name,
                "x-delivery-limit": self.spec.delivery_limit,
                **({"x-single-active-consumer": True} if self.spec.single_active_consumer else {}),
            },
        )
        for key in self.spec.routing_keys:
            await self._queue.bind(exchange, routing_key=key)
        return self._queue

    async def declared(self) -> AbstractQueue:
        """The queue, declared now unless it already was on the current channel."""
        return self._queue or await self.declare()

    async def close(self) -> None:
        """Close the channel; a later run declares on a new one. Unacked deliveries return
        to the queue."""
        await close_channel(self._channel)
        self._channel = self._queue = self._dlx = None
        log.info("consumer_stopped", queue=self.name)

    async def accepted(self, message: AbstractIncomingMessage) -> Envelope | None:
        """The delivery's envelope if the relay signed it and it parses; else it is
        dead-lettered (logged by the id and type its properties claim, never its body)."""
        signature = (message.headers or {}).get(SIGNATURE_HEADER)
        refusal = self._broker.signer.refusal(message.body, signature)
        if refusal is not None:
            await self.dead_letter(message, refusal, event_type=message.type)
            return None
        try:
            return Envelope.from_json(message.body)
        except EnvelopeError as exc:
            await self.dead_letter(message, f"unreadable: {exc}")
            return None

    async def dead_letter(
        self, message: AbstractIncomingMessage, reason: str, event_type: str | None = None
    ) -> None:
        """Move ``message`` to the dead-letter queue with ``reason`` in its headers."""
        CONSUMER_DEAD_LETTERED.labels(self.spec.name).inc()
        log.error(
            "event_dead_lettered",
            queue=self.name,
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
                routing_key=self.name,
            )
        except Exception as exc:
            log.warning("dead_letter_reason_lost", queue=self.name, error=repr(exc))
            await self.settle(message.reject(requeue=False))
            return
        await self.settle(message.ack())

    async def settle(self, action: Awaitable[None]) -> None:
        """Send an ack or reject; if the delivery's channel is gone (broker restart, network),
        the broker redelivers the message and processed_events makes that a no-op, so the
        consumer carries on instead of dying."""
        try:
            await action
        except Exception as exc:
            log.warning("consumer_settle_failed", queue=self.name, error=repr(exc))

    def handled(self, envelopes: Sequence[Envelope]) -> None:
        """Count ``envelopes`` as handled (acked) and measure their ages and the lag."""
        CONSUMER_HANDLED.labels(self.spec.name).inc(len(envelopes))
        now = time.time()
        newest = 0.0
        for env in envelopes:
            at = env.time.timestamp()
            newest = max(newest, at)
            self._age.observe(max(0.0, now - at))
        self._lag.set(max(0.0, now - newest))
        self._handled_at = time.monotonic()

    async def watch_depth(
        self, stop: asyncio.Event, interval: float, busy: Callable[[], bool]
    ) -> None:
        """Refresh the queue-depth gauge every ``interval`` until ``stop``; a passive declare
        on a channel of its own, so a failure (queue gone, broker restarting) never closes
        the consuming one. With the queue empty, the consumer not ``busy`` and nothing
        handled for a whole interval (so that a scrape still sees the last batch's lag) the
        consumer is caught up: lag 0."""
        channel: AbstractChannel | None = None
        probe: AbstractQueue | None = None
        failing = False
        try:
            while not stop.is_set():
                try:
                    if probe is None or channel is None or channel.is_closed:
                        channel = await self._broker.channel()
                        probe = await channel.declare_queue(self.name, passive=True, robust=False)
                    depth = (await probe.declare(timeout=interval)).message_count or 0
                    self._depth.set(depth)
                    idle = time.monotonic() - self._handled_at >= interval
                    if depth == 0 and idle and not busy():
                        self._lag.set(0)
                    failing = False
                except Exception as exc:
                    if not failing:
                        log.warning("queue_depth_unavailable", queue=self.name, error=repr(exc))
                    failing = True
                    probe = None
                    await close_channel(channel)
                    channel = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
        finally:
            await close_channel(channel)


async def through_outages(
    outages: RetryPolicy, work: Callable[[], Awaitable[None]], *, stop: asyncio.Event, queue: str
) -> None:
    """Run ``work``, waiting out database trouble (not the events' fault, so not one of their
    tries) until it is done or ``stop`` is set, when the last such error is raised. Other
    errors propagate at once."""
    async for attempt in outages.retrying(
        retry_if=is_transient, stop=stop, event="consumer_transient_error", queue=queue
    ):
        with attempt:
            await work()


async def cancel_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it to end."""
    task.cancel()
    # gather, not a suppressed CancelledError: a cancellation of the caller still propagates.
    await asyncio.gather(task, return_exceptions=True)


async def close_channel(channel: AbstractChannel | None) -> None:
    """Close ``channel`` if there is one, ignoring a failure (it may be gone already)."""
    if channel is not None:
        with contextlib.suppress(Exception):
            await channel.close()
