"""The reporter's statistics for the admin pages, read through ``gateway.stats.reporter_client``
(the API's client, one connection pool) as the reporter contract's models, which the templates
show as they are. A reporter that is down, slow or answers something unexpected gives ``None``:
the pages then say "statistics unavailable" instead of failing.
"""

from __future__ import annotations

from gateway.stats.reporter_client import ReporterClient, ReporterError, ReporterUnavailable
from sms_events.reporter_contract import MailingStats, OverallStats

__all__ = ["StatsClient"]


class StatsClient:
    """The statistics the admin pages show; None when the reporter cannot answer (the client
    has logged why, and the page says so)."""

    def __init__(self, reporter: ReporterClient) -> None:
        self._reporter = reporter

    async def overview(self) -> OverallStats | None:
        try:
            return await self._reporter.overall_stats()
        except (ReporterUnavailable, ReporterError):
            return None

    async def mailing(self, mailing_id: int) -> MailingStats | None:
        try:
            return await self._reporter.mailing_stats(mailing_id)
        except (ReporterUnavailable, ReporterError):
            return None
