"""When to try a failed send again: capped exponential backoff with full jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

__all__ = ["retry_delay", "retry_due"]

# 2**1000 already dwarfs any cap; stopping there keeps the float finite for absurd attempts.
_MAX_EXPONENT = 1000


def retry_delay(
    attempt: int,
    base_s: float,
    cap_s: float,
    rng: random.Random,
    retry_after_s: float | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    The backoff is ``uniform(0, min(cap_s, base_s * 2**(attempt - 1)))`` ("full jitter"), so
    concurrent failures spread out instead of retrying in lockstep. A ``Retry-After`` from the
    provider is a lower bound and is not capped: the provider asked us to wait that long.
    """
    if attempt < 1:
        raise ValueError("attempt counts retries from 1")
    if base_s < 0 or cap_s < 0:
        raise ValueError("base_s and cap_s must not be negative")
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    delay = rng.uniform(0.0, ceiling)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


def retry_due(
    now: datetime,
    attempt: int,
    base_s: float,
    cap_s: float,
    rng: random.Random,
    retry_after_s: float | None,
) -> datetime:
    """The instant (UTC) retry number ``attempt`` becomes due: ``now`` plus ``retry_delay(...)``.

    The caller still passes the result to ``send_time`` as ``not_before``, so the retry lands
    inside the client's send window and before the mailing's end (or is dropped).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    delay = retry_delay(attempt, base_s, cap_s, rng, retry_after_s)
    return now.astimezone(UTC) + timedelta(seconds=delay)
