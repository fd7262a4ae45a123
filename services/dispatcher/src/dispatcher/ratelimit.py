"""Send-rate limit honoured across dispatcher replicas, with its budget shared in PostgreSQL.

Time is cut into slots (100 ms by default) numbered from the database's clock, so every replica
agrees on which slot it is in whatever its own clock says. Each slot allows ``rate * slot``
sends in total. A replica claims tokens from the slot's row in chunks with one atomic upsert
and spends them locally; tokens die with their slot, so the replicas together never exceed a
slot's limit. When a slot's budget is gone, the replica waits for the next slot.

Worst case over any window of T seconds: ``rate * T`` plus one slot's limit (a window can start
at the end of one slot and end at the start of another).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import asyncpg

__all__ = ["RateLimiter"]

# One round trip: claim up to $3 tokens from the current slot (limit $4), and learn the slot and
# the microseconds left in it, even when nothing was granted. The ON CONFLICT update locks the
# row, so concurrent claims are serialised and `last_grant` read by RETURNING is this claim's.
# In SET every right-hand side sees the row as it was before the update.
_CLAIM = """
WITH clock AS (
    SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us
), current AS (
    SELECT now_us / $2::bigint AS slot, now_us FROM clock
), granted AS (
    INSERT INTO dispatcher_rate_slots AS r (bucket, slot_us, slot, used, last_grant)
    SELECT $1, $2::bigint, current.slot, LEAST($3::int, $4::int), LEAST($3::int, $4::int)
    FROM current
    ON CONFLICT (bucket, slot_us, slot) DO UPDATE
        SET used = r.used + LEAST($3::int, $4::int - r.used),
            last_grant = LEAST($3::int, $4::int - r.used)
        WHERE r.used < $4::int
    RETURNING r.last_grant
)
SELECT current.slot,
       $2::bigint - current.now_us % $2::bigint AS remaining_us,
       COALESCE((SELECT last_grant FROM granted), 0) AS granted
FROM current
"""

# Rows only matter during their slot; drop every key's rows older than $1 microseconds.
_PRUNE = """
DELETE FROM dispatcher_rate_slots
WHERE slot * slot_us < floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint - $1::bigint
"""

# Waking a hair after the slot boundary saves a round trip that would find the old slot full.
_BOUNDARY_MARGIN_S = 0.001


class RateLimiter:
    """``await limiter.acquire(n)`` returns when ``n`` more sends fit in the shared rate.

    ``rate`` is messages per second over all replicas sharing ``key``; 0 means unlimited (no
    database calls at all). Every replica must use the same ``rate`` and ``slot_s``.
    ``chunk`` is how many tokens a replica claims at once (default: a quarter of a slot's limit):
    bigger means fewer round trips, smaller means fairer sharing and less waste when a replica
    claims tokens it does not use before the slot ends. Database errors propagate from
    ``acquire``: sending without the shared budget could exceed the provider's limit.
    """

    def __init__(
        self,
        pool: asyncpg.Pool | None,
        rate: float,
        *,
        key: str = "sms-provider",
        slot_s: float = 0.1,
        chunk: int | None = None,
        prune_every_s: float = 60.0,
        keep_s: float = 60.0,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        if rate < 0 or not math.isfinite(rate):
            raise ValueError("rate must be a non-negative number (0 = unlimited)")
        if slot_s <= 0:
            raise ValueError("slot_s must be positive")
        self.key = key
        if pool is None and rate != 0:
            raise ValueError("a limited rate needs a database pool")
        self._pool = pool
        self._chunk = chunk
        if chunk is not None and chunk < 1:
            raise ValueError("chunk must be at least 1")
        self.slot_us = max(1, round(slot_s * 1e6))
        # A whole number of tokens per slot: at low rates the slot stretches (rate 5/s, 100 ms
        # slots -> one token per 200 ms slot).
        if rate:
            self.slot_us = max(1, round(max(1, math.floor(rate * slot_s)) / rate * 1e6))
        self.set_rate(rate)
        self._prune_every_s = prune_every_s
        self._keep_us = int(keep_s * 1e6)
        self._on_wait = on_wait
        self._lock = asyncio.Lock()  # FIFO: this replica's callers queue for tokens in order
        self._tokens = 0
        self._slot = -1
        self._expires = 0.0  # loop time when the tokens' slot ends
        self._next_prune = 0.0
        self.total_wait_s = 0.0  # seconds callers spent in acquire(), summed over callers
        self.db_calls = 0

    def set_rate(self, rate: float) -> None:
        """Change the rate (0: unlimited). The slot length stays, so replicas that follow a
        shared rate keep claiming from the same rows."""
        if rate < 0 or not math.isfinite(rate):
            raise ValueError("rate must be a non-negative number (0 = unlimited)")
        if rate and self._pool is None:
            raise ValueError("a limited rate needs a database pool")
        self.rate = rate
        self.unlimited = rate == 0
        # (+1e-3: the slot is whole microseconds, so rate * slot can fall a hair short of the
        # whole number of tokens it was cut for)
        self.limit_per_slot = 0 if self.unlimited else max(1, math.floor(rate * self.slot_s + 1e-3))
        self.chunk = self._chunk or max(1, self.limit_per_slot // 4)

    @property
    def slot_s(self) -> float:
        return self.slot_us / 1e6

    async def acquire(self, n: int = 1) -> None:
        """Wait until ``n`` sends are allowed. More than a slot's limit is taken over several
        slots, so the average rate still holds."""
        if self.unlimited or n <= 0:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with self._lock:
            need = n
            while True:
                if loop.time() >= self._expires:
                    self._tokens = 0
                take = min(need, self._tokens)
                self._tokens -= take
                need -= take
                if need == 0:
                    break
                want = min(max(need, self.chunk), self.limit_per_slot)
                if await self._claim(want) < want and self._tokens < need:
                    # The slot is spent: whatever we got is used on the next pass, the rest
                    # comes from the next slot.
                    await asyncio.sleep(max(0.0, self._expires - loop.time()) + _BOUNDARY_MARGIN_S)
        waited = loop.time() - started
        self.total_wait_s += waited
        if self._on_wait is not None:
            self._on_wait(waited)

    async def _claim(self, want: int) -> int:
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        # Measured before the round trip, the slot's end in loop time errs early: tokens are
        # dropped a little before the slot really ends, never used after it.
        sent_at = loop.time()
        row = await self._pool.fetchrow(_CLAIM, self.key, self.slot_us, want, self.limit_per_slot)
        self.db_calls += 1
        assert row is not None
        slot, remaining_us, granted = int(row[0]), int(row[1]), int(row[2])
        if slot != self._slot:
            self._slot = slot
            self._tokens = 0
        self._tokens += granted
        self._expires = sent_at + remaining_us / 1e6
        if sent_at >= self._next_prune:
            self._next_prune = sent_at + self._prune_every_s
            await self._pool.execute(_PRUNE, self._keep_us)
            self.db_calls += 1
        return granted
