"""Recording outcomes as they arrive: each provider answer (or hand-back without a call) is
queued here and written within a few milliseconds, many at once, in one transaction that also
appends the result events. The caller waits until its outcome is committed, and keeps its
concurrency slot meanwhile, so the calls made but not yet recorded never exceed the
dispatcher's concurrency.

A database error does not lose an outcome: the batch is written again until it goes through
(the write is idempotent: an outcome already recorded by someone else is left alone, and only
the outcomes this write recorded produce events), so a database blip repeats none of the calls
that finished.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import structlog

from dispatcher.attempts import record_of
from dispatcher.claims import release
from dispatcher.domain import PROJECTION_NAME, Verdict
from dispatcher.provider import SendResult
from sms_events.batches import new_batch_id
from sms_events.contracts import (
    DeliveredMessage,
    Event,
    FailedAttempt,
    MessageAttemptsFailed,
    MessagesDelivered,
    MessagesUndelivered,
    UndeliveredMessage,
)
from sms_events.db import Connection, is_transient
from sms_events.replay import writing
from sms_events.retrying import RetryPolicy
from sms_events.store import append_new_streams, appending
from sms_events.tracing import current_metadata, traced
from sms_events.waits import wait_any

__all__ = ["RECORD_RETRIES", "Outcome", "OutcomeRecorder"]

log = structlog.get_logger(__name__)


RECORD_RETRIES = RetryPolicy(attempts=None, base_s=0.1, cap_s=1.0)
"""Writing outcomes while the database is away (or failing): tried until it goes through."""
_TRIES_WHEN_STOPPING = 8  # about five seconds of tries once the dispatcher is stopping


@dataclass(frozen=True, slots=True)
class Outcome:
    """One due message's verdict: ``result`` is the provider's answer, None when handed back
    without a call (then the claim, if any, is released)."""

    mailing_id: int
    attempt: int
    verdict: Verdict
    result: SendResult | None
    owner: UUID | None  # the claim's owner, None when nothing was claimed
    # The due event's correlation and causation ids, taken where the outcome is made: the
    # result events carry them although they are appended by the recorder's own task.
    trace: tuple[tuple[str, str], ...] = field(
        default_factory=lambda: tuple(
            sorted((k, v) for k, v in current_metadata().items() if isinstance(v, str))
        )
    )


class OutcomeRecorder:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval_s: float = 0.005,
        max_batch: int = 500,
        retry: RetryPolicy = RECORD_RETRIES,
        parallel: int = 3,
    ) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._max_batch = max_batch
        self._retry = retry
        self._queue: list[tuple[Outcome, asyncio.Future[bool]]] = []
        self._arrived = asyncio.Event()
        # Writes overlap: while one commits, the next gathers and starts. The calls waiting on
        # them hold their concurrency slots, so a serial writer would cap the send rate at
        # concurrency / commit time.
        self._writers = asyncio.Semaphore(parallel)
        self._writing: set[asyncio.Task[None]] = set()

    async def record(self, outcome: Outcome) -> bool:
        """Queue ``outcome`` and wait until it is committed. True when this write recorded it
        (False: another copy's outcome for the same attempt was there first)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((outcome, future))
        self._arrived.set()
        return await future

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until ``stop``, then what is left (while the database answers)."""
        try:
            while not (stop.is_set() and not self._queue):
                if not self._queue:
                    self._arrived.clear()
                    await wait_any(self._arrived, stop, timeout=1.0)
                    continue
                # Let a few more arrive: one transaction for many outcomes.
                if len(self._queue) < self._max_batch:
                    await asyncio.sleep(self._interval_s)
                await self._writers.acquire()
                batch = self._queue[: self._max_batch]
                del self._queue[: len(batch)]
                task = asyncio.create_task(self._write(batch, stop))
                self._writing.add(task)
                task.add_done_callback(self._writing.discard)
        finally:
            if self._writing:
                await asyncio.wait(set(self._writing))

    async def _write(
        self, batch: list[tuple[Outcome, asyncio.Future[bool]]], stop: asyncio.Event
    ) -> None:
        try:
            await self._write_until_done(batch, stop)
        finally:
            self._writers.release()

    async def _write_until_done(
        self, batch: list[tuple[Outcome, asyncio.Future[bool]]], stop: asyncio.Event
    ) -> None:
        """Write ``batch``, waiting out a database that is away for as long as it takes (each
        outcome not recorded is a call that would be made again), and retrying any other
        failure too, logged: the calls keep their slots until their outcomes are written. The
        retries stay a second apart at most, so outcomes land as soon as the database is back,
        before a redelivered copy of their due event can take over the lapsed claims (the
        policy's cap: ``RECORD_RETRIES``)."""
        failures = tries = 0
        recorded: dict[tuple[int, int], bool] = {}
        try:
            async for attempt in self._retry.retrying(
                Exception,
                event="outcomes_not_recorded_yet",
                # Stopping and the database stays away (about five seconds): give up; the
                # claims without an outcome are called again after the lease (at most these
                # calls repeat).
                give_up=lambda: stop.is_set() and tries >= _TRIES_WHEN_STOPPING,  # noqa: B023 -- reads the tries so far, on purpose
                count=len(batch),
            ):
                with attempt:
                    tries += 1
                    try:
                        async with self._pool.acquire() as conn, appending(conn):
                            recorded = await _write(conn, [o for o, _ in batch])
                    except Exception as exc:
                        if not is_transient(exc):
                            # Never given up: an outcome not recorded is a call made again (its
                            # claim stays), so the calls keep their slots until it is written.
                            failures += 1
                            log.error("outcomes_not_recorded", count=len(batch),
                                      error=type(exc).__name__, failures=failures)  # fmt: skip
                        raise
        except Exception:
            for _, future in batch:
                if not future.done():
                    future.cancel()
            return
        for outcome, future in batch:
            if not future.done():
                future.set_result(recorded.get(_key(outcome), False))


def _key(o: Outcome) -> tuple[int, int]:
    return o.verdict.message_id, o.attempt


async def _write(conn: Connection, outcomes: list[Outcome]) -> dict[tuple[int, int], bool]:
    """Record the calls' outcomes, release the claims of messages handed back without a call,
    and append the events of what this write recorded."""
    await writing(conn, PROJECTION_NAME)
    called = [o for o in outcomes if o.result is not None]
    recorded: dict[tuple[int, int], bool] = {}
    if called:
        # The row is what the outcome's event item says (attempts.record_of), so that a
        # rebuild from the events finds it the same. A call's verdict always carries its time
        # (domain.judge): the clock given for items without one is never used here.
        records = [record_of(o.verdict, datetime.now(UTC)) for o in called]
        rows = await conn.fetch(
            """
            UPDATE dispatcher_attempts a
               SET outcome = u.outcome, status = u.status, error = u.error, at = u.at
            FROM unnest($1::bigint[], $2::int[], $3::text[], $4::int[], $5::text[],
                        $6::timestamptz[]) AS u(message_id, attempt, outcome, status, error, at)
            WHERE a.message_id = u.message_id AND a.attempt = u.attempt AND a.outcome IS NULL
            RETURNING a.message_id, a.attempt
            """,
            [r.message_id for r in records],
            [o.attempt for o in called],
            [r.outcome for r in records],
            [r.status for r in records],
            [r.error for r in records],
            [r.at for r in records],
        )
        recorded = {(r["message_id"], r["attempt"]): True for r in rows}
    handed_back = [o for o in outcomes if o.result is None]
    by_owner: dict[UUID, list[tuple[int, int]]] = defaultdict(list)
    for o in handed_back:
        recorded[_key(o)] = True
        if o.owner is not None:
            by_owner[o.owner].append(_key(o))
    for owner, pairs in by_owner.items():
        await release(conn, owner, pairs)
    by_trace: dict[tuple[tuple[str, str], ...], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        if recorded.get(_key(o)):
            by_trace[o.trace].append(o)
    for trace, group in by_trace.items():
        ids = dict(trace)
        with traced(ids.get("correlation_id"), ids.get("causation_id")):
            await append_new_streams(conn, _events(group))
    return recorded


def _events(outcomes: list[Outcome]) -> list[Event]:
    by_mailing: dict[int, list[Verdict]] = defaultdict(list)
    for o in outcomes:
        by_mailing[o.mailing_id].append(o.verdict)
    events: list[Event] = []
    for mailing_id, verdicts in by_mailing.items():
        delivered = [v for v in verdicts if isinstance(v, DeliveredMessage)]
        failed = [v for v in verdicts if isinstance(v, FailedAttempt)]
        undelivered = [v for v in verdicts if isinstance(v, UndeliveredMessage)]
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
    return events
