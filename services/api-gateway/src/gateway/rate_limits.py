"""Request rate limits: a token bucket per API key name and per client address (per gateway
process), answered with 429 and ``Retry-After``.

The buckets are a pure structure over a clock the caller passes, so the rule the unit tests
check is the one that runs. Their number is capped: addresses are chosen by whoever sends the
requests, so the least recently used bucket is dropped once the table is full (a dropped
bucket comes back full, which only ever lets a quiet caller through).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.responses import JSON

__all__ = ["AddressLimitMiddleware", "Rate", "RateLimited", "TokenBuckets"]

MAX_BUCKETS: Final = 100_000


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_s`` requests a second on average, up to ``burst`` at once; 0 turns it off."""

    per_s: float
    burst: float

    @property
    def on(self) -> bool:
        return self.per_s > 0


class RateLimited(Exception):
    """Over a rate limit: ``retry_after_s`` until the next request is let through."""

    def __init__(self, what: str, retry_after_s: float) -> None:
        super().__init__(f"Too many requests {what}; retry after {math.ceil(retry_after_s)} s.")
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class TokenBuckets:
    """One token bucket per key; ``take`` spends a token or says how long until one."""

    def __init__(self, rate: Rate, max_buckets: int = MAX_BUCKETS) -> None:
        self.rate = rate
        self._max = max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, key: str, now: float) -> float | None:
        """None when a request under ``key`` may go now (a token is spent), else the seconds
        until it may."""
        if not self.rate.on:
            return None
        tokens, at = self._buckets.pop(key, (self.rate.burst, now))
        tokens = min(self.rate.burst, tokens + (now - at) * self.rate.per_s)
        wait = None if tokens >= 1 else (1 - tokens) / self.rate.per_s
        self._buckets[key] = (tokens - 1 if wait is None else tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return wait


class AddressLimitMiddleware:
    """Per client address on the paths that take credentials (the API and the login), checked
    before anything is parsed, so guessing keys or passwords is slowed as much as using them.
    Behind a reverse proxy set ``FORWARDED_ALLOW_IPS`` so the address is the caller's."""

    def __init__(
        self,
        app: ASGIApp,
        buckets: TokenBuckets,
        prefixes: tuple[str, ...],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self._buckets = buckets
        self._prefixes = prefixes
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self._prefixes):
            client = scope.get("client")
            address = str(client[0]) if client else "-"
            wait = self._buckets.take(address, self._clock())
            if wait is not None:
                limited = RateLimited("from this address", wait)
                answer = JSON({"detail": str(limited)}, status_code=429, headers=limited.headers())
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
