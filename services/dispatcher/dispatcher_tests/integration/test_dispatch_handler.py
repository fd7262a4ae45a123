"""The dispatcher's batch handler against the real PostgreSQL and a real fake provider."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from dispatcher.adaptive_rate import AdaptiveRate
from dispatcher.breaker import CircuitBreaker
from dispatcher.claims import OwnerLease
from dispatcher.holds import apply_holds
from dispatcher.ratelimit import RateLimiter
from dispatcher.send_rate import RatePolicy
from fake_provider import RunningProvider
from sms_events.contracts import MailingPaused, MailingResumed
from sms_events.testing.factories import envelope_for

from .dispatch_support import behave, due_messages, new_dispatcher, outcomes_of, spawn


async def test_delivers_and_never_calls_again_when_the_batch_is_redelivered(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    due, ids = due_messages()
    env = envelope_for(due)
    dispatcher = await new_dispatcher(pool, provider.url)
    await dispatcher.handle(env)
    await dispatcher.handle(env)  # redelivered after a crash before the ack
    results = await outcomes_of(pool, due.mailing_id)
    assert sorted(m["message_id"] for m in results["messages.delivered"]) == sorted(ids)
    assert [provider.provider.journal.message(m)["count"] for m in ids] == [1, 1, 1]


async def test_a_5xx_is_handed_back_for_a_later_attempt(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    behave(provider, failure_rate=1.0)
    due, _ids = due_messages(n=1)
    before = datetime.now(UTC)
    await (await new_dispatcher(pool, provider.url)).handle(envelope_for(due))
    (failed,) = (await outcomes_of(pool, due.mailing_id))["messages.attempt_failed"]
    assert failed["attempts"] == 1 and failed["error"] == "HTTP 500"
    retry_at = datetime.fromisoformat(failed["retry_at"])
    assert before <= retry_at <= datetime.now(UTC) + timedelta(seconds=1)


async def test_a_400_is_final_and_the_attempt_limit_too(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    behave(provider, reject_rate=1.0)
    due, _ = due_messages(n=1)
    await (await new_dispatcher(pool, provider.url)).handle(envelope_for(due))
    (nd,) = (await outcomes_of(pool, due.mailing_id))["messages.undelivered"]
    assert nd["attempts"] == 1 and nd["error"].startswith("HTTP 400")

    behave(provider, reject_rate=0.0, failure_rate=1.0)
    due, _ids = due_messages(n=1, attempt=3)
    await (await new_dispatcher(pool, provider.url, max_attempts=3)).handle(envelope_for(due))
    (nd,) = (await outcomes_of(pool, due.mailing_id))["messages.undelivered"]
    assert (nd["attempts"], nd["error"]) == (3, "HTTP 500")


async def test_end_reached_and_open_circuit_hand_messages_back_without_a_call(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    due, ids = due_messages(n=1, not_after=datetime.now(UTC) - timedelta(seconds=1))
    await (await new_dispatcher(pool, provider.url)).handle(envelope_for(due))
    (late,) = (await outcomes_of(pool, due.mailing_id))["messages.attempt_failed"]
    assert (late["attempts"], late["error"]) == (0, "end reached")

    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=30)
    breaker.record(time.monotonic(), success=False)
    due, ids = due_messages(n=2)
    await (await new_dispatcher(pool, provider.url, breaker=breaker)).handle(envelope_for(due))
    held = (await outcomes_of(pool, due.mailing_id))["messages.attempt_failed"]
    assert {(m["attempts"], m["error"]) for m in held} == {(0, "provider circuit open")}
    assert all(provider.provider.journal.message(m)["count"] == 0 for m in ids)


async def test_messages_of_a_paused_mailing_are_handed_back_without_a_call(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    due, ids = due_messages(n=2)
    paused = MailingPaused(mailing_id=due.mailing_id, paused_at=datetime.now(UTC))
    async with pool.acquire() as conn, conn.transaction():
        await apply_holds(conn, [envelope_for(paused)])
    await (await new_dispatcher(pool, provider.url)).handle(envelope_for(due))
    held = (await outcomes_of(pool, due.mailing_id))["messages.attempt_failed"]
    assert {(m["attempts"], m["error"]) for m in held} == {(0, "mailing paused")}
    assert all(provider.provider.journal.message(m)["count"] == 0 for m in ids)

    resumed = MailingResumed(mailing_id=due.mailing_id, resumed_at=datetime.now(UTC))
    async with pool.acquire() as conn, conn.transaction():
        await apply_holds(conn, [envelope_for(resumed)])
    await (await new_dispatcher(pool, provider.url)).handle(envelope_for(due))
    delivered = (await outcomes_of(pool, due.mailing_id))["messages.delivered"]
    assert sorted(m["message_id"] for m in delivered) == sorted(ids)


async def test_on_stop_the_calls_in_flight_finish_and_the_rest_are_handed_back_unsent(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    behave(provider, latency_ms=300)
    stopping = asyncio.Event()
    dispatcher = await new_dispatcher(pool, provider.url, concurrency=2, stopping=stopping)
    due, ids = due_messages(n=6)
    handling = asyncio.create_task(dispatcher.handle(envelope_for(due)))
    await asyncio.sleep(0.1)  # two calls in flight, four waiting for a slot
    stopping.set()
    await asyncio.wait_for(handling, 5)

    results = await outcomes_of(pool, due.mailing_id)
    sent = {m["message_id"] for m in results["messages.delivered"]}
    assert len(sent) == 2  # finished and recorded, not cut off
    back = results["messages.attempt_failed"]
    assert {m["message_id"] for m in back} == set(ids) - sent
    assert {(m["attempts"], m["error"]) for m in back} == {(0, "dispatcher stopping")}
    calls = {m: provider.provider.journal.message(m)["count"] for m in ids}
    assert calls == {m: int(m in sent) for m in ids}


async def test_two_copies_of_a_due_event_on_two_dispatchers_call_once(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    behave(provider, latency_ms=100)
    due, ids = due_messages(n=20)
    env = envelope_for(due)
    one, two = await new_dispatcher(pool, provider.url), await new_dispatcher(pool, provider.url)
    await asyncio.gather(one.handle(env), two.handle(env), one.handle(env))
    assert [provider.provider.journal.message(m)["count"] for m in ids] == [1] * len(ids)
    delivered = (await outcomes_of(pool, due.mailing_id))["messages.delivered"]
    assert sorted(m["message_id"] for m in delivered) == sorted(ids)


async def test_claims_of_a_dead_dispatcher_are_taken_over_after_its_lease(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    due, ids = due_messages(n=4)
    dead = OwnerLease(pool, ttl_s=3)
    await dead.renew()
    # It claimed every message, then was killed before any outcome was recorded.
    await pool.execute(
        "INSERT INTO dispatcher_attempts (message_id, attempt, owner)"
        " SELECT unnest($1::bigint[]), 1, $2",
        ids,
        dead.owner,
    )
    lease_end = await pool.fetchval(
        "SELECT alive_until FROM dispatcher_owners WHERE owner = $1", dead.owner
    )
    dispatcher = await new_dispatcher(pool, provider.url)
    # Redelivered before the lease ran out: handed back until then, nothing called.
    await dispatcher.handle(envelope_for(due))
    back = (await outcomes_of(pool, due.mailing_id))["messages.attempt_failed"]
    assert {(m["attempts"], m["error"]) for m in back} == {(0, "being sent by another dispatcher")}
    assert {datetime.fromisoformat(m["retry_at"]) for m in back} == {lease_end}
    assert all(provider.provider.journal.message(m)["count"] == 0 for m in ids)
    # Handed over again after the lease: taken over and sent, once each.
    await asyncio.sleep(max(0.0, (lease_end - datetime.now(UTC)).total_seconds()) + 0.1)
    await dispatcher.handle(envelope_for(due))
    assert [provider.provider.journal.message(m)["count"] for m in ids] == [1] * len(ids)
    delivered = (await outcomes_of(pool, due.mailing_id))["messages.delivered"]
    assert sorted(m["message_id"] for m in delivered) == sorted(ids)


async def test_a_call_starts_only_inside_the_send_slot(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    now = datetime.now(UTC)
    closed, closed_ids = due_messages(n=2, due_at=now - timedelta(hours=1), closes_at=now)
    soon = now + timedelta(minutes=5)
    early, early_ids = due_messages(n=1, due_at=soon, closes_at=soon + timedelta(hours=1))
    dispatcher = await new_dispatcher(pool, provider.url)
    await dispatcher.handle(envelope_for(closed))
    await dispatcher.handle(envelope_for(early))
    back = (await outcomes_of(pool, closed.mailing_id))["messages.attempt_failed"]
    assert {(m["attempts"], m["error"]) for m in back} == {(0, "outside the send window")}
    (wait,) = (await outcomes_of(pool, early.mailing_id))["messages.attempt_failed"]
    assert datetime.fromisoformat(wait["retry_at"]) == soon
    assert all(provider.provider.journal.message(m)["count"] == 0 for m in closed_ids + early_ids)
    # Handed back unsent, the claims are released: the next hand-over in the slot calls.
    slot, _ = due_messages(n=1)
    again = slot.model_copy(
        update={"messages": [m.model_copy(update={"due_at": None, "closes_at": None})
                             for m in closed.messages]}
    )  # fmt: skip
    await dispatcher.handle(envelope_for(again))
    assert all(provider.provider.journal.message(m)["count"] == 1 for m in closed_ids)


async def test_the_window_is_checked_after_the_wait_for_a_slot(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    # One slot, three messages: each waits for the one before it. The dispatcher's clock moves
    # 100 ms each time it is read (three reads per message called: before and after the rate
    # limit, and for the verdict), and the window closes 550 ms after the start: the third
    # message gets its slot after the close and is handed back. Deterministic however slow
    # the machine is.
    start = datetime.now(UTC)
    reads = iter(range(10**6))

    def clock() -> datetime:
        return start + timedelta(milliseconds=100 * next(reads))

    closes = start + timedelta(milliseconds=550)
    due, ids = due_messages(n=3, due_at=start, closes_at=closes)
    dispatcher = await new_dispatcher(pool, provider.url, concurrency=1, clock=clock)
    await dispatcher.handle(envelope_for(due))
    results = await outcomes_of(pool, due.mailing_id)
    assert len(results["messages.delivered"]) == 2
    (back,) = results["messages.attempt_failed"]
    assert back["error"] == "outside the send window"
    journal = provider.provider.journal
    assert sum(journal.message(m)["count"] for m in ids) == 2


async def test_a_lost_lease_hands_claimed_messages_back_without_a_call(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    lease = OwnerLease(pool, ttl_s=3)  # never renewed: not valid
    due, ids = due_messages(n=2)
    await (await new_dispatcher(pool, provider.url, lease=lease)).handle(envelope_for(due))
    back = (await outcomes_of(pool, due.mailing_id))["messages.attempt_failed"]
    assert {(m["attempts"], m["error"]) for m in back} == {(0, "dispatcher lease lost")}
    assert all(provider.provider.journal.message(m)["count"] == 0 for m in ids)


async def test_retry_after_holds_every_replica(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    behave(provider, rate_429=1.0)
    due, _ = due_messages(n=1)
    await (await new_dispatcher(pool, provider.url)).handle(envelope_for(due))
    behave(provider, rate_429=0.0)
    other = await new_dispatcher(pool, provider.url)
    await other._hold.refresh()  # what its refresh loop does twice a second
    due, ids = due_messages(n=2)
    await other.handle(envelope_for(due))
    back = (await outcomes_of(pool, due.mailing_id))["messages.attempt_failed"]
    assert {m["error"] for m in back} == {"provider asked to wait (Retry-After)"}
    assert all(provider.provider.journal.message(m)["count"] == 0 for m in ids)


async def test_404_opens_the_circuit_instead_of_failing_each_message(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=30)
    due, _ = due_messages(n=10)
    dispatcher = await new_dispatcher(
        pool, provider.url + "/no-such-path", breaker=breaker, concurrency=1
    )
    await dispatcher.handle(envelope_for(due))
    results = await outcomes_of(pool, due.mailing_id)
    assert "messages.undelivered" not in results
    errors = [m["error"] for m in results["messages.attempt_failed"]]
    assert errors.count("HTTP 404") == 3
    assert all(e.startswith("provider circuit open") for e in errors if e != "HTTP 404")


async def test_the_adaptive_rate_settles_under_a_throttle_and_climbs_when_it_lifts(
    pool: asyncpg.Pool, provider: RunningProvider
) -> None:
    """Free at first; a provider that throttles above 300/s makes it cut to about what the
    provider accepted, after which 429s stay rare; when the throttle lifts, the rate climbs."""
    behave(provider, latency_ms=5, throttle_rps=300)
    limiter = RateLimiter(pool, 0, key=f"adaptive-{random.getrandbits(32)}", slot_s=0.1)
    send_rate = AdaptiveRate(
        pool, limiter, RatePolicy(floor=20, step=100, cut_gap_s=0.5), bucket=limiter.key,
        tick_s=0.05,
    )  # fmt: skip
    lease = OwnerLease(pool, ttl_s=30)
    await lease.renew()
    spawn(send_rate.run)
    spawn(lease.run)
    dispatcher = await new_dispatcher(pool, provider.url, concurrency=50, limiter=limiter,
                                   send_rate=send_rate, lease=lease)  # fmt: skip

    async def send(n: int) -> list[int]:
        """Statuses of the provider's answers to ``n`` more messages, in the order they came."""
        journal = provider.provider.journal
        first = len(journal.statuses)
        for _ in range(n // 250):
            await dispatcher.handle(envelope_for(due_messages(n=250)[0]))
        return list(journal.statuses[first:])

    burst = await send(500)
    assert burst.count(429) > 0 and send_rate.rate is not None  # it was throttled, and cut
    # A sawtooth: it climbs a step a second until the provider throttles, then halves.
    assert 20 <= send_rate.rate <= 600
    steady = await send(750)
    share_429 = steady.count(429) / len(steady)
    print(f"adaptive rate under a 300/s throttle: {send_rate.rate:.0f}/s, 429s {share_429:.1%}")
    assert share_429 < 0.25, "the rate keeps running into the throttle"
    assert 20 <= send_rate.rate <= 600

    behave(provider, throttle_rps=0)
    before = send_rate.rate
    lifted = await send(750)
    print(f"after the throttle lifted: {send_rate.rate:.0f}/s (was {before:.0f}/s)")
    assert lifted.count(429) == 0
    assert send_rate.rate > before, "the rate did not climb once the provider kept up"
