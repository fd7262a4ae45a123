"""Scheduler's event consumer and timer wiring."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from scheduler.config import Settings
from scheduler.handlers import handle_batch
from scheduler.timer import Timer
from sms_events.consumer import BatchConsumer, QueueSpec
from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.runtime import Runtime

QUEUE = QueueSpec(
    name="scheduler",
    routing_keys=[
        "client.*",
        "clients.imported",
        "mailing.*",
        "messages.delivered",
        "messages.undelivered",
        "messages.attempt_failed",
        "opt_out.*",
        "opt_outs.imported",
    ],
    # The handlers rely on each stream's events arriving in order (a client's versions, a
    # mailing's edits): with several schedulers, one consumes and the others stand by.
    single_active_consumer=True,
)


async def start(rt: Runtime) -> None:
    settings = rt.settings
    assert isinstance(settings, Settings)
    timer = Timer(
        rt.pool,
        batch=settings.scheduler_handover_batch,
        resolve_chunk=settings.scheduler_resolve_chunk,
        max_in_flight=settings.scheduler_max_in_flight,
        tick=settings.scheduler_tick_s,
        lease=timedelta(seconds=settings.scheduler_lease_s),
    )

    async def handle(conn: Connection, events: Sequence[Envelope]) -> None:
        await handle_batch(conn, events)
        timer.wake.set()  # new or changed messages may be due already

    consumer = BatchConsumer(
        QUEUE,
        rt.pool,
        rt.broker,
        handle,
        # Events carry up to 500 clients or messages each: 50 of them keep one transaction
        # to at most ~25,000 rows, however deep the queue.
        batch_size=50,
        retention=timedelta(hours=settings.processed_events_retention_h),
        failures=settings.event_retry(),
        outages=settings.outage_retry(),
    )
    await consumer.declare()
    rt.spawn(consumer.run(rt.stop), "consumer")
    rt.spawn(timer.run(rt.stop), "timer")
