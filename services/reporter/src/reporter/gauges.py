"""The reporter's gauges of the platform's state, messages by status and mailings by state,
refreshed every few seconds by a background task from the aggregates (reporter_totals and one
row per mailing: never a scan of the messages)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import asyncpg
import structlog

from reporter.metrics import MAILINGS, MESSAGES
from reporter.queries import gauge_figures
from sms_events.db import error_label

__all__ = ["refresh", "refresh_gauges"]

log = structlog.get_logger(__name__)


async def refresh(pool: asyncpg.Pool, now: datetime) -> None:
    """Read the figures once and set the gauges."""
    messages, mailings = await gauge_figures(pool, now)
    for status, n in messages.items():
        MESSAGES.labels(status).set(n)
    for state, n in mailings.items():
        MAILINGS.labels(state).set(n)


async def refresh_gauges(pool: asyncpg.Pool, stop: asyncio.Event, every: float = 10.0) -> None:
    """Refresh until ``stop``; a database error is logged once per outage and retried."""
    failing = False
    with structlog.contextvars.bound_contextvars(correlation_id=None):
        while not stop.is_set():
            try:
                await refresh(pool, datetime.now(UTC))
                failing = False
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not failing:
                    log.warning("gauges_refresh_failed", error=error_label(exc))
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
