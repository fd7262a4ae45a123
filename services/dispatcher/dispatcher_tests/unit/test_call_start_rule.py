"""When a provider call may start: its phone not opted out, inside the message's send slot and
before the mailing's end, decided at the moment of the call (``domain.refusal``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.domain import refusal
from sms_events.contracts import OPTED_OUT, DueMessage


@settings(max_examples=200, deadline=None)
@given(
    due=st.integers(-3600, 3600),
    closes=st.integers(-3600, 3600),
    end=st.integers(-3600, 3600),
    legacy=st.booleans(),
)
def test_a_call_may_start_only_inside_the_slot_and_before_the_end(
    due: int, closes: int, end: int, legacy: bool
) -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    second = timedelta(seconds=1)
    message = DueMessage(
        message_id=1, client_id=1, phone="79991234567", attempt=2,
        due_at=None if legacy else now + due * second,
        closes_at=None if legacy else now + closes * second,
    )  # fmt: skip
    refused = refusal(message, now + end * second, now, opted_out=False)
    inside = now < now + end * second and (
        legacy or (now + due * second <= now < now + closes * second)
    )
    assert (refused is None) == inside
    if refused is not None:
        assert refused.attempts == 1  # handed back: no attempt counted
        assert refused.retry_at >= now


@settings(max_examples=100, deadline=None)
@given(due=st.integers(-3600, 3600), closes=st.integers(-3600, 3600), end=st.integers(-3600, 3600))
def test_an_opted_out_phone_is_refused_whatever_the_window_and_end(
    due: int, closes: int, end: int
) -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    second = timedelta(seconds=1)
    message = DueMessage(
        message_id=1, client_id=1, phone="79991234567", attempt=2,
        due_at=now + due * second, closes_at=now + closes * second,
    )  # fmt: skip
    refused = refusal(message, now + end * second, now, opted_out=True)
    assert refused is not None
    # Handed back at once for the scheduler to cancel, no attempt counted.
    assert (refused.error, refused.attempts, refused.retry_at) == (OPTED_OUT, 1, now)
