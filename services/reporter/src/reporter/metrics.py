"""Reporter's Prometheus metrics (the consumer's own are in sms_events.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from reporter.domain import Status
from sms_events.vocabulary import MailingState

__all__ = ["DAILY_REPORTS", "EVENTS_IGNORED", "MAILINGS", "MESSAGES", "MESSAGES_PROJECTED"]

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
# The platform's state as the reporter's aggregates hold it (reporter.gauges refreshes them
# every few seconds; every replica reports the same figures, so take max() over instances).
MESSAGES = Gauge(
    "reporter_messages", "Messages by status (SC, DL, ND, CA), all mailings not deleted", ["status"]
)
MAILINGS = Gauge(
    "reporter_mailings",
    "Mailings not deleted by state (scheduled, running, paused, finished, cancelled)",
    ["state"],
)

# Bounded label sets, exported from the start so that rate() works from the first event.
for _status in Status:
    MESSAGES_PROJECTED.labels(_status.value)
    if _status is not Status.WITHDRAWN:  # a tombstone, counted nowhere
        MESSAGES.labels(_status.value)
for _state in MailingState:
    MAILINGS.labels(_state.value)
for _outcome in ("sent", "failed"):
    DAILY_REPORTS.labels(_outcome)
