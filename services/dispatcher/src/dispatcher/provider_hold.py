"""The provider's ``Retry-After``, honoured by every replica: when one dispatcher is told to wait,
none starts a call before that time. The hold lives in PostgreSQL; each replica reads it twice
a second and keeps it in memory, so the check at the start of a call costs nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import structlog

from dispatcher.periodic import DB_ERRORS, repeat

__all__ = ["ProviderHold"]

log = structlog.get_logger(__name__)

_BUCKET = "sms-provider"


class ProviderHold:
    def __init__(self, pool: asyncpg.Pool, *, refresh_s: float = 0.5) -> None:
        self._pool = pool
        self._refresh_s = refresh_s
        self._until: datetime | None = None
        self._writes: set[asyncio.Task[None]] = set()

    def until(self, now: datetime) -> datetime | None:
        """The end of the hold in force at ``now``, or None."""
        return self._until if self._until is not None and now < self._until else None

    def hold(self, until: datetime) -> None:
        """Hold every replica's calls until ``until`` (the later of this and any hold in force)."""
        if self._until is None or until > self._until:
            self._until = until
            task = asyncio.create_task(self._write(until))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(self, until: datetime) -> None:
        try:
            await self._pool.execute(
                """
                INSERT INTO dispatcher_provider_holds AS h (bucket, until) VALUES ($1, $2)
                ON CONFLICT (bucket) DO UPDATE SET until = greatest(h.until, excluded.until)
                """,
                _BUCKET,
                until,
            )
        except DB_ERRORS as exc:
            log.warning("provider_hold_not_shared", error=type(exc).__name__)

    async def refresh(self) -> None:
        until = await self._pool.fetchval(
            "SELECT until FROM dispatcher_provider_holds WHERE bucket = $1", _BUCKET
        )
        if until is not None and (self._until is None or until > self._until):
            self._until = until

    async def run(self, stop: asyncio.Event) -> None:
        await repeat(self.refresh, self._refresh_s, stop, failing="provider_hold_refresh_failed")
