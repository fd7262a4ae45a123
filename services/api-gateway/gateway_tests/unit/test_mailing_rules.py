"""Mailing bodies judged like the old API's serializer, and which edits each state allows."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

import pytest

from gateway.errors import InvalidInput
from gateway.mailings.lifecycle import MailingState
from gateway.mailings.rules import (
    DATETIME_MESSAGE,
    END_BEFORE_START,
    END_IN_THE_PAST,
    STARTED,
    TIME_MESSAGE,
    WINDOW_EMPTY,
    WINDOW_HALF,
    EditRefused,
    MailingFields,
    check_deletable,
    edit,
    new_mailing,
)
from gateway.mailings.schemas import parse_change

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
START = NOW + timedelta(hours=1)
END = NOW + timedelta(hours=5)
BODY = {"datetime_start": "2026-05-01T13:00:00Z", "datetime_end": "2026-05-01T17:00:00Z",
        "text": "Some text"}  # fmt: skip
CURRENT = MailingFields(text="Some text", datetime_start=START, datetime_end=END)


def errors_of(body: Any, *, require: bool = True) -> dict[str, list[str]]:
    with pytest.raises(InvalidInput) as caught:
        new_mailing(parse_change(body, require=require), NOW)
    return caught.value.errors


def test_the_seed_body_makes_a_mailing_without_window_or_filter() -> None:
    mailing = new_mailing(parse_change(BODY, require=True), NOW)
    assert mailing == MailingFields(text="Some text", datetime_start=START, datetime_end=END)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2026-05-01T13:00:00Z", START), ("2026-05-01T13:00Z", START),
     ("2026-05-01T16:00:00+03:00", START), ("2026-05-01 13:00:00", START),
     ("2026-05-01T13:00:00.000000", START), ("2026-05-01T08:00:00-05:00", START)],
)  # fmt: skip
def test_datetimes_are_iso_8601_and_naive_ones_are_utc(raw: str, expected: datetime) -> None:
    change = parse_change({"datetime_start": raw}, require=False)
    assert change.datetime_start == expected
    assert isinstance(change.datetime_start, datetime)
    assert change.datetime_start.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "raw", ["2026-05-01", "13:00", "tomorrow", "2026-13-01T00:00:00Z", "2026-05-01T25:00Z",
            "1714568400", 1714568400, True, [], {}, "2026-05-01T13:00:00+25:00", ""],
)  # fmt: skip
def test_other_datetimes_are_refused_with_the_accepted_format(raw: Any) -> None:
    assert errors_of({**BODY, "datetime_start": raw}) == {"datetime_start": [DATETIME_MESSAGE]}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("09:00", time(9)), ("09:00:30", time(9, 0, 30)), ("23:59:59", time(23, 59, 59)),
     (" 00:00 ", time(0)), (None, None)],
)  # fmt: skip
def test_window_bounds_are_hh_mm_or_hh_mm_ss(raw: str | None, expected: time | None) -> None:
    change = parse_change({"send_interval_time_start": raw}, require=False)
    assert change.send_interval_time_start == expected


@pytest.mark.parametrize("raw", ["9:00", "24:00", "12:60", "12", "12:00:00.5", "noon", 900, True])
def test_other_times_are_refused_with_the_accepted_format(raw: Any) -> None:
    body = {**BODY, "send_interval_time_start": raw, "send_interval_time_end": "10:00"}
    assert errors_of(body) == {"send_interval_time_start": [TIME_MESSAGE]}


def test_every_field_error_is_reported_at_once() -> None:
    assert errors_of({"text": " ", "client_filter": 5}) == {
        "datetime_start": ["This field is required."],
        "datetime_end": ["This field is required."],
        "text": ["This field may not be blank."],
        "client_filter": ["Not a valid string."],
    }


def test_end_must_follow_the_start_and_lie_ahead() -> None:
    assert errors_of({**BODY, "datetime_end": BODY["datetime_start"]}) == {
        "datetime_end": [END_BEFORE_START]
    }
    past = {**BODY, "datetime_start": "2026-04-01T00:00:00Z", "datetime_end": "2026-05-01T11:00Z"}
    assert errors_of(past) == {"datetime_end": [END_IN_THE_PAST]}
    both = {**BODY, "datetime_end": "2026-05-01T11:00:00Z"}
    assert errors_of(both) == {"datetime_end": [END_BEFORE_START, END_IN_THE_PAST]}


def test_a_start_in_the_past_is_allowed() -> None:
    body = {**BODY, "datetime_start": "2026-04-01T00:00:00Z"}
    assert new_mailing(parse_change(body, require=True), NOW).datetime_start < NOW


@pytest.mark.parametrize(
    ("window", "errors"),
    [({"send_interval_time_start": "09:00"}, {"send_interval_time_end": [WINDOW_HALF]}),
     ({"send_interval_time_end": "09:00"}, {"send_interval_time_start": [WINDOW_HALF]}),
     ({"send_interval_time_start": "09:00", "send_interval_time_end": None},
      {"send_interval_time_end": [WINDOW_HALF]}),
     ({"send_interval_time_start": "09:00", "send_interval_time_end": "09:00:00"},
      {"send_interval_time_end": [WINDOW_EMPTY]})],
)  # fmt: skip
def test_a_window_is_both_bounds_and_not_empty(window: dict[str, Any], errors: Any) -> None:
    assert errors_of({**BODY, **window}) == errors


def test_a_window_may_cross_midnight() -> None:
    body = {**BODY, "send_interval_time_start": "22:00", "send_interval_time_end": "06:00"}
    mailing = new_mailing(parse_change(body, require=True), NOW)
    assert (mailing.send_interval_time_start, mailing.send_interval_time_end) == (time(22), time(6))


@pytest.mark.parametrize(
    ("text", "message"),
    [(None, "This field may not be null."), ("", "This field may not be blank."),
     ("   ", "This field may not be blank."), (5, "Not a valid string."),
     ("x" * 1001, "Ensure this field has no more than 1000 characters."),
     ("a\x00b", "Null characters are not allowed.")],
)  # fmt: skip
def test_text_rules(text: Any, message: str) -> None:
    assert errors_of({**BODY, "text": text}) == {"text": [message]}


def test_text_and_filter_are_trimmed_and_a_blank_filter_is_none() -> None:
    change = parse_change({"text": "  hi  ", "client_filter": " 956 , vip "}, require=False)
    assert (change.text, change.client_filter) == ("hi", "956 , vip")
    assert parse_change({"client_filter": "  "}, require=False).client_filter is None


def test_client_filter_is_at_most_255_characters() -> None:
    assert errors_of({**BODY, "client_filter": "x" * 256}) == {
        "client_filter": ["Ensure this field has no more than 255 characters."]
    }


@pytest.mark.parametrize("body", [[BODY], "text", 5, None])
def test_a_body_must_be_an_object(body: Any) -> None:
    assert list(errors_of(body)) == ["non_field_errors"]


def test_unknown_and_read_only_fields_are_ignored() -> None:
    mailing = new_mailing(parse_change({**BODY, "id": 7, "clients_count": 3}, require=True), NOW)
    assert mailing.text == "Some text"


# --- edits -------------------------------------------------------------------------------------


def _edit(
    body: dict[str, Any], *, now: datetime = NOW, state: MailingState = MailingState.SCHEDULED
) -> MailingFields:
    return edit(CURRENT, parse_change(body, require=False), now=now, state=state)


def test_before_the_start_every_field_may_change() -> None:
    changed = _edit({"text": "new", "client_filter": "vip", "send_interval_time_start": "09:00",
                     "send_interval_time_end": "10:00"})  # fmt: skip
    assert (changed.text, changed.client_filter) == ("new", "vip")


def test_a_paused_mailing_may_be_edited_before_its_start() -> None:
    assert _edit({"text": "new"}, state=MailingState.PAUSED).text == "new"


def test_a_change_to_nothing_is_the_current_fields_in_any_state() -> None:
    for state in MailingState:
        assert _edit({"text": " Some text "}, state=state, now=END) is CURRENT


def test_after_the_start_only_the_end_may_move() -> None:
    during = START + timedelta(minutes=1)
    with pytest.raises(EditRefused, match=STARTED):
        _edit({"text": "new"}, now=during, state=MailingState.RUNNING)
    with pytest.raises(EditRefused, match=STARTED):
        _edit({"text": "new", "datetime_end": "2026-05-02T00:00Z"}, now=during,
              state=MailingState.RUNNING)  # fmt: skip
    moved = _edit({"datetime_end": "2026-05-02T00:00:00Z", "text": "Some text"}, now=during,
                  state=MailingState.RUNNING)  # fmt: skip
    assert moved.datetime_end == datetime(2026, 5, 2, tzinfo=UTC)


def test_a_moved_end_must_lie_ahead() -> None:
    during = START + timedelta(hours=2)
    with pytest.raises(InvalidInput) as caught:
        _edit({"datetime_end": "2026-05-01T13:30:00Z"}, now=during, state=MailingState.PAUSED)
    assert caught.value.errors == {"datetime_end": [END_IN_THE_PAST]}


@pytest.mark.parametrize("state", [MailingState.FINISHED, MailingState.CANCELLED])
def test_a_final_mailing_cannot_change(state: MailingState) -> None:
    with pytest.raises(EditRefused, match=f"The mailing is {state}"):
        _edit({"datetime_end": "2026-05-02T00:00:00Z"}, now=START, state=state)
    with pytest.raises(EditRefused, match=f"The mailing is {state}"):
        _edit({"text": "new"}, now=NOW, state=state)


def test_only_a_mailing_that_has_not_started_may_be_deleted() -> None:
    check_deletable(CURRENT, NOW)
    with pytest.raises(EditRefused, match="cancel it instead"):
        check_deletable(CURRENT, START)


def test_a_start_given_in_another_zone_that_is_the_same_instant_changes_nothing() -> None:
    moscow = timezone(timedelta(hours=3))
    same = START.astimezone(moscow).isoformat()
    assert _edit({"datetime_start": same}, now=END, state=MailingState.FINISHED) is CURRENT
