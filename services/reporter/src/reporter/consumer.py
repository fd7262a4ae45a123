"""Reporter's event consumer: the queue it owns, bound to every mailing and message event."""

from __future__ import annotations

from reporter.handlers import handle_batch
from sms_events.consumer import Consumer, QueueSpec
from sms_events.runtime import Runtime

__all__ = ["QUEUE", "start"]

QUEUE = QueueSpec(name="reporter", routing_keys=["mailing.*", "messages.*"])


async def start(rt: Runtime) -> None:
    consumer = Consumer(QUEUE, rt.pool, rt.broker, handle_batch)
    await consumer.declare()
    rt.spawn(consumer.run(rt.stop), "consumer")
