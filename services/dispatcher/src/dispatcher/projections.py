"""The dispatcher's projections and their queue: mailing holds (``holds.py``) and opt-outs
(``opt_outs.py``), what the dispatcher must know to refuse a call the scheduler can no longer
take back.

Every replica consumes the one queue, so events reach the replicas out of order: both folds
apply an event only over an older state, which makes that safe. They append nothing, so their
transactions do not hold back the event store's readers (``appends=False``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from dispatcher import holds, opt_outs
from sms_events.consumer import Consumer, QueueSpec
from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.runtime import Runtime

__all__ = ["PROJECTIONS_QUEUE", "handle_projections", "start_projections"]

PROJECTIONS_QUEUE = QueueSpec(
    name="dispatcher-projections",
    routing_keys=[*holds.ROUTING_KEYS, *opt_outs.ROUTING_KEYS],
)


async def handle_projections(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    await holds.apply_holds(conn, envelopes)
    await opt_outs.apply_opt_outs(conn, envelopes)


async def start_projections(rt: Runtime) -> None:
    consumer = Consumer(
        PROJECTIONS_QUEUE,
        rt.pool,
        rt.broker,
        handle_projections,
        appends=False,
        # An import carries a few hundred phones: 100 events keep one transaction to at most
        # some tens of thousands of rows.
        batch_size=100,
        retention=timedelta(hours=rt.settings.processed_events_retention_h),
    )
    await consumer.declare()
    rt.spawn(consumer.run(rt.stop), "projections")
