"""The adaptive send rate's rule (pure): additive increase while the provider keeps up, a
multiplicative cut when it throttles, between a floor and an optional ceiling.

The rate is shared by every replica (``adaptive_rate.py`` keeps it in PostgreSQL and applies
this rule under a row lock), so the provider sees one sender that backs off, not several.

- ``None`` is "free": no ceiling was set and the provider has not throttled yet, so nothing
  limits the calls but the dispatcher's concurrency.
- A cut halves the rate; a free rate is cut from what the provider accepted lately (not from
  what was sent: a free dispatcher sends far above the provider's limit, and halving that
  would take many seconds of 429s to come down). One burst of throttled calls answers
  together, so at most one cut is made per ``cut_gap_s``.
- Any throttle (429, Retry-After) cuts; 5xx cut only when they are a real share of the answers
  (``error_share``): random failures of a healthy provider are the retry policy's business.
- The rate rises by ``step`` per second, and only while it is what holds the calls back
  (callers waited for it): a limit nobody reaches says nothing about the provider, and raising
  it would let a later burst run straight into the provider's limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Answers", "CutReason", "RatePolicy", "cut", "cut_reason", "raised", "verdict"]


class CutReason(StrEnum):
    THROTTLED = "throttled"  # 429, or a Retry-After hold
    SERVER_ERROR = "server_error"  # 5xx


@dataclass(frozen=True, slots=True)
class RatePolicy:
    floor: float
    """Never below this (messages per second over all replicas)."""
    ceiling: float = 0.0
    """Never above this; 0: no ceiling (free until the provider throttles)."""
    step: float = 20.0
    """Increase per second while the rate is binding and the provider keeps up."""
    factor: float = 0.5
    """A cut multiplies the rate by this."""
    cut_gap_s: float = 1.0
    """At most one cut per this long: the throttled answers of one burst arrive together."""
    error_share: float = 0.25
    """5xx cut only when at least this share of the answers since the last look failed (and
    ``min_errors`` of them): a provider failing a few calls at random is not overloaded, and
    cutting on every such failure would keep the rate at the floor."""
    min_errors: int = 3

    def __post_init__(self) -> None:
        if self.floor <= 0:
            raise ValueError("the floor must be positive")
        if self.ceiling and self.ceiling < self.floor:
            raise ValueError("the ceiling must not be below the floor")
        if not 0 < self.factor < 1:
            raise ValueError("the cut factor must be between 0 and 1")
        if self.step < 0 or self.cut_gap_s < 0:
            raise ValueError("step and cut gap must not be negative")

    @property
    def initial(self) -> float | None:
        return self.ceiling or None


def cut_reason(status: int | None, retry_after: bool) -> CutReason | None:
    """What a provider answer says about the rate: a reason to cut, or nothing."""
    if status == 429 or retry_after:
        return CutReason.THROTTLED
    if status is not None and status >= 500:
        return CutReason.SERVER_ERROR
    return None


@dataclass(slots=True)
class Answers:
    """Provider answers counted since the rate was last looked at."""

    accepted: int = 0
    throttled: int = 0
    server_errors: int = 0

    def add(self, reason: CutReason | None) -> None:
        if reason is None:
            self.accepted += 1
        elif reason is CutReason.THROTTLED:
            self.throttled += 1
        else:
            self.server_errors += 1


def verdict(answers: Answers, policy: RatePolicy) -> CutReason | None:
    """Whether these answers call for a cut: any throttle does; server errors only when they
    are a real share of the answers."""
    if answers.throttled:
        return CutReason.THROTTLED
    total = answers.accepted + answers.server_errors
    errors = answers.server_errors
    if errors >= policy.min_errors and errors >= policy.error_share * total:
        return CutReason.SERVER_ERROR
    return None


def cut(rate: float | None, accepted: float, policy: RatePolicy) -> float:
    """The rate after a throttle; ``accepted`` is the rate of calls the provider did not
    throttle lately (what a free rate is cut from)."""
    base = rate if rate is not None else accepted
    if policy.ceiling:
        base = min(base, policy.ceiling)
    return max(policy.floor, base * policy.factor)


def raised(rate: float | None, elapsed_s: float, policy: RatePolicy) -> float | None:
    """The rate after ``elapsed_s`` seconds of calls held back by it without a throttle."""
    if rate is None:
        return None
    higher = rate + policy.step * max(0.0, elapsed_s)
    return min(higher, policy.ceiling) if policy.ceiling else higher
