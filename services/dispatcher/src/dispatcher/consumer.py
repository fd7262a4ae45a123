"""Dispatcher's event consumer: the queue it owns and the handler for each batch."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import structlog

from sms_events.consumer import Consumer, QueueSpec
from sms_events.envelope import Envelope
from sms_events.runtime import Runtime

log = structlog.get_logger(__name__)

QUEUE = QueueSpec(name="dispatcher", routing_keys=["message.due"])


async def handle(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    for env in events:
        log.debug("event_received", event_type=env.type, subject=env.subject)


async def start(rt: Runtime) -> None:
    consumer = Consumer(QUEUE, rt.pool, rt.broker, handle)
    await consumer.declare()
    rt.spawn(consumer.run(rt.stop), "consumer")
