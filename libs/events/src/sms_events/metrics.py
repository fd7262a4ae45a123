"""Prometheus metrics shared by every service (per-service metrics live in each service)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONSUMER_BATCH_SECONDS",
    "CONSUMER_DEAD_LETTERED",
    "CONSUMER_FAILURES",
    "CONSUMER_HANDLED",
    "EVENTS_APPENDED",
    "OUTBOX_BACKLOG",
    "OUTBOX_OLDEST_AGE",
    "OUTBOX_PUBLISHED",
    "OUTBOX_PUBLISH_FAILURES",
]

EVENTS_APPENDED = Counter("sms_events_appended_total", "Events appended to the store", ["type"])
OUTBOX_PUBLISHED = Counter("sms_outbox_published_total", "Events the relay published")
OUTBOX_PUBLISH_FAILURES = Counter(
    "sms_outbox_publish_failures_total", "Relay batches the broker did not confirm"
)
OUTBOX_BACKLOG = Gauge("sms_outbox_backlog", "Events stored but not yet published (estimate)")
OUTBOX_OLDEST_AGE = Gauge(
    "sms_outbox_oldest_unpublished_age_seconds", "Age of the oldest event not yet published"
)
CONSUMER_HANDLED = Counter(
    "sms_consumer_events_handled_total", "Events a consumer handled", ["consumer"]
)
CONSUMER_FAILURES = Counter(
    "sms_consumer_failures_total", "Event batches whose handler raised", ["consumer"]
)
CONSUMER_DEAD_LETTERED = Counter(
    "sms_consumer_dead_lettered_total", "Events sent to the dead-letter queue", ["consumer"]
)
CONSUMER_BATCH_SECONDS = Histogram(
    "sms_consumer_batch_seconds", "Time to handle one batch of events", ["consumer"]
)
