"""Reporter's Prometheus metrics (the consumer's own are in sms_events.metrics)."""

from __future__ import annotations

from prometheus_client import Counter

from reporter.domain import Status

__all__ = ["DAILY_REPORTS", "EVENTS_IGNORED", "MESSAGES_PROJECTED"]

MESSAGES_PROJECTED = Counter(
    "reporter_messages_projected_total",
    "Messages that reached a status in the projection (WD: withdrawn before the start)",
    ["status"],
)
EVENTS_IGNORED = Counter(
    "reporter_events_ignored_total", "Events received that the reporter does not project"
)
DAILY_REPORTS = Counter(
    "reporter_daily_reports_total",
    "Daily statistics emails handed to the SMTP server (sent) or not (failed, retried later)",
    ["outcome"],
)

# Bounded label set, exported from the start so that rate() works from the first event.
for _status in Status:
    MESSAGES_PROJECTED.labels(_status.value)
for _outcome in ("sent", "failed"):
    DAILY_REPORTS.labels(_outcome)
