"""The record of each provider call (``attempts.record_of``, ``attempts.call_records``): the
row the recorder writes live is the one a rebuild folds from the outcome's event, and items that
name no new call (hand-backs, the scheduler's settlement) record nothing."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

from dispatcher.attempts import CallRecord, call_records, record_of
from dispatcher.domain import SendRetryRule, Verdict, judge, not_attempted
from dispatcher.provider import Outcome, SendResult
from sms_events.contracts import (
    DeliveredMessage,
    FailedAttempt,
    MessageAttemptsFailed,
    MessagesDelivered,
    MessagesUndelivered,
    UndeliveredMessage,
)
from sms_events.envelope import Envelope
from sms_events.testing.factories import envelope_for

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
RECORDED = AT + timedelta(seconds=1)


def _envelope(*verdicts: Verdict) -> Envelope:
    """The event the recorder appends for ``verdicts`` (all of one kind), as a consumer of the
    store reads it back (through its JSON)."""
    first = verdicts[0]
    if isinstance(first, DeliveredMessage):
        event: object = MessagesDelivered(mailing_id=1, batch_id="b", messages=list(verdicts))
    elif isinstance(first, FailedAttempt):
        event = MessageAttemptsFailed(mailing_id=1, batch_id="b", messages=list(verdicts))
    else:
        event = MessagesUndelivered(mailing_id=1, batch_id="b", messages=list(verdicts))
    env = envelope_for(event)  # type: ignore[arg-type]
    return dataclasses.replace(Envelope.from_json(env.to_json()), time=RECORDED)


def test_the_folded_record_of_a_call_is_the_one_the_recorder_wrote() -> None:
    policy, rng = SendRetryRule(max_attempts=3), random.Random(1)
    answers = [
        SendResult(Outcome.DELIVERED, 200, None, None, 0.1),
        SendResult(Outcome.RETRYABLE, 503, "HTTP 503", 5.0, 0.1),
        SendResult(Outcome.RETRYABLE, None, "timeout", None, 0.1),
        SendResult(Outcome.REJECTED, 400, "HTTP 400", None, 0.1),
    ]
    for attempt in (1, 3):  # the third is the last the policy allows
        for result in answers:
            verdict = judge(7, attempt, result, AT, policy, rng)
            live = record_of(verdict, datetime.now(UTC))
            assert call_records([_envelope(verdict)]) == [live]
            assert (live.status, live.at) == (result.status, AT)


def test_a_final_failure_is_recorded_as_rejected_whatever_the_provider_said() -> None:
    timeout = SendResult(Outcome.RETRYABLE, None, "timeout", None, 0.1)
    verdict = judge(7, 3, timeout, AT, SendRetryRule(max_attempts=3), random.Random(1))
    assert record_of(verdict, RECORDED) == CallRecord(7, 3, "rejected", None, "timeout", AT)


def test_a_failure_recorded_before_its_time_was_carried_is_dated_by_its_event() -> None:
    old = FailedAttempt(message_id=7, attempts=1, error="HTTP 503", retry_at=AT)
    assert call_records([_envelope(old)]) == [
        CallRecord(7, 1, "retryable", None, "HTTP 503", RECORDED)
    ]


def test_hand_backs_and_settlements_restate_a_call_and_record_nothing_new() -> None:
    never_called = not_attempted(7, 1, "outside the send window", AT)  # names call 0
    called = FailedAttempt(message_id=7, attempts=1, error="HTTP 503", retry_at=AT, failed_at=AT)
    handed_back = not_attempted(7, 2, "end reached", AT)  # restates call 1
    settled = UndeliveredMessage(message_id=7, attempts=1, error="HTTP 503", failed_at=RECORDED)
    records = call_records(
        [_envelope(never_called), _envelope(called), _envelope(handed_back), _envelope(settled)]
    )
    assert records == [CallRecord(7, 1, "retryable", None, "HTTP 503", AT)]
