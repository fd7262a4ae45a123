"""Shared by the dispatcher's integration tests: a dispatcher as one process runs it (its own
owner lease, recorder and provider hold) against a real fake provider, and the events it
appended."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from dispatcher.adaptive_rate import AdaptiveRate
from dispatcher.breaker import CircuitBreaker
from dispatcher.claims import OwnerLease
from dispatcher.domain import SendRetryRule
from dispatcher.handlers import Dispatcher
from dispatcher.provider import ProviderClient
from dispatcher.provider_hold import ProviderHold
from dispatcher.ratelimit import RateLimiter
from dispatcher.recorder import OutcomeRecorder
from fake_provider import RunningProvider
from sms_events.contracts import DueMessage, MessagesDue

TOKEN = "dispatch-handler-test-token"

_clients: list[ProviderClient] = []
_background: list[asyncio.Task[None]] = []
_done = asyncio.Event()


@contextlib.asynccontextmanager
async def cleaning_up() -> AsyncIterator[None]:
    """Around a test: the background tasks it spawned end and its provider clients close."""
    global _done
    _done = asyncio.Event()
    try:
        yield
    finally:
        _done.set()
        await asyncio.gather(*_background)
        _background.clear()
        while _clients:
            await _clients.pop().close()


def spawn(run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run ``run(done)`` until the test ends."""
    _background.append(asyncio.create_task(run(_done)))


async def new_dispatcher(
    pool: asyncpg.Pool,
    url: str,
    *,
    breaker: CircuitBreaker | None = None,
    max_attempts: int = 0,
    concurrency: int = 10,
    stopping: asyncio.Event | None = None,
    lease: OwnerLease | None = None,
    clock: Callable[[], datetime] | None = None,
    limiter: RateLimiter | None = None,
    send_rate: AdaptiveRate | None = None,
    checks_max_age_s: float = 1.0,
) -> Dispatcher:
    client = ProviderClient(url, TOKEN, concurrency=concurrency, timeout_s=2)
    _clients.append(client)
    if lease is None:
        lease = OwnerLease(pool, ttl_s=30)
        await lease.renew()
    recorder = OutcomeRecorder(pool, interval_s=0.002)
    spawn(recorder.run)
    return Dispatcher(
        pool,
        client,
        limiter or RateLimiter(None, 0),
        breaker or CircuitBreaker(failure_threshold=100),
        SendRetryRule(base_s=1, cap_s=10, max_attempts=max_attempts),
        concurrency=concurrency,
        lease=lease,
        recorder=recorder,
        provider_hold=ProviderHold(pool),
        rng=random.Random(1),
        stopping=stopping,
        send_rate=send_rate,
        checks_max_age_s=checks_max_age_s,
        **({"clock": clock} if clock else {}),
    )


def behave(provider: RunningProvider, **changes: float) -> None:
    fake = provider.provider
    fake.settings = dataclasses.replace(fake.settings, **changes)  # type: ignore[arg-type]


def due_messages(
    n: int = 3,
    attempt: int = 1,
    not_after: datetime | None = None,
    due_at: datetime | None = None,
    closes_at: datetime | None = None,
    phones: list[str] | None = None,
) -> tuple[MessagesDue, list[int]]:
    """A due batch of ``n`` messages, to ``phones`` or to phones of their own (an opt-out
    recorded by one test must not touch another's)."""
    mailing_id = random.randint(10**9, 10**12)
    ids = [random.randint(10**9, 10**15) for _ in range(n)]
    phones = phones or [new_phone() for _ in ids]
    event = MessagesDue(
        mailing_id=mailing_id,
        batch_id=f"b{mailing_id}",
        text="hello",
        not_after=not_after or datetime.now(UTC) + timedelta(hours=1),
        messages=[
            DueMessage(
                message_id=m,
                client_id=m,
                phone=phone,
                attempt=attempt,
                due_at=due_at,
                closes_at=closes_at,
            )
            for m, phone in zip(ids, phones, strict=True)
        ],
    )
    return event, ids


def new_phone() -> str:
    return f"7{random.randrange(10**10):010d}"


async def outcomes_of(pool: asyncpg.Pool, mailing_id: int) -> dict[str, list[dict[str, Any]]]:
    rows = await pool.fetch(
        "SELECT type, data FROM events WHERE stream_id LIKE $1 ORDER BY global_position",
        f"dispatch-{mailing_id}-%",
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["type"], []).extend(r["data"]["messages"])
    return out


async def eventually(
    check: Callable[[], Awaitable[bool]], *, what: str, within: float = 10.0
) -> None:
    """Poll ``check`` until it returns True; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)
