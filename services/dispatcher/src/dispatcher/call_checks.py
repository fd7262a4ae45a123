"""What a call checks in the database when it starts: whether its phone is on the suppression
list and whether its mailing is paused or cancelled.

A batch looks both up with its claim, and again when a call is about to start and that answer
is older than ``max_age_s``: calls waiting for rate tokens may start many seconds after the
claim, and an opt-out, a pause or a cancel made meanwhile must stop them. The first task that
finds the answer stale asks (one round trip, for the phones not called yet) while the others
wait for it: at most one lookup per batch per ``max_age_s`` however many calls start. A failing
lookup propagates, like the rate limiter's: a call is not made without knowing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable

import asyncpg

from dispatcher.holds import hold_of
from dispatcher.opt_outs import opted_out_among
from sms_events.db import Connection

__all__ = ["CallChecks"]


class CallChecks:
    """The opted-out phones among one batch's messages still to be called, and its mailing's
    hold (``"paused"``, ``"cancelled"`` or None)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        mailing_id: int,
        phones: Iterable[str],
        opted_out: set[str],
        hold: str | None,
        *,
        max_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._mailing_id = mailing_id
        self._waiting = Counter(phones)  # a phone may have several messages in a batch
        self._out = opted_out
        self._hold = hold
        self._max_age_s = max_age_s
        self._clock = clock
        self._at = clock()
        self._lock = asyncio.Lock()
        self.queries = 1  # how many lookups this batch cost, the claim's included

    @classmethod
    async def fetch(
        cls,
        conn: Connection,
        pool: asyncpg.Pool,
        mailing_id: int,
        hold: str | None,
        phones: Collection[str],
        max_age_s: float,
    ) -> CallChecks:
        """With the claim, on its connection: ``hold`` as the claim just read it."""
        out = await opted_out_among(conn, phones)
        return cls(pool, mailing_id, phones, out, hold, max_age_s=max_age_s)

    async def opted_out(self, phone: str) -> bool:
        await self._fresh()
        return phone in self._out

    async def hold(self) -> str | None:
        await self._fresh()
        return self._hold

    def started(self, phone: str) -> None:
        """The call for one message of ``phone`` started or was refused: not asked again."""
        self._waiting[phone] -= 1
        if self._waiting[phone] <= 0:
            del self._waiting[phone]

    async def _fresh(self) -> None:
        if self._stale():
            async with self._lock:
                if self._stale():  # not refreshed meanwhile by the task that held the lock
                    await self._refresh()

    def _stale(self) -> bool:
        return self._clock() - self._at >= self._max_age_s

    async def _refresh(self) -> None:
        at = self._clock()  # the answer is as old as the moment it was asked for
        async with self._pool.acquire() as conn:
            self._out = await opted_out_among(conn, list(self._waiting))
            self._hold = await hold_of(conn, self._mailing_id)
        self._at = at
        self.queries += 1
