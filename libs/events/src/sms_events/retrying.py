"""Waiting out a transient error: one policy object (tenacity) for the loops that try again,
so every such loop backs off the same way and says so in one log line per retry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

__all__ = ["CONFLICTS", "RetryPolicy"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to ``attempts`` tries; before try n + 1 a random wait of up to
    ``min(cap_s, base_s * 2**n)`` ("full jitter": writers that collided do not retry in step
    and collide again)."""

    attempts: int
    base_s: float
    cap_s: float

    def retrying(
        self, *transient: type[BaseException], event: str, **fields: object
    ) -> AsyncRetrying:
        """Iterate it (``async for attempt in …: with attempt: …``); the last error is raised
        as it is once the tries are used up. Each retry is logged as ``event``."""

        def note(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(event, attempt=state.attempt_number, error=type(error).__name__, **fields)

        before_sleep: Callable[[RetryCallState], None] = note
        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=self.base_s, max=self.cap_s),
            retry=retry_if_exception_type(transient),
            before_sleep=before_sleep,
            reraise=True,
        )


CONFLICTS = RetryPolicy(attempts=5, base_s=0.01, cap_s=1.0)
"""A write that lost a race (version taken, deadlock, serialization): retried at once, in a new
transaction, a few times."""
