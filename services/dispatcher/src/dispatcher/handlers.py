"""Sending one batch of due messages: claim them in one statement, call the provider with
bounded concurrency under the rate limit and the circuit breaker, and record each outcome as
it arrives (``recorder.py``).

Whether a call may start is decided when it starts, after every wait: its phone not opted out
and its mailing neither paused nor cancelled (``call_checks.CallChecks``: looked up for the
whole batch with the claim, and again, at most once a second per batch, for the calls still to
start), inside the message's send slot and
before the mailing's end (``domain.refusal``), while no ``Retry-After`` holds the
provider, the circuit admits it and this process's lease covers its claim. What may not start
is handed back to the scheduler, which times it again. A call keeps its concurrency slot until
its outcome is committed, so calls made and not yet recorded never exceed the concurrency:
that is the most a crash can repeat (``claims.py``).

The consumer runs each ``messages.due`` event inside ``traced`` with its correlation id, so
the result events carry it on. One INFO line per batch (mailing_id and counts); with DEBUG on,
a line per message once its outcome is recorded (``message_sent``,
``message_attempt_failed``, ``message_undelivered``), never with the phone or the text."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from dispatcher import metrics
from dispatcher.adaptive_rate import AdaptiveRate
from dispatcher.breaker import CircuitBreaker
from dispatcher.call_checks import CallChecks
from dispatcher.claims import OwnerLease, claim
from dispatcher.domain import REFUSALS, SendRetryRule, judge, not_attempted, refusal
from dispatcher.holds import hold_of
from dispatcher.provider import ProviderClient
from dispatcher.provider_hold import ProviderHold
from dispatcher.ratelimit import RateLimiter
from dispatcher.recorder import Outcome, OutcomeRecorder
from sms_events.contracts import (
    DeliveredMessage,
    DueMessage,
    FailedAttempt,
    MessagesDue,
)
from sms_events.envelope import Envelope

__all__ = ["Dispatcher"]

log = structlog.get_logger(__name__)

# The error a message handed back unsent on shutdown carries (the scheduler hands it over again
# at once; no attempt is counted).
STOPPING = "dispatcher stopping"
CLAIM_LOST = "dispatcher lease lost"
CLAIMED_ELSEWHERE = "being sent by another dispatcher"


def _now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: ProviderClient,
        limiter: RateLimiter,
        breaker: CircuitBreaker,
        policy: SendRetryRule,
        *,
        concurrency: int,
        lease: OwnerLease,
        recorder: OutcomeRecorder,
        provider_hold: ProviderHold,
        send_rate: AdaptiveRate | None = None,
        clock: Callable[[], datetime] = _now,
        rng: random.Random | None = None,
        stopping: asyncio.Event | None = None,
        checks_max_age_s: float = 1.0,
    ) -> None:
        """``stopping`` set (the service's stop signal) means: finish the provider calls in
        flight, but start no new one; the messages not sent yet are handed back to the
        scheduler, so a shutdown neither waits for a whole prefetch of batches to go out nor
        leaves calls unrecorded. A batch's opt-outs and its mailing's hold are looked up again
        before a call once the last lookup is older than ``checks_max_age_s``."""
        self._pool = pool
        self._client = client
        self._limiter = limiter
        self._breaker = breaker
        self._policy = policy
        self._slots = asyncio.Semaphore(concurrency)
        self._lease = lease
        self._recorder = recorder
        self._hold = provider_hold
        self._send_rate = send_rate
        self._clock = clock
        self._rng = rng or random.Random()
        self._last_failure: str | None = None  # shown while the circuit is open
        self._stopping = stopping or asyncio.Event()
        self._checks_max_age_s = checks_max_age_s
        self._in_hand: set[tuple[int, int]] = set()  # (message, attempt) reserved by a task here

    async def handle(self, env: Envelope) -> None:
        """Handle one ``messages.due`` event; returns once every outcome is committed."""
        due = env.payload()
        assert isinstance(due, MessagesDue)
        by_id = {m.message_id: m for m in due.messages}
        # Pairs are reserved here before the claim statement: two copies of a due event handled
        # side by side in this process share an owner id, so the database cannot tell them
        # apart; the copy that reserved a pair first is the only one that may claim it.
        wanted = {(m.message_id, m.attempt) for m in due.messages}
        elsewhere_here = wanted & self._in_hand
        mine = wanted - elsewhere_here
        self._in_hand |= mine
        try:
            await self._handle_reserved(due, by_id, mine, {m for m, _ in elsewhere_here})
        finally:
            self._in_hand -= mine

    async def _handle_reserved(
        self,
        due: MessagesDue,
        by_id: dict[int, DueMessage],
        mine: set[tuple[int, int]],
        held_here: set[int],
    ) -> None:
        async with self._pool.acquire() as conn:
            hold = await hold_of(conn, due.mailing_id)
            if hold is None:
                claimed = await claim(conn, self._lease.owner, mine)
                todo = [by_id[m] for m in claimed.claimed]
                checks = await CallChecks.fetch(
                    conn,
                    self._pool,
                    due.mailing_id,
                    hold,
                    [m.phone for m in todo],
                    self._checks_max_age_s,
                )
        if hold is not None:
            # Handed back without a claim; the scheduler keeps them until resumed.
            now = self._clock()
            await self._hand_back(due, list(by_id.values()), f"mailing {hold}", now, owner=None)
            return
        if claimed.done:
            metrics.SKIPPED.inc(len(claimed.done))
        owner = self._lease.owner
        # Held by another task here: it records them well within our own lease.
        until_here = self._clock() + timedelta(seconds=self._lease.ttl_s)
        busy = {**claimed.busy, **dict.fromkeys(held_here, until_here)}
        results = await asyncio.gather(
            self._send_claimed(due, todo, owner, checks), self._hand_back_busy(due, by_id, busy)
        )
        outcomes = [o for part in results for o in part]
        if outcomes:
            counts = Counter(type(o.verdict).__name__ for o in outcomes)
            log.info("batch_dispatched", mailing_id=due.mailing_id,
                     delivered=counts["DeliveredMessage"], failed=counts["FailedAttempt"],
                     undelivered=counts["UndeliveredMessage"])  # fmt: skip
        if log.is_enabled_for(logging.DEBUG):
            _log_outcomes(due.mailing_id, outcomes)

    async def _send_claimed(
        self, due: MessagesDue, messages: list[DueMessage], owner: UUID, checks: CallChecks
    ) -> list[Outcome]:
        sends = (self._send(due, m, owner, checks) for m in messages)
        return list(await asyncio.gather(*sends))

    async def _hand_back_busy(
        self, due: MessagesDue, by_id: dict[int, DueMessage], busy: Mapping[int, datetime]
    ) -> list[Outcome]:
        """Messages another live owner has claimed (a second copy of this due event, or the
        redelivery of a dead process's batch before its lease ran out): handed back until that
        owner's lease ends. Either it records them meanwhile (the scheduler then ignores the
        hand-back) or its claim lapses and the next hand-over calls. The delivery is not held
        up waiting, so the prefetch keeps flowing."""
        outcomes: list[Outcome] = []
        for until, ids in _by_until(busy).items():
            messages = [by_id[m] for m in ids]
            outcomes += await self._hand_back(due, messages, CLAIMED_ELSEWHERE, until, owner=None)
        return outcomes

    async def _hand_back(
        self,
        due: MessagesDue,
        messages: list[DueMessage],
        reason: str,
        retry_at: datetime,
        *,
        owner: UUID | None,
    ) -> list[Outcome]:
        outcomes = [
            Outcome(
                due.mailing_id,
                m.attempt,
                not_attempted(m.message_id, m.attempt, reason, retry_at),
                None,
                owner,
            )
            for m in messages
        ]
        await asyncio.gather(*(self._recorder.record(o) for o in outcomes))
        return outcomes

    async def _refusal(
        self, due: MessagesDue, m: DueMessage, owner: UUID, checks: CallChecks
    ) -> FailedAttempt | None:
        """Why a call for ``m`` may not start now, or None. Checked before waiting for the
        rate limit and again at the moment of the call."""
        if self._stopping.is_set():
            return not_attempted(m.message_id, m.attempt, STOPPING, self._clock())
        if owner != self._lease.owner or not self._lease.valid():
            # The claim may be someone else's by now (or will be before the call ends).
            return not_attempted(m.message_id, m.attempt, CLAIM_LOST, self._clock())
        if (hold := await checks.hold()) is not None:
            # Handed back; the scheduler keeps them until resumed, or cancels them.
            return not_attempted(m.message_id, m.attempt, f"mailing {hold}", self._clock())
        opted_out = await checks.opted_out(m.phone)
        now = self._clock()
        if (refused := refusal(m, due.not_after, now, opted_out=opted_out)) is not None:
            return refused
        if (held := self._hold.until(now)) is not None:
            reason = "provider asked to wait (Retry-After)"
            return not_attempted(m.message_id, m.attempt, reason, held)
        return None

    async def _send(
        self, due: MessagesDue, m: DueMessage, owner: UUID, checks: CallChecks
    ) -> Outcome:
        """Call the provider for one claimed message, or hand it back; returns once the
        outcome is committed. The concurrency slot is held until then."""
        async with self._slots:
            refused = await self._refusal(due, m, owner, checks)
            if refused is None:
                await self._limiter.acquire()
                refused = await self._refusal(due, m, owner, checks)
            if refused is None and not self._breaker.allow(time.monotonic()):
                # Asked only now, right before the call: a half-open circuit admits exactly the
                # probe that is really made.
                metrics.BREAKER_REJECTED.inc()
                reason = "provider circuit open"
                if self._last_failure:
                    reason += f" (last error: {self._last_failure})"
                wait = self._breaker.retry_in(time.monotonic())
                refused = not_attempted(
                    m.message_id, m.attempt, reason, self._clock() + timedelta(seconds=wait)
                )
            checks.started(m.phone)
            if refused is not None:
                if refused.error in REFUSALS:
                    metrics.REFUSED.labels(refused.error).inc()
                outcome = Outcome(due.mailing_id, m.attempt, refused, None, owner)
            else:
                outcome = await self._call(due, m, owner)
            await self._recorder.record(outcome)
            return outcome

    async def _call(self, due: MessagesDue, m: DueMessage, owner: UUID) -> Outcome:
        metrics.IN_FLIGHT.inc()
        try:
            result = await self._client.send(m.message_id, m.phone, due.text)
        finally:
            metrics.IN_FLIGHT.dec()
        # With the adaptive rate a 429 is a request to slow down, which the rate answers; only
        # a failing provider should open the circuit.
        throttled = self._send_rate is not None and result.status == 429
        self._breaker.record(time.monotonic(), success=not result.retryable or throttled)
        if self._send_rate is not None:
            self._send_rate.observe(result.status, bool(result.retry_after_s))
        if result.retryable:
            self._last_failure = result.error
        now = self._clock()
        if result.retry_after_s:
            self._hold.hold(now + timedelta(seconds=result.retry_after_s))
        metrics.observe(result)
        verdict = judge(m.message_id, m.attempt, result, now, self._policy, self._rng)
        return Outcome(due.mailing_id, m.attempt, verdict, result, owner)


def _by_until(busy: Mapping[int, datetime]) -> dict[datetime, list[int]]:
    grouped: dict[datetime, list[int]] = {}
    for message_id, until in busy.items():
        grouped.setdefault(until, []).append(message_id)
    return grouped


def _log_outcomes(mailing_id: int, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        verdict, result = o.verdict, o.result
        call: dict[str, Any] = {}
        if result is not None:
            call = {"status": result.status, "latency_ms": round(result.latency_s * 1000, 1)}
        ids = {"message_id": verdict.message_id, "mailing_id": mailing_id}
        if isinstance(verdict, DeliveredMessage):
            log.debug("message_sent", **ids, attempt=verdict.attempt, **call)
        elif isinstance(verdict, FailedAttempt):
            # Handed back without a call (paused, outside the window, circuit open): the
            # attempt it was due for is still to come.
            attempt = verdict.attempts if result is not None else verdict.attempts + 1
            log.debug(
                "message_attempt_failed",
                **ids,
                attempt=attempt,
                called=result is not None,
                error=verdict.error,
                retry_at=verdict.retry_at.isoformat(),
                **call,
            )
        else:
            log.debug(
                "message_undelivered", **ids, attempt=verdict.attempts, error=verdict.error, **call
            )
