"""What a provider answer means for a message: delivered, try again at a time, or give up."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from dispatcher.backoff import retry_due
from dispatcher.provider import Outcome, SendResult
from sms_events.contracts import (
    OPTED_OUT,
    DeliveredMessage,
    DueMessage,
    FailedAttempt,
    UndeliveredMessage,
)

__all__ = [
    "PROJECTION_NAME",
    "REFUSALS",
    "SendRetryRule",
    "Verdict",
    "judge",
    "not_attempted",
    "refusal",
]

PROJECTION_NAME: Final = "dispatcher"
"""The dispatcher's records as ``sms-replay dispatcher`` rebuilds them (``projections.py``):
their writers announce themselves by it (``sms_events.replay.writing``)."""

Verdict = DeliveredMessage | FailedAttempt | UndeliveredMessage


@dataclass(frozen=True, slots=True)
class SendRetryRule:
    """When a message whose provider call failed is called again (a domain rule, persisted
    with the message's next attempt), unlike ``sms_events.retrying.RetryPolicy``, which waits
    out a transient error inside one process."""

    base_s: float = 2.0
    cap_s: float = 300.0
    max_attempts: int = 0  # 0: retry until the mailing's end


def judge(
    message_id: int,
    attempt: int,
    result: SendResult,
    now: datetime,
    policy: SendRetryRule,
    rng: random.Random,
) -> Verdict:
    """The event item for one provider call (``attempt`` counts calls from 1)."""
    status = result.status
    if result.outcome is Outcome.DELIVERED:
        return DeliveredMessage(message_id=message_id, attempt=attempt, sent_at=now, status=status)
    error = result.error or "unknown error"
    exhausted = policy.max_attempts and attempt >= policy.max_attempts
    if result.outcome is Outcome.REJECTED or exhausted:
        return UndeliveredMessage(
            message_id=message_id, attempts=attempt, error=error, failed_at=now, status=status
        )
    retry_at = retry_due(now, attempt, policy.base_s, policy.cap_s, rng, result.retry_after_s)
    return FailedAttempt(
        message_id=message_id,
        attempts=attempt,
        error=error,
        retry_at=retry_at,
        failed_at=now,
        status=status,
    )


def not_attempted(message_id: int, attempt: int, reason: str, retry_at: datetime) -> FailedAttempt:
    """A message handed back without calling the provider (circuit open, end reached): the
    scheduler decides again at ``retry_at``; no attempt is counted."""
    return FailedAttempt(
        message_id=message_id, attempts=attempt - 1, error=reason, retry_at=retry_at
    )


# Why a call may not start now (handed back to the scheduler, which times it again).
OUTSIDE_WINDOW = "outside the send window"
END_REACHED = "end reached"
# Every reason ``refusal`` gives: a fixed set, so a metric may be labelled by it. The scheduler
# cancels a message handed back as OPTED_OUT (CA, reason opted_out) instead of timing it again.
REFUSALS = (OPTED_OUT, END_REACHED, OUTSIDE_WINDOW)


def refusal(
    message: DueMessage, not_after: datetime, now: datetime, *, opted_out: bool
) -> FailedAttempt | None:
    """None when a provider call for ``message`` may start at ``now``: its phone is not opted
    out, inside its send slot (``due_at <= now < closes_at``, a stretch of the client's local
    window) and before the mailing's end. Otherwise the hand-back, not before the slot opens
    when it is still to come. Checked when the call starts, after every wait for a slot or a
    rate-limit token. An opt-out comes first: it ends the message, where the others only time
    it again."""
    closes = min(message.closes_at or not_after, not_after)
    if opted_out:
        return not_attempted(message.message_id, message.attempt, OPTED_OUT, now)
    if now >= not_after:
        return not_attempted(message.message_id, message.attempt, END_REACHED, now)
    if now >= closes:
        return not_attempted(message.message_id, message.attempt, OUTSIDE_WINDOW, now)
    if message.due_at is not None and now < message.due_at:
        return not_attempted(message.message_id, message.attempt, OUTSIDE_WINDOW, message.due_at)
    return None
