"""The shared send-rate limit against the real PostgreSQL: replicas share one budget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import pytest

from dispatcher.ratelimit import RateLimiter
from sms_events.db import create_pool
from sms_events.settings import ServiceSettings


def unique_key() -> str:
    return f"test-{uuid4().hex[:12]}"


@pytest.fixture
async def second_pool(settings: ServiceSettings) -> AsyncIterator[asyncpg.Pool]:
    """Another replica's own pool."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def run_for(limiter: RateLimiter, seconds: float, workers: int) -> int:
    """How many single acquisitions complete within ``seconds`` with ``workers`` callers."""
    deadline = time.monotonic() + seconds
    count = 0

    async def worker() -> None:
        nonlocal count
        while True:
            await limiter.acquire()
            if time.monotonic() >= deadline:
                return
            count += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return count


async def test_two_replicas_share_one_rate(pool: asyncpg.Pool, second_pool: asyncpg.Pool) -> None:
    key, rate, seconds = unique_key(), 200.0, 2.0
    a = RateLimiter(pool, rate, key=key)
    b = RateLimiter(second_pool, rate, key=key)
    got_a, got_b = await asyncio.gather(run_for(a, seconds, 20), run_for(b, seconds, 20))
    total = got_a + got_b
    expected = rate * seconds
    assert 0.8 * expected <= total <= 1.15 * expected + a.limit_per_slot, (got_a, got_b)
    assert min(got_a, got_b) >= 0.25 * total, (got_a, got_b)  # both replicas get a share
    assert a.total_wait_s > 0 and b.total_wait_s > 0
    used = await pool.fetchval("SELECT sum(used) FROM dispatcher_rate_slots WHERE bucket = $1", key)
    assert used >= total  # every token spent was claimed from the shared budget


async def test_unlimited_makes_no_database_calls(pool: asyncpg.Pool) -> None:
    key = unique_key()
    limiter = RateLimiter(pool, 0, key=key)
    started = time.perf_counter()
    for _ in range(10_000):
        await limiter.acquire()
    assert time.perf_counter() - started < 1.0
    assert limiter.unlimited
    assert limiter.db_calls == 0
    assert limiter.total_wait_s == 0
    rows = await pool.fetchval("SELECT count(*) FROM dispatcher_rate_slots WHERE bucket = $1", key)
    assert rows == 0
    await RateLimiter(None, 0).acquire(5)  # no pool needed at all


async def test_one_replica_alone_keeps_to_the_rate(pool: asyncpg.Pool) -> None:
    limiter = RateLimiter(pool, 100.0, key=unique_key())
    got = await run_for(limiter, 1.5, 10)
    assert 0.8 * 150 <= got <= 1.15 * 150 + limiter.limit_per_slot


async def test_more_than_a_slot_at_once_spans_several_slots(pool: asyncpg.Pool) -> None:
    limiter = RateLimiter(pool, 50.0, key=unique_key())  # 5 per 100 ms slot
    started = time.monotonic()
    await limiter.acquire(12)  # needs at least three slots: two boundaries
    elapsed = time.monotonic() - started
    assert elapsed >= 0.1
    assert limiter.total_wait_s >= elapsed * 0.9


async def test_reports_each_wait(pool: asyncpg.Pool) -> None:
    waits: list[float] = []
    limiter = RateLimiter(pool, 20.0, key=unique_key(), on_wait=waits.append)  # 2 per slot
    for _ in range(8):
        await limiter.acquire()
    assert len(waits) == 8
    assert sum(waits) == pytest.approx(limiter.total_wait_s)
    assert limiter.total_wait_s >= 0.2  # 8 tokens at 2 per 100 ms: at least 3 slots later


async def test_prunes_old_slots(pool: asyncpg.Pool) -> None:
    key = unique_key()
    await pool.execute(
        "INSERT INTO dispatcher_rate_slots (bucket, slot_us, slot, used, last_grant)"
        " VALUES ($1, 100000, 1, 5, 5)",
        key,
    )
    limiter = RateLimiter(pool, 100.0, key=key, keep_s=60)
    await limiter.acquire()  # the first claim prunes
    slots = await pool.fetch("SELECT slot FROM dispatcher_rate_slots WHERE bucket = $1", key)
    assert len(slots) == 1
    assert slots[0]["slot"] > 1


async def test_database_errors_reach_the_caller(settings: ServiceSettings) -> None:
    broken = await create_pool(settings.database_url, min_size=1, max_size=1)
    await broken.close()
    limiter = RateLimiter(broken, 10.0, key=unique_key())
    with pytest.raises(asyncpg.InterfaceError):
        await limiter.acquire()
