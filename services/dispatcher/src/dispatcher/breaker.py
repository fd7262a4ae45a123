"""Circuit breaker for the SMS provider: a pure state machine, the caller passes ``now`` in.

closed --(N consecutive failures, or a failure ratio over a sliding window)--> open
open --(cool-down elapsed, on the next allow())--> half-open
half-open --(the probes succeed)--> closed
half-open --(a probe fails)--> open, with the cool-down multiplied up to a cap

"Failure" means the provider looks unhealthy (the client's RETRYABLE outcome: timeouts, 5xx,
429, connection errors). A message the provider rejected is a healthy answer: record it as a
success.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict, Unpack

__all__ = ["BreakerConfig", "BreakerState", "CircuitBreaker"]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5  # open after this many failures in a row
    failure_ratio: float = 0.5  # ...or when this share of the window's calls failed
    window_s: float = 30.0
    min_calls: int = 20  # the ratio only counts once the window holds this many calls
    window_buckets: int = 10  # the window slides one bucket (window_s / buckets) at a time
    cooldown_s: float = 1.0  # first wait in open before a probe
    max_cooldown_s: float = 60.0
    backoff: float = 2.0  # cool-down multiplier after each failed probe
    half_open_probes: int = 1  # probes let through at once; all must succeed to close
    probe_timeout_s: float = 30.0  # a probe never recorded frees its slot after this long

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.min_calls < 1 or self.half_open_probes < 1:
            raise ValueError("failure_threshold, min_calls and half_open_probes must be >= 1")
        if not 0.0 < self.failure_ratio <= 1.0:
            raise ValueError("failure_ratio must be in (0, 1]")
        if self.window_s <= 0 or self.window_buckets < 1:
            raise ValueError("window_s must be positive and window_buckets >= 1")
        if not 0 < self.cooldown_s <= self.max_cooldown_s:
            raise ValueError("cooldown_s must be positive and at most max_cooldown_s")
        if self.backoff < 1.0 or self.probe_timeout_s <= 0:
            raise ValueError("backoff must be >= 1 and probe_timeout_s positive")


class _Fields(TypedDict, total=False):
    """BreakerConfig's fields, so the breaker can take them as checked keywords."""

    failure_threshold: int
    failure_ratio: float
    window_s: float
    min_calls: int
    window_buckets: int
    cooldown_s: float
    max_cooldown_s: float
    backoff: float
    half_open_probes: int
    probe_timeout_s: float


class _Window:
    """Calls and failures over the last ``window_s``, in buckets, with running totals."""

    def __init__(self, window_s: float, buckets: int) -> None:
        self._width = window_s / buckets
        self._buckets = buckets
        self._slots: deque[list[int]] = deque()  # [bucket index, calls, failures]
        self.calls = 0
        self.failures = 0

    def _slide(self, now: float) -> int:
        index = math.floor(now / self._width)
        if self._slots and index < self._slots[-1][0]:
            index = self._slots[-1][0]  # a clock stepping back counts in the newest bucket
        while self._slots and self._slots[0][0] <= index - self._buckets:
            _, calls, failures = self._slots.popleft()
            self.calls -= calls
            self.failures -= failures
        return index

    def add(self, now: float, failed: bool) -> None:
        index = self._slide(now)
        if not self._slots or self._slots[-1][0] != index:
            self._slots.append([index, 0, 0])
        slot = self._slots[-1]
        slot[1] += 1
        self.calls += 1
        if failed:
            slot[2] += 1
            self.failures += 1

    def clear(self) -> None:
        self._slots.clear()
        self.calls = self.failures = 0


class CircuitBreaker:
    """Decides whether a send may go to the provider now. Not thread-safe (one event loop).

    Takes either a ``BreakerConfig`` or its fields as keywords (``failure_threshold=20,
    cooldown_s=5``). ``state`` is the stored state: an open breaker whose cool-down has passed
    turns half-open on the next ``allow()``. ``on_change(old, new, now)`` is called on every
    transition (for a state gauge or a log line).
    """

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        on_change: Callable[[BreakerState, BreakerState, float], None] | None = None,
        **fields: Unpack[_Fields],
    ) -> None:
        if config is not None and fields:
            raise TypeError("pass either a BreakerConfig or its fields, not both")
        self.config = config or BreakerConfig(**fields)
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._window = _Window(self.config.window_s, self.config.window_buckets)
        self._consecutive = 0
        self._cooldown = self.config.cooldown_s
        self._opened_at = 0.0
        self._probes: deque[float] = deque()  # start times of probes not yet recorded
        self._probe_successes = 0

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def cooldown_s(self) -> float:
        """The cool-down of the current (or next) open period."""
        return self._cooldown

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def allow(self, now: float) -> bool:
        """Whether one call may go out now. In half-open, True hands out a probe slot: the caller
        must ``record()`` its result (or the slot frees itself after ``probe_timeout_s``)."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if now < self._opened_at + self._cooldown:
                return False
            self._transition(BreakerState.HALF_OPEN, now)
            self._probes.clear()
            self._probe_successes = 0
        self._expire_probes(now)
        if len(self._probes) < self.config.half_open_probes:
            self._probes.append(now)
            return True
        return False

    def record(self, now: float, success: bool) -> None:
        """The result of a call that ``allow()`` let through."""
        if self._state is BreakerState.CLOSED:
            self._record_closed(now, success)
        elif self._state is BreakerState.HALF_OPEN:
            self._record_probe(now, success)
        # While open, results of calls let through before opening change nothing: the
        # decision to close belongs to the probes.

    def retry_in(self, now: float) -> float:
        """Seconds until ``allow()`` may next return True (0 if it would now)."""
        return self.retry_at(now) - now

    def retry_at(self, now: float) -> float:
        """When ``allow()`` may next return True (``now`` if it would now)."""
        if self._state is BreakerState.CLOSED:
            return now
        if self._state is BreakerState.OPEN:
            return max(now, self._opened_at + self._cooldown)
        live = [t for t in self._probes if t + self.config.probe_timeout_s > now]
        if len(live) < self.config.half_open_probes:
            return now
        # Every probe slot is taken: look again after a short while, or when one expires.
        return min(now + self.config.cooldown_s, min(live) + self.config.probe_timeout_s)

    # -- internals -----------------------------------------------------------------------------

    def _record_closed(self, now: float, success: bool) -> None:
        self._window.add(now, failed=not success)
        if success:
            self._consecutive = 0
            return
        self._consecutive += 1
        cfg = self.config
        over_ratio = (
            self._window.calls >= cfg.min_calls
            and self._window.failures >= cfg.failure_ratio * self._window.calls
        )
        if self._consecutive >= cfg.failure_threshold or over_ratio:
            self._cooldown = cfg.cooldown_s
            self._open(now)

    def _record_probe(self, now: float, success: bool) -> None:
        if self._probes:
            self._probes.popleft()
        if not success:
            self._cooldown = min(self._cooldown * self.config.backoff, self.config.max_cooldown_s)
            self._open(now)
            return
        self._probe_successes += 1
        if self._probe_successes >= self.config.half_open_probes:
            self._window.clear()
            self._consecutive = 0
            self._cooldown = self.config.cooldown_s
            self._probes.clear()
            self._transition(BreakerState.CLOSED, now)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._probes.clear()
        self._transition(BreakerState.OPEN, now)

    def _expire_probes(self, now: float) -> None:
        while self._probes and self._probes[0] + self.config.probe_timeout_s <= now:
            self._probes.popleft()

    def _transition(self, new: BreakerState, now: float) -> None:
        old, self._state = self._state, new
        if self._on_change is not None and old is not new:
            self._on_change(old, new, now)
