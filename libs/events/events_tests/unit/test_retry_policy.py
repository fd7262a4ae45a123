"""sms_events.retrying.RetryPolicy: what it retries, when it stops, what it raises."""

from __future__ import annotations

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from sms_events.retrying import RetryPolicy

FAST = RetryPolicy(attempts=None, base_s=0.01, cap_s=0.02)


async def _tries(policy: RetryPolicy, error: Exception, **kw: object) -> int:
    tries = 0
    async for attempt in policy.retrying(event="retried", **kw):  # type: ignore[arg-type]
        with attempt:
            tries += 1
            raise error
    return tries


async def test_retries_what_retry_if_accepts_up_to_the_attempts_then_raises_the_last_error() -> (
    None
):
    tries = 0
    with capture_logs() as logs, pytest.raises(ValueError, match="third"):
        async for attempt in RetryPolicy(3, 0.001, 0.001).retrying(
            event="retried", retry_if=lambda e: isinstance(e, ValueError), queue="q"
        ):
            with attempt:
                tries += 1
                raise ValueError(["first", "second", "third"][tries - 1])
    assert tries == 3
    assert [(e["event"], e["attempt"], e["queue"]) for e in logs] == [
        ("retried", 1, "q"),
        ("retried", 2, "q"),
    ]


async def test_an_error_it_does_not_retry_is_raised_at_once() -> None:
    with pytest.raises(KeyError):
        await _tries(FAST, KeyError("no"), retry_if=lambda e: isinstance(e, ValueError))


async def test_without_attempts_it_goes_on_until_stop_cuts_a_wait_short() -> None:
    stop = asyncio.Event()
    slow = RetryPolicy(attempts=None, base_s=60, cap_s=60)
    task = asyncio.create_task(_tries(slow, OSError("away"), retry_if=lambda e: True, stop=stop))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    stop.set()
    with pytest.raises(OSError, match="away"):
        await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 1  # the minute's wait was cut short


async def test_no_try_starts_once_stop_is_set_or_give_up_says_so() -> None:
    stop = asyncio.Event()
    stop.set()
    tries = 0
    with pytest.raises(OSError):
        async for attempt in FAST.retrying(OSError, event="retried", stop=stop):
            with attempt:
                tries += 1
                raise OSError
    assert tries == 1
    with pytest.raises(OSError):
        assert await _tries(FAST, OSError(), retry_if=lambda e: True, give_up=lambda: True)


async def test_within_s_gives_up_before_a_try_would_start_past_it() -> None:
    started = time.monotonic()
    with pytest.raises(OSError):
        await _tries(
            RetryPolicy(None, 0.05, 0.05), OSError(), retry_if=lambda e: True, within_s=0.3
        )
    assert time.monotonic() - started < 0.5
