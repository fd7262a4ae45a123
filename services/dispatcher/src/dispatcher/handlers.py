"""Sending one batch of due messages: skip what was already sent, call the provider with
bounded concurrency under the rate limit and the circuit breaker, then record every outcome
and append the result events in one transaction.

The consumer runs each ``messages.due`` event inside ``traced`` with its correlation id, so
the result events carry it on. One INFO line per batch (mailing_id and counts); with DEBUG on,
a line per message once its outcome is recorded (``message_sent``,
``message_attempt_failed``, ``message_undelivered``), never with the phone or the text."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from dispatcher import metrics
from dispatcher.breaker import CircuitBreaker
from dispatcher.domain import RetryPolicy, Verdict, judge, not_attempted
from dispatcher.holds import hold_of
from dispatcher.provider import ProviderClient, SendResult
from dispatcher.ratelimit import RateLimiter
from sms_events.batches import new_batch_id
from sms_events.contracts import (
    DeliveredMessage,
    DueMessage,
    Event,
    FailedAttempt,
    MessageAttemptsFailed,
    MessagesDelivered,
    MessagesDue,
    MessagesUndelivered,
    UndeliveredMessage,
)
from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.store import append_new_streams, appending

__all__ = ["Dispatcher"]

log = structlog.get_logger(__name__)

# A due message's verdict, with the provider's answer when a call was made (None: handed
# back without one).
Outcome = tuple[Verdict, SendResult | None]


# The error a message handed back unsent on shutdown carries (the scheduler hands it over again
# at once; no attempt is counted).
STOPPING = "dispatcher stopping"


def _now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: ProviderClient,
        limiter: RateLimiter,
        breaker: CircuitBreaker,
        policy: RetryPolicy,
        *,
        concurrency: int,
        clock: Callable[[], datetime] = _now,
        rng: random.Random | None = None,
        stopping: asyncio.Event | None = None,
    ) -> None:
        """``stopping`` set (the service's stop signal) means: finish the provider calls in
        flight, but start no new one; the messages not sent yet are handed back to the
        scheduler with the outcomes, so a shutdown neither waits for a whole prefetch of
        batches to go out nor leaves calls unrecorded."""
        self._pool = pool
        self._client = client
        self._limiter = limiter
        self._breaker = breaker
        self._policy = policy
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._rng = rng or random.Random()
        self._last_failure: str | None = None  # shown while the circuit is open
        self._stopping = stopping or asyncio.Event()

    async def handle(self, env: Envelope) -> None:
        """Handle one ``messages.due`` event; returns once its outcomes are committed."""
        due = env.payload()
        assert isinstance(due, MessagesDue)
        async with self._pool.acquire() as conn:
            todo = await _not_yet_sent(conn, due)
            hold = await hold_of(conn, due.mailing_id) if todo else None
        if not todo:
            return
        if hold is not None:
            # Handed back without a call; the scheduler keeps them until resumed or cancels.
            now = self._clock()
            await self._record(due.mailing_id, [
                (not_attempted(m.message_id, m.attempt, f"mailing {hold}", now), None)
                for m in todo
            ])  # fmt: skip
            return
        outcomes = await asyncio.gather(*(self._send(due, m) for m in todo))
        await self._record(due.mailing_id, list(outcomes))

    async def _send(self, due: MessagesDue, m: DueMessage) -> Outcome:
        """The verdict for one due message, with the provider's answer when it was called."""
        now = self._clock()
        if self._stopping.is_set():
            return not_attempted(m.message_id, m.attempt, STOPPING, now), None
        if now >= due.not_after:
            return not_attempted(m.message_id, m.attempt, "end reached", now), None
        if not self._breaker.allow(time.monotonic()):
            metrics.BREAKER_REJECTED.inc()
            wait = self._breaker.retry_in(time.monotonic())
            reason = "provider circuit open"
            if self._last_failure:
                reason += f" (last error: {self._last_failure})"
            retry_at = now + timedelta(seconds=wait)
            return not_attempted(m.message_id, m.attempt, reason, retry_at), None
        async with self._slots:
            # Waiting for a slot, then for the rate limit, can take a while: look again after
            # each, so that on stop no message waits for a token it will not use.
            if not self._stopping.is_set():
                await self._limiter.acquire()
            if self._stopping.is_set():
                return not_attempted(m.message_id, m.attempt, STOPPING, self._clock()), None
            metrics.IN_FLIGHT.inc()
            try:
                result = await self._client.send(m.message_id, m.phone, due.text)
            finally:
                metrics.IN_FLIGHT.dec()
        self._breaker.record(time.monotonic(), success=not result.retryable)
        if result.retryable:
            self._last_failure = result.error
        metrics.observe(result)
        return judge(
            m.message_id, m.attempt, result, self._clock(), self._policy, self._rng
        ), result

    async def _record(self, mailing_id: int, outcomes: list[Outcome]) -> None:
        delivered: list[DeliveredMessage] = []
        failed: list[FailedAttempt] = []
        undelivered: list[UndeliveredMessage] = []
        attempts: list[tuple[int, int, str, int | None, str | None]] = []
        for verdict, result in outcomes:
            if isinstance(verdict, DeliveredMessage):
                delivered.append(verdict)
            elif isinstance(verdict, FailedAttempt):
                failed.append(verdict)
            else:
                undelivered.append(verdict)
            if result is not None:  # a provider call was made: remember it
                attempt = (
                    verdict.attempt if isinstance(verdict, DeliveredMessage) else verdict.attempts
                )
                attempts.append(
                    (
                        verdict.message_id,
                        attempt,
                        result.outcome.value,
                        result.status,
                        result.error,
                    )
                )
        events: list[Event] = []
        if delivered:
            events.append(
                MessagesDelivered(
                    mailing_id=mailing_id, batch_id=new_batch_id(), messages=delivered
                )
            )
        if failed:
            events.append(
                MessageAttemptsFailed(
                    mailing_id=mailing_id, batch_id=new_batch_id(), messages=failed
                )
            )
        if undelivered:
            events.append(
                MessagesUndelivered(
                    mailing_id=mailing_id, batch_id=new_batch_id(), messages=undelivered
                )
            )
        async with self._pool.acquire() as conn, appending(conn):
            await _insert_attempts(conn, attempts)
            await append_new_streams(conn, events)
        log.info("batch_dispatched", mailing_id=mailing_id, delivered=len(delivered),
                 failed=len(failed), undelivered=len(undelivered))  # fmt: skip
        if log.is_enabled_for(logging.DEBUG):
            _log_outcomes(mailing_id, outcomes)


def _log_outcomes(mailing_id: int, outcomes: list[Outcome]) -> None:
    for verdict, result in outcomes:
        call: dict[str, Any] = {}
        if result is not None:
            call = {"status": result.status, "latency_ms": round(result.latency_s * 1000, 1)}
        ids = {"message_id": verdict.message_id, "mailing_id": mailing_id}
        if isinstance(verdict, DeliveredMessage):
            log.debug("message_sent", **ids, attempt=verdict.attempt, **call)
        elif isinstance(verdict, FailedAttempt):
            # Handed back without a call (paused, end reached, circuit open): the attempt it
            # was due for is still to come.
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


async def _not_yet_sent(conn: Connection, due: MessagesDue) -> list[DueMessage]:
    """The due messages still to send: a redelivered batch (dispatcher killed after sending,
    before acking) must not call the provider again for attempts already made, nor for
    messages already settled."""
    rows = await conn.fetch(
        "SELECT message_id, max(attempt) AS attempt,"
        " bool_or(outcome <> 'retryable') AS settled"
        " FROM dispatcher_attempts WHERE message_id = ANY($1) GROUP BY message_id",
        [m.message_id for m in due.messages],
    )
    done = {r["message_id"]: r for r in rows}
    todo = []
    for m in due.messages:
        r = done.get(m.message_id)
        if r is None or (not r["settled"] and r["attempt"] < m.attempt):
            todo.append(m)
    if skipped := len(due.messages) - len(todo):
        metrics.SKIPPED.inc(skipped)
    return todo


async def _insert_attempts(
    conn: Connection, rows: list[tuple[int, int, str, int | None, str | None]]
) -> None:
    if rows:
        await conn.execute(
            """
            INSERT INTO dispatcher_attempts (message_id, attempt, outcome, status, error)
            SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::int[], $5::text[])
            ON CONFLICT (message_id, attempt) DO NOTHING
            """,
            *map(list, zip(*rows, strict=True)),
        )
