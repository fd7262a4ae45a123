"""Waiting out a transient error: one policy object (tenacity) for the loops that try again,
so every such loop backs off the same way and says so in one log line per retry.

The policies every service uses are here, their constants overridable in settings
(``sms_events.settings.RetrySettings``): ``OUTAGES`` waits out a database or broker that is
away, ``EVENT_FAILURES`` tries an event that fails a few times before it is dead-lettered,
``CONFLICTS`` retries a write that lost a race."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    stop_never,
    wait_random_exponential,
)
from tenacity.retry import retry_base
from tenacity.stop import stop_base

__all__ = [
    "APPEND_RACES",
    "CONFLICTS",
    "EVENT_FAILURES",
    "EVENT_FAILURE_ATTEMPTS",
    "OUTAGES",
    "RetryPolicy",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to ``attempts`` tries (None: no limit, until stopped); before try n + 1 a random
    wait of up to ``min(cap_s, base_s * 2**n)`` ("full jitter": writers that collided do not
    retry in step and collide again)."""

    attempts: int | None
    base_s: float
    cap_s: float

    def retrying(
        self,
        *transient: type[BaseException],
        event: str,
        retry_if: Callable[[BaseException], bool] | None = None,
        stop: asyncio.Event | None = None,
        give_up: Callable[[], bool] | None = None,
        within_s: float | None = None,
        level: str = "warning",
        **fields: object,
    ) -> AsyncRetrying:
        """Iterate it (``async for attempt in …: with attempt: …``); the last error is raised
        as it is once the tries are used up. An error is retried if it is one of
        ``transient`` or ``retry_if`` says so. No try starts once ``stop`` is set (a wait is
        cut short by it), once ``give_up()`` is true, or when the next would start past
        ``within_s`` seconds: then too the last error is raised, and the caller tells them
        apart by looking at ``stop``. Each retry is logged as ``event`` at ``level``."""
        last: list[BaseException | None] = [None]

        def note(state: RetryCallState) -> None:
            last[0] = error = state.outcome.exception() if state.outcome else None
            getattr(log, level)(
                event, attempt=state.attempt_number, error=type(error).__name__, **fields
            )

        async def sleep(seconds: float) -> None:
            if stop is None:
                await asyncio.sleep(seconds)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
            if stop.is_set() and last[0] is not None:
                raise last[0]  # stopping: no further try

        before_sleep: Callable[[RetryCallState], None] = note
        return AsyncRetrying(
            stop=self._stop(stop, give_up, within_s),
            wait=wait_random_exponential(multiplier=self.base_s, max=self.cap_s),
            retry=_retry(transient, retry_if),
            before_sleep=before_sleep,
            sleep=sleep,
            reraise=True,
        )

    def _stop(
        self,
        stop: asyncio.Event | None,
        give_up: Callable[[], bool] | None,
        within_s: float | None,
    ) -> stop_base:
        condition: stop_base = (
            stop_never if self.attempts is None else stop_after_attempt(self.attempts)
        )
        if within_s is not None:
            condition = condition | stop_before_delay(within_s)
        if stop is not None:
            condition = condition | _when(stop.is_set)
        if give_up is not None:
            condition = condition | _when(give_up)
        return condition


class _when(stop_base):  # lower case like tenacity's own stop conditions
    def __init__(self, predicate: Callable[[], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._predicate()


def _retry(
    transient: tuple[type[BaseException], ...],
    retry_if: Callable[[BaseException], bool] | None,
) -> retry_base:
    by_type = retry_if_exception_type(transient)
    return by_type if retry_if is None else by_type | retry_if_exception(retry_if)


CONFLICTS = RetryPolicy(attempts=5, base_s=0.01, cap_s=1.0)
"""A write that lost a race (version taken, deadlock, serialization): retried at once, in a new
transaction, a few times."""

APPEND_RACES = RetryPolicy(attempts=20, base_s=0.001, cap_s=0.05)
"""An append "at the end" of a stream whose version a concurrent writer took: tried again at the
new end, almost at once (no conflict: the caller asked for whatever the end is)."""

OUTAGES = RetryPolicy(attempts=None, base_s=0.2, cap_s=5.0)
"""A database or broker that is away (not the work's fault): waited out until it is back or the
caller stops."""

EVENT_FAILURE_ATTEMPTS = 3
EVENT_FAILURES = RetryPolicy(attempts=EVENT_FAILURE_ATTEMPTS, base_s=0.1, cap_s=1.0)
"""An event whose handling fails (a bug, bad data, a statement cut off): tried this many times,
then dead-lettered."""
