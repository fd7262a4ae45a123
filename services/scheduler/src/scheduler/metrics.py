"""Scheduler metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HANDED_OVER = Counter(
    "scheduler_messages_handed_over_total", "Messages handed to the dispatcher (incl. retries)"
)
HANDOVER_LATENESS = Histogram(
    "scheduler_handover_lateness_seconds",
    "How late after its due time a message was handed over",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DUE_BACKLOG = Gauge(
    "scheduler_due_backlog", "Messages due but not yet handed over (paused mailings included)"
)
