"""Reporter's tasks: the event consumer (its own queue, bound to every mailing and message
event and to client creations, imports and deletions), the gauges of messages by status and
mailings by state, and the daily statistics email."""

from __future__ import annotations

from datetime import timedelta

import structlog

from reporter.config import Settings
from reporter.daily_report import DailyReporter, ReportConfig
from reporter.gauges import refresh_gauges
from reporter.handlers import handle_batch
from reporter.projection import PROJECTION
from sms_events.consumer import BatchConsumer, QueueSpec
from sms_events.runtime import Runtime

__all__ = ["QUEUE", "start"]

log = structlog.get_logger(__name__)

GAUGES_EVERY_S = 10.0

QUEUE = QueueSpec(
    name="reporter",
    routing_keys=[
        "mailing.*",
        "messages.*",
        "client.created",
        "client.deleted",
        "clients.imported",
        "report.sent",
    ],
)


async def start(rt: Runtime) -> None:
    settings = rt.settings
    assert isinstance(settings, Settings)
    # A pure projection: its batches append nothing, so they must not hold back the relay.
    consumer = BatchConsumer(
        QUEUE,
        rt.pool,
        rt.broker,
        handle_batch,
        appends=False,
        projection=PROJECTION.name,
        # Events carry up to 500 messages each: 100 of them keep one transaction well under a
        # second (at most ~50,000 rows), however deep the queue after a large mailing.
        batch_size=100,
        retention=timedelta(hours=rt.settings.processed_events_retention_h),
        failures=rt.settings.event_retry(),
        outages=rt.settings.outage_retry(),
    )
    await consumer.declare()
    rt.spawn(consumer.run(rt.stop), "consumer")
    rt.spawn(refresh_gauges(rt.pool, rt.stop, GAUGES_EVERY_S), "gauges")
    if settings.daily_report_enabled:
        reporter = DailyReporter(rt.pool, ReportConfig.from_settings(settings))
        rt.spawn(reporter.run(rt.stop), "daily_report")
    else:
        missing = "EMAIL_HOST" if not settings.email_host else "recipients"
        log.info("daily_report_disabled", missing=missing)
