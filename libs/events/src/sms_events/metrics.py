"""Prometheus metrics shared by every service (per-service metrics live in each service).

Labels are bounded: event types and consumer names, never an id of a message, client or
mailing.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONSUMER_BATCH_SECONDS",
    "CONSUMER_DEAD_LETTERED",
    "CONSUMER_EVENT_AGE",
    "CONSUMER_FAILURES",
    "CONSUMER_HANDLED",
    "CONSUMER_LAG",
    "CONSUMER_QUEUE_DEPTH",
    "EVENTS_APPENDED",
    "OUTBOX_BACKLOG",
    "OUTBOX_OLDEST_AGE",
    "OUTBOX_PUBLISHED",
    "OUTBOX_PUBLISH_FAILURES",
    "OUTBOX_RELAY_LEADER",
]

# Counted by the store's insert statement (sms_events.store), once per event it inserted: a
# statement that succeeded inside a transaction that later rolled back (a retried command, a
# consumer batch that failed) is counted too, so this is an upper bound of committed events.
EVENTS_APPENDED = Counter(
    "sms_events_appended_total",
    "Events inserted into the store by statements that succeeded (the enclosing transaction "
    "may still roll back)",
    ["type"],
)
OUTBOX_PUBLISHED = Counter("sms_outbox_published_total", "Events the relay published")
OUTBOX_PUBLISH_FAILURES = Counter(
    "sms_outbox_publish_failures_total", "Relay batches the broker did not confirm"
)
# The outbox gauges are set by the relay leader only; every other process (a standby, a
# former leader) reports 0, so max() over the instances is the leader's figure.
OUTBOX_BACKLOG = Gauge("sms_outbox_backlog", "Events stored but not yet published (estimate)")
OUTBOX_OLDEST_AGE = Gauge(
    "sms_outbox_oldest_unpublished_age_seconds", "Age of the oldest event not yet published"
)
OUTBOX_RELAY_LEADER = Gauge(
    "sms_outbox_relay_leader", "1 while this process leads the outbox relay, else 0"
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
CONSUMER_QUEUE_DEPTH = Gauge(
    "sms_consumer_queue_depth",
    "Messages ready in the consumer's queue (not yet delivered to any consumer), refreshed "
    "every few seconds",
    ["consumer"],
)
CONSUMER_LAG = Gauge(
    "sms_consumer_lag_seconds",
    "Age of the newest event of the last batch handled, when it was handled (back to 0 once "
    "the queue has stayed empty, with nothing handled, for a depth interval)",
    ["consumer"],
)
CONSUMER_EVENT_AGE = Histogram(
    "sms_consumer_event_age_seconds",
    "Time from an event's append to its handling by a consumer",
    ["consumer"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
