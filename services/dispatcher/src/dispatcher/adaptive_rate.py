"""The adaptive send rate at work: each replica reports its provider answers here, and a few
times a second applies ``send_rate``'s rule to the rate shared in PostgreSQL (under the row's
lock, so replicas neither cut twice for one burst nor raise twice in one second) and sets its
limiter to the result."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog

from dispatcher import metrics
from dispatcher.periodic import repeat
from dispatcher.ratelimit import RateLimiter
from dispatcher.send_rate import Answers, RatePolicy, cut, cut_reason, raised, verdict

__all__ = ["AdaptiveRate"]

log = structlog.get_logger(__name__)

_RAISE_EVERY_S = 1.0


class AdaptiveRate:
    def __init__(
        self,
        pool: asyncpg.Pool,
        limiter: RateLimiter,
        policy: RatePolicy,
        *,
        bucket: str = "sms-provider",
        tick_s: float = 0.2,
    ) -> None:
        self._pool = pool
        self._limiter = limiter
        self.policy = policy
        self._bucket = bucket
        self._tick_s = tick_s
        self._answers = Answers()  # since the last tick
        self._since = time.monotonic()
        self._waited = limiter.total_wait_s
        self.rate: float | None = policy.initial
        limiter.set_rate(self.rate or 0)

    def observe(self, status: int | None, retry_after: bool) -> None:
        """One provider answer (``status`` None: no answer)."""
        self._answers.add(cut_reason(status, retry_after))

    async def tick(self) -> None:
        """Apply what was observed since the last tick to the shared rate, and follow it."""
        now = time.monotonic()
        answers, self._answers = self._answers, Answers()
        accepted = answers.accepted / max(now - self._since, 1e-3)
        binding = self._limiter.total_wait_s > self._waited
        reason = verdict(answers, self.policy)
        self._since = now
        self._waited = self._limiter.total_wait_s
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO dispatcher_send_rate (bucket, rate) VALUES ($1, $2)"
                " ON CONFLICT (bucket) DO NOTHING",
                self._bucket,
                self.policy.initial,
            )
            row = await conn.fetchrow(
                """
                SELECT rate, extract(epoch FROM now() - changed_at)::float8 AS since_change,
                       extract(epoch FROM now() - cut_at)::float8 AS since_cut
                FROM dispatcher_send_rate WHERE bucket = $1 FOR UPDATE
                """,
                self._bucket,
            )
            assert row is not None
            rate, new = self._within_bounds(row["rate"]), None
            if reason is not None and (row["since_cut"] is None
                                       or row["since_cut"] >= self.policy.cut_gap_s):  # fmt: skip
                new = cut(rate, accepted, self.policy)
                metrics.RATE_CUTS.labels(reason.value).inc()
                log.info("send_rate_cut", reason=reason.value, old=rate, new=round(new, 1))
                await conn.execute(
                    "UPDATE dispatcher_send_rate SET rate = $2, changed_at = now(), cut_at = now()"
                    " WHERE bucket = $1",
                    self._bucket,
                    new,
                )
            elif reason is None and binding and row["since_change"] >= _RAISE_EVERY_S:
                new = raised(rate, _RAISE_EVERY_S, self.policy)
                if new != rate:
                    await conn.execute(
                        "UPDATE dispatcher_send_rate SET rate = $2, changed_at = now()"
                        " WHERE bucket = $1",
                        self._bucket,
                        new,
                    )
        self._follow(new if new is not None else rate)

    def _within_bounds(self, rate: float | None) -> float | None:
        """The stored rate under this deployment's settings (they may have changed since)."""
        if rate is None:
            return self.policy.initial
        rate = max(rate, self.policy.floor)
        return min(rate, self.policy.ceiling) if self.policy.ceiling else rate

    def _follow(self, rate: float | None) -> None:
        self.rate = rate
        self._limiter.set_rate(rate or 0)
        metrics.SEND_RATE.set(rate or 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop``; database errors are waited out (the limiter keeps its rate)."""
        await repeat(self.tick, self._tick_s, stop, failing="send_rate_not_shared")
