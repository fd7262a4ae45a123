"""Pure rules of the statistics by dimension: where a message counts (its client's operator
code, tag and time zone when it was scheduled) and its delivery latency bucket; percentiles
read back from the bucket counts. No I/O, no clock.

Both are functions of a message's state, so a batch moves them as it moves every aggregate in
stats.py: minus what the old state contributed, plus what the new one does. A message going
from SC to DL leaves its SC bucket for the DL one; a withdrawn message leaves them all.

Latency runs from the message's first due time (its ``messages.scheduled``) to the answer that
settled it: the first delivery's ``sent_at``, or the last final failure's ``failed_at``. The
histogram's buckets are fixed and log-spaced, ten per decade from 0.1 s: a bucket's upper edge
is 10^0.1 (about 1.259) times its lower one, so a percentile read as the upper edge of the
bucket holding it is at most 25.9% above the true value and never below it; an exact histogram
(or a sketch merged per batch) would need the messages, or state that cannot shrink when a
message leaves a bucket. Two rows per mailing and decade of latency, whatever its size.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from reporter.domain import MessageState, Status

__all__ = [
    "DIMENSIONS",
    "FLOOR_S",
    "LAST_BUCKET",
    "NO_TAG",
    "PERCENTILES",
    "RESOLUTION",
    "STEPS_PER_DECADE",
    "UNKNOWN",
    "Latency",
    "dimension_keys",
    "latency",
    "latency_bucket",
    "latency_of",
    "lower_edge",
    "upper_edge",
]

DIMENSIONS: Final = ("operator_code", "tag", "time_zone")
UNKNOWN: Final = "unknown"
"""The dimension of messages whose client's values were not recorded (scheduled before events
carried them): one bucket, value ''."""
NO_TAG: Final = ""  # the API stores a blank tag as none, so '' is no real tag

FLOOR_S: Final = 0.1
STEPS_PER_DECADE: Final = 10
LAST_BUCKET: Final = 80
"""Bucket 0 is [0, 0.1 s); bucket i is [0.1 s * 10^((i-1)/10), 0.1 s * 10^(i/10)); the last
(from 0.1 s * 10^7.9, about 92 days, far past any mailing's end) is open-ended."""
PERCENTILES: Final = (50, 90, 99)
RESOLUTION: Final = round(10 ** (1 / STEPS_PER_DECADE) - 1, 3)
"""How far above the true value a percentile may read (0.259: a bucket's width)."""

_SETTLED: Final = (Status.DELIVERED, Status.UNDELIVERED)


def dimension_keys(s: MessageState) -> tuple[tuple[str, str], ...]:
    """The (dimension, value) buckets a message counts in."""
    c = s.client
    if c is None:
        return ((UNKNOWN, ""),)
    return (
        ("operator_code", c.operator_code),
        ("tag", c.tag or NO_TAG),
        ("time_zone", c.time_zone),
    )


def upper_edge(bucket: int) -> float | None:
    """The bucket's upper edge in seconds (None: the last bucket has none)."""
    if bucket >= LAST_BUCKET:
        return None
    return FLOOR_S * 10 ** (bucket / STEPS_PER_DECADE)


_UPPER_EDGES: Final = tuple(FLOOR_S * 10 ** (b / STEPS_PER_DECADE) for b in range(LAST_BUCKET))
"""The upper edge of every bucket but the last, ascending (``upper_edge``'s values)."""


def lower_edge(bucket: int) -> float:
    return 0.0 if bucket <= 0 else FLOOR_S * 10 ** ((bucket - 1) / STEPS_PER_DECADE)


def latency_bucket(seconds: float) -> int:
    """The bucket of a latency (a negative one, from clocks apart, counts in bucket 0): the
    number of upper edges at or below it, found among the edges themselves (no logarithm to
    miss one by a rounding step)."""
    return bisect_right(_UPPER_EDGES, seconds)


def latency_of(s: MessageState) -> int | None:
    """The latency bucket a message counts in: settled (DL, ND) with a known first due time."""
    if s.status not in _SETTLED or s.first_due_at is None or s.datetime_send is None:
        return None
    return latency_bucket(_seconds(s.first_due_at, s.datetime_send))


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


@dataclass(frozen=True, slots=True)
class Latency:
    """Percentiles read from bucket counts: each the upper edge of the bucket holding that
    rank (nearest rank), in seconds; the open last bucket gives its lower edge."""

    settled: int
    percentiles: dict[int, float]
    max_s: float


def latency(counts: Mapping[int, int], percentiles: Iterable[int] = PERCENTILES) -> Latency | None:
    """Percentiles of the latencies counted in ``counts`` (bucket -> messages), None with none."""
    buckets = sorted((b, n) for b, n in counts.items() if n > 0)
    total = sum(n for _, n in buckets)
    if total == 0:
        return None
    out: dict[int, float] = {}
    for p in sorted(percentiles):
        rank = max(1, -(-p * total // 100))  # ceil(p% of total): the nearest rank
        seen = 0
        for bucket, n in buckets:
            seen += n
            if seen >= rank:
                out[p] = _value(bucket)
                break
    return Latency(settled=total, percentiles=out, max_s=_value(buckets[-1][0]))


def _value(bucket: int) -> float:
    edge = upper_edge(bucket)
    return round(edge if edge is not None else lower_edge(bucket), 3)
