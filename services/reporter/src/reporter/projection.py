"""The reporter's projections as ``sms-replay reporter`` rebuilds them: every statistics table,
folded by the consumer's own batch handler, and the days whose report was sent (from
``report.sent``); the daily report's claims are operational state, carried over as they are."""

from __future__ import annotations

from reporter.domain import PROJECTION_NAME, Status
from reporter.handlers import PROJECTED_TYPES, handle_batch
from sms_events.db import Connection
from sms_events.replay import Projection

__all__ = ["PROJECTION"]

# The totals rows migration reporter_0003 starts a database with (at 0).
_TOTALS = [s.value for s in Status if s is not Status.WITHDRAWN] + ["clients"]


async def _seed(conn: Connection) -> None:
    await conn.execute("INSERT INTO reporter_totals (name) SELECT unnest($1::text[])", _TOTALS)


PROJECTION = Projection(
    name=PROJECTION_NAME,
    tables=(
        "reporter_mailings",
        "reporter_messages",
        "reporter_withdrawn_messages",
        "reporter_mailing_minutes",
        "reporter_mailing_quarters",
        "reporter_quarters",
        "reporter_mailing_failures",
        "reporter_mailing_dimensions",
        "reporter_mailing_latency",
        "reporter_totals",
        "reporter_clients",
        "reporter_daily_reports",
    ),
    # Days being sent or waiting out a failure are the daily report's own state: kept.
    carry=("reporter_daily_reports",),
    fold=handle_batch,
    types=PROJECTED_TYPES,
    seed=_seed,
)
