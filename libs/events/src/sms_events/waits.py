"""Waiting for the first of several asyncio events, with a timeout: how the services' loops
sleep until there is work, a stop, or their tick."""

from __future__ import annotations

import asyncio

__all__ = ["wait_any"]


async def wait_any(*events: asyncio.Event, timeout: float) -> None:  # noqa: ASYNC109 -- a tick, not a deadline: returning on time is the normal case
    """Return once any of ``events`` is set, or after ``timeout`` seconds."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
