"""The record of each provider call (``dispatcher_attempts``) as its outcome's event item states
it: the recorder writes it live, and ``sms-replay dispatcher`` folds the same rule over history.

Every outcome item names a call by (message, attempts so far). The first item naming a call is
that call's outcome; later ones restate it: a hand-back without a call carries the count of the
calls made before (``domain.not_attempted``), and the scheduler's settlement of a message that
ran out of time carries its last call's. So a call is recorded once, by the first item naming
it, and an item naming no call (a count of 0) records nothing.

The outcome is the verdict's: ``rejected`` for any final failure, a call that ran out of
attempts included (recorded live as ``retryable`` before the rows followed the events). Items
recorded before ``status`` and a failure's ``failed_at`` were carried: no status, and the
failure dated by its event's record time (the outcome's transaction, milliseconds after it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from dispatcher.domain import Verdict
from dispatcher.provider import Outcome
from sms_events.contracts import (
    DeliveredMessage,
    FailedAttempt,
    MessageAttemptsFailed,
    MessagesDelivered,
    MessagesUndelivered,
)
from sms_events.db import Connection
from sms_events.envelope import Envelope

__all__ = ["EVENT_TYPES", "CallRecord", "call_records", "fold_calls", "record_of"]

EVENT_TYPES = frozenset(
    e.event_type for e in (MessagesDelivered, MessageAttemptsFailed, MessagesUndelivered)
)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One ``dispatcher_attempts`` row with its outcome."""

    message_id: int
    attempt: int
    outcome: str  # delivered | retryable | rejected (final: refused, or out of attempts)
    status: int | None
    error: str | None
    at: datetime


def record_of(verdict: Verdict, recorded_at: datetime) -> CallRecord:
    """The call ``verdict`` names. ``recorded_at`` stands in for the call's time where the item
    has none (failures recorded before ``failed_at`` was carried)."""
    match verdict:
        case DeliveredMessage():
            return CallRecord(
                verdict.message_id,
                verdict.attempt,
                Outcome.DELIVERED.value,
                verdict.status,
                None,
                verdict.sent_at,
            )
        case FailedAttempt():
            at = verdict.failed_at or recorded_at
            outcome = Outcome.RETRYABLE.value
            return CallRecord(
                verdict.message_id, verdict.attempts, outcome, verdict.status, verdict.error, at
            )
    return CallRecord(
        verdict.message_id,
        verdict.attempts,
        Outcome.REJECTED.value,
        verdict.status,
        verdict.error,
        verdict.failed_at,
    )


def call_records(envelopes: Iterable[Envelope]) -> list[CallRecord]:
    """The first record naming each call among the outcome events in ``envelopes``."""
    first: dict[tuple[int, int], CallRecord] = {}
    for env in envelopes:
        if env.type not in EVENT_TYPES:
            continue
        event = env.payload()
        assert isinstance(event, MessagesDelivered | MessageAttemptsFailed | MessagesUndelivered)
        for item in event.messages:
            record = record_of(item, env.time)
            if record.attempt >= 1:
                first.setdefault((record.message_id, record.attempt), record)
    return list(first.values())


async def fold_calls(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    """Fold the outcome events among ``envelopes`` into ``dispatcher_attempts``: the calls not
    recorded yet (a call already recorded keeps its row)."""
    if records := call_records(envelopes):
        await conn.execute(
            """
            INSERT INTO dispatcher_attempts (message_id, attempt, outcome, status, error, at)
            SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::int[], $5::text[],
                                 $6::timestamptz[])
            ON CONFLICT (message_id, attempt) DO NOTHING
            """,
            [r.message_id for r in records],
            [r.attempt for r in records],
            [r.outcome for r in records],
            [r.status for r in records],
            [r.error for r in records],
            [r.at for r in records],
        )
