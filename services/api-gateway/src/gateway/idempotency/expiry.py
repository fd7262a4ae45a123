"""Expiry of Idempotency-Key answers: a task deleting expired rows in small batches."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Final

import asyncpg
import structlog

from gateway.idempotency.store import prune_expired

__all__ = ["PRUNE_BATCH", "PRUNE_EVERY_S", "prune_forever"]

log = structlog.get_logger(__name__)

# Small batches, each its own transaction: no long lock on the table, no huge WAL burst, and a
# find never waits on the pruner (an expired row is not an answer anyway).
PRUNE_BATCH: Final = 1000
PRUNE_EVERY_S: Final = 60.0


async def prune_forever(pool: asyncpg.Pool, ttl: timedelta, stop: asyncio.Event) -> None:
    """Every ``PRUNE_EVERY_S``, delete the answers older than ``ttl`` until ``stop`` is set."""
    while not stop.is_set():
        deleted = 0
        try:
            while (batch := await prune_expired(pool, ttl, PRUNE_BATCH)) > 0:
                deleted += batch
                if batch < PRUNE_BATCH or stop.is_set():
                    break
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("idempotency_prune_failed", error_type=type(exc).__name__)
        if deleted:
            log.info("idempotency_pruned", rows=deleted)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PRUNE_EVERY_S)
