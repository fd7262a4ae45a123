"""Opt-outs as the dispatcher sees them: the ``dispatcher_opt_outs`` projection and the check of
a batch's phones when its calls start.

The scheduler leaves opted-out phones out of resolution and cancels their scheduled messages,
but a phone may opt out after its messages were handed over and queued here; checking it when
the call starts means no call once the opt-out is known here (within about ``max_age_s``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence

import asyncpg

from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.suppression import newest_states

__all__ = ["ROUTING_KEYS", "BatchOptOuts", "apply_opt_outs", "opted_out_among"]

ROUTING_KEYS = ("opt_out.recorded", "opt_out.removed", "opt_outs.imported")


async def apply_opt_outs(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    """Fold the opt-out events among ``envelopes`` into the table (``sms_events.suppression``)."""
    states = newest_states(envelopes)
    if not states:
        return
    # Sorted, so that two replicas upserting the same phones lock them in the same order.
    phones = sorted(states)
    await conn.execute(
        """
        INSERT INTO dispatcher_opt_outs AS o (phone, opted_out, version)
        SELECT * FROM unnest($1::text[], $2::bool[], $3::int[])
        ON CONFLICT (phone) DO UPDATE SET opted_out = EXCLUDED.opted_out, version = EXCLUDED.version
         WHERE o.version < EXCLUDED.version
        """,
        phones,
        [states[p].opted_out for p in phones],
        [states[p].version for p in phones],
    )


async def opted_out_among(db: Connection | asyncpg.Pool, phones: Collection[str]) -> set[str]:
    """The phones of ``phones`` on the suppression list now (one primary-key lookup)."""
    if not phones:
        return set()
    rows = await db.fetch(
        "SELECT phone FROM dispatcher_opt_outs WHERE phone = ANY($1::text[]) AND opted_out",
        list(set(phones)),
    )
    return {r["phone"] for r in rows}


class BatchOptOuts:
    """The opted-out phones among one batch's messages still to be called.

    Fetched with the claim (``fetch``); when a call is about to start and that answer is older
    than ``max_age_s``, fetched again for the phones not called yet, by the first task that asks
    while the others wait for its answer: at most one query per batch per ``max_age_s``
    however many calls start. A failing query propagates, like the rate limiter's: a call is
    not made without knowing."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        phones: Iterable[str],
        opted_out: set[str],
        *,
        max_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._waiting = Counter(phones)  # a phone may have several messages in a batch
        self._out = opted_out
        self._max_age_s = max_age_s
        self._clock = clock
        self._at = clock()
        self._lock = asyncio.Lock()
        self.queries = 1  # how many lookups this batch cost, the claim's included

    @classmethod
    async def fetch(
        cls, conn: Connection, pool: asyncpg.Pool, phones: Collection[str], max_age_s: float
    ) -> BatchOptOuts:
        return cls(pool, phones, await opted_out_among(conn, phones), max_age_s=max_age_s)

    async def opted_out(self, phone: str) -> bool:
        if self._stale():
            async with self._lock:
                if self._stale():  # not refreshed meanwhile by the task that held the lock
                    await self._refresh()
        return phone in self._out

    def started(self, phone: str) -> None:
        """The call for one message of ``phone`` started or was refused: not asked again."""
        self._waiting[phone] -= 1
        if self._waiting[phone] <= 0:
            del self._waiting[phone]

    def _stale(self) -> bool:
        return self._clock() - self._at >= self._max_age_s

    async def _refresh(self) -> None:
        at = self._clock()  # the answer is as old as the moment it was asked for
        self._out = await opted_out_among(self._pool, list(self._waiting))
        self._at = at
        self.queries += 1
