"""A step repeated every few moments until the service stops, with the database's outages
waited out (logged once per outage, not once per try)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

__all__ = ["DB_ERRORS", "repeat"]

log = structlog.get_logger(__name__)

DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


async def repeat(
    step: Callable[[], Awaitable[None]], every_s: float, stop: asyncio.Event, *, failing: str
) -> None:
    """Run ``step`` every ``every_s`` seconds until ``stop``; a database error is logged as
    ``failing`` when an outage begins, and the step is tried again at the next turn."""
    down = False
    while not stop.is_set():
        try:
            await step()
            down = False
        except DB_ERRORS as exc:
            if not down:
                log.warning(failing, error=type(exc).__name__)
            down = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
