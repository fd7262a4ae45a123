"""The dispatcher's batch handler against the real PostgreSQL and a real fake provider."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dispatcher.breaker import CircuitBreaker
from dispatcher.domain import RetryPolicy
from dispatcher.handlers import Dispatcher
from dispatcher.holds import handle_holds
from dispatcher.provider import ProviderClient
from dispatcher.ratelimit import RateLimiter
from fake_provider import RunningProvider, Settings, running
from sms_events.contracts import DueMessage, MailingPaused, MailingResumed, MessagesDue
from sms_events.testing.factories import envelope_for

TOKEN = "dispatch-handler-test-token"


@pytest.fixture
async def provider() -> AsyncIterator[RunningProvider]:
    async with running(Settings(port=0, token=TOKEN)) as fake:
        yield fake


_clients: list[ProviderClient] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _clients:
        await _clients.pop().close()


def _dispatcher(
    pool: asyncpg.Pool,
    url: str,
    *,
    breaker: CircuitBreaker | None = None,
    max_attempts: int = 0,
    concurrency: int = 10,
    stopping: asyncio.Event | None = None,
) -> Dispatcher:
    client = ProviderClient(url, TOKEN, concurrency=concurrency, timeout_s=2)
    _clients.append(client)
    return Dispatcher(
        pool,
        client,
        RateLimiter(None, 0),
        breaker or CircuitBreaker(failure_threshold=100),
        RetryPolicy(base_s=1, cap_s=10, max_attempts=max_attempts),
        concurrency=concurrency,
        rng=random.Random(1),
        stopping=stopping,
    )


def _behave(provider: RunningProvider, **changes: float) -> None:
    fake = provider.provider
    fake.settings = dataclasses.replace(fake.settings, **changes)  # type: ignore[arg-type]


def _due(
    n: int = 3, attempt: int = 1, not_after: datetime | None = None
) -> tuple[MessagesDue, list[int]]:
    mailing_id = random.randint(10**9, 10**12)
    ids = [random.randint(10**9, 10**15) for _ in range(n)]
    event = MessagesDue(
        mailing_id=mailing_id,
        batch_id=f"b{mailing_id}",
        text="hello",
        not_after=not_after or datetime.now(UTC) + timedelta(hours=1),
        messages=[
            DueMessage(message_id=m, client_id=m, phone="79991234567", attempt=attempt) for m in ids
        ],
    )
    return event, ids


async def _results(pool: asyncpg.Pool, mailing_id: int) -> dict[str, list[dict[str, Any]]]:
    rows = await pool.fetch(
        "SELECT type, data FROM events WHERE stream_id LIKE $1 ORDER BY global_position",
        f"dispatch-{mailing_id}-%",
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["type"], []).extend(r["data"]["messages"])
    return out


async def test_delivers_and_never_calls_again_when_the_batch_is_redelivered(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    due, ids = _due()
    env = envelope_for(due)
    dispatcher = _dispatcher(pool, provider.url)
    await dispatcher.handle(env)
    await dispatcher.handle(env)  # redelivered after a crash before the ack
    results = await _results(pool, due.mailing_id)
    assert sorted(m["message_id"] for m in results["messages.delivered"]) == sorted(ids)
    assert [provider.provider.journal.message(m)["count"] for m in ids] == [1, 1, 1]


async def test_a_5xx_is_handed_back_for_a_later_attempt(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    _behave(provider, failure_rate=1.0)
    due, _ids = _due(n=1)
    before = datetime.now(UTC)
    await _dispatcher(pool, provider.url).handle(envelope_for(due))
    (failed,) = (await _results(pool, due.mailing_id))["messages.attempt_failed"]
    assert failed["attempts"] == 1 and failed["error"] == "HTTP 500"
    retry_at = datetime.fromisoformat(failed["retry_at"])
    assert before <= retry_at <= datetime.now(UTC) + timedelta(seconds=1)


async def test_a_400_is_final_and_the_attempt_limit_too(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    _behave(provider, reject_rate=1.0)
    due, _ = _due(n=1)
    await _dispatcher(pool, provider.url).handle(envelope_for(due))
    (nd,) = (await _results(pool, due.mailing_id))["messages.undelivered"]
    assert nd["attempts"] == 1 and nd["error"].startswith("HTTP 400")

    _behave(provider, reject_rate=0.0, failure_rate=1.0)
    due, _ids = _due(n=1, attempt=3)
    await _dispatcher(pool, provider.url, max_attempts=3).handle(envelope_for(due))
    (nd,) = (await _results(pool, due.mailing_id))["messages.undelivered"]
    assert (nd["attempts"], nd["error"]) == (3, "HTTP 500")


async def test_end_reached_and_open_circuit_hand_messages_back_without_a_call(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    due, ids = _due(n=1, not_after=datetime.now(UTC) - timedelta(seconds=1))
    await _dispatcher(pool, provider.url).handle(envelope_for(due))
    (late,) = (await _results(pool, due.mailing_id))["messages.attempt_failed"]
    assert (late["attempts"], late["error"]) == (0, "end reached")

    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=30)
    breaker.record(time.monotonic(), success=False)
    due, ids = _due(n=2)
    await _dispatcher(pool, provider.url, breaker=breaker).handle(envelope_for(due))
    held = (await _results(pool, due.mailing_id))["messages.attempt_failed"]
    assert {(m["attempts"], m["error"]) for m in held} == {(0, "provider circuit open")}
    assert all(provider.provider.journal.message(m)["count"] == 0 for m in ids)


async def test_messages_of_a_paused_mailing_are_handed_back_without_a_call(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    due, ids = _due(n=2)
    paused = MailingPaused(mailing_id=due.mailing_id, paused_at=datetime.now(UTC))
    async with pool.acquire() as conn, conn.transaction():
        await handle_holds(conn, [envelope_for(paused)])
    await _dispatcher(pool, provider.url).handle(envelope_for(due))
    held = (await _results(pool, due.mailing_id))["messages.attempt_failed"]
    assert {(m["attempts"], m["error"]) for m in held} == {(0, "mailing paused")}
    assert all(provider.provider.journal.message(m)["count"] == 0 for m in ids)

    resumed = MailingResumed(mailing_id=due.mailing_id, resumed_at=datetime.now(UTC))
    async with pool.acquire() as conn, conn.transaction():
        await handle_holds(conn, [envelope_for(resumed)])
    await _dispatcher(pool, provider.url).handle(envelope_for(due))
    delivered = (await _results(pool, due.mailing_id))["messages.delivered"]
    assert sorted(m["message_id"] for m in delivered) == sorted(ids)


async def test_on_stop_the_calls_in_flight_finish_and_the_rest_are_handed_back_unsent(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    _behave(provider, latency_ms=300)
    stopping = asyncio.Event()
    dispatcher = _dispatcher(pool, provider.url, concurrency=2, stopping=stopping)
    due, ids = _due(n=6)
    handling = asyncio.create_task(dispatcher.handle(envelope_for(due)))
    await asyncio.sleep(0.1)  # two calls in flight, four waiting for a slot
    stopping.set()
    await asyncio.wait_for(handling, 5)

    results = await _results(pool, due.mailing_id)
    sent = {m["message_id"] for m in results["messages.delivered"]}
    assert len(sent) == 2  # finished and recorded, not cut off
    back = results["messages.attempt_failed"]
    assert {m["message_id"] for m in back} == set(ids) - sent
    assert {(m["attempts"], m["error"]) for m in back} == {(0, "dispatcher stopping")}
    calls = {m: provider.provider.journal.message(m)["count"] for m in ids}
    assert calls == {m: int(m in sent) for m in ids}
