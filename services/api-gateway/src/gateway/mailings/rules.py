"""Mailing rules as plain functions: each field's rule with DRF-style messages (the request
models of ``gateway.mailings.schemas`` carry them), the rules between fields, and which edits
and deletions a mailing's state allows.

No I/O and no clock: ``now`` is passed in. A field's rule raises ``ValueError`` with its message
and the rules between fields raise ``InvalidInput`` (either way a 400 naming each field); an
edit or deletion the mailing's state refuses raises ``EditRefused`` (a 400 with ``detail``
saying why). Lifecycle commands (cancel, pause, resume) are
``gateway.mailings.lifecycle``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, time
from typing import Any, Final

from gateway.errors import (
    NOT_NULL,
    NOT_STRING,
    NULL_CHARACTER,
    REQUIRED,
    DomainError,
    Errors,
    InvalidInput,
)
from gateway.fields import UNSET, Unset
from gateway.mailings.lifecycle import MailingState, can_move_end, editable
from sms_events.contracts import RESENDABLE_STATUSES
from sms_events.segments import measure

__all__ = [
    "CLIENT_FILTER_MAX_LENGTH",
    "DATETIME_MESSAGE",
    "END_BEFORE_START",
    "END_IN_THE_PAST",
    "STARTED",
    "TEXT_MAX_LENGTH",
    "TIME_MESSAGE",
    "WINDOW_EMPTY",
    "WINDOW_HALF",
    "EditRefused",
    "MailingChange",
    "MailingFields",
    "check_client_filter",
    "check_datetime",
    "check_deletable",
    "check_statuses",
    "check_text",
    "check_time",
    "edit",
    "follow_up",
    "new_mailing",
    "too_many_segments",
]

TEXT_MAX_LENGTH: Final = 1000
CLIENT_FILTER_MAX_LENGTH: Final = 255

BLANK: Final = "This field may not be blank."
DATETIME_MESSAGE: Final = (
    "Datetime has wrong format. Use one of these formats instead: "
    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)
DATETIME_RANGE: Final = "Datetime is out of range."
TIME_MESSAGE: Final = "Time has wrong format. Use one of these formats instead: hh:mm[:ss]."
END_BEFORE_START: Final = "datetime_end must be after datetime_start."
END_IN_THE_PAST: Final = "datetime_end must be in the future."
WINDOW_HALF: Final = (
    "Set both send_interval_time_start and send_interval_time_end, or neither "
    "(neither: send at any time of day)."
)
WINDOW_EMPTY: Final = (
    "send_interval_time_end must differ from send_interval_time_start "
    "(a window may cross midnight, e.g. 22:00-06:00)."
)
STARTED: Final = "The mailing has started: only datetime_end can be changed."
NOT_DELETABLE: Final = "The mailing has started and can no longer be deleted; cancel it instead."
NOT_AN_OBJECT: Final = "Invalid data. Expected a JSON object with the mailing's fields."

# A date and a time at least to the minute; the rest is left to datetime.fromisoformat.
_DATETIME: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}", re.ASCII)
_TIME: Final = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?", re.ASCII)
_REQUIRED_FIELDS: Final = ("datetime_start", "datetime_end", "text")


class EditRefused(DomainError):
    """An edit or deletion that the mailing's state does not allow; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class MailingFields:
    """The writable fields of a mailing (all of them are in every mailing event)."""

    text: str
    datetime_start: datetime
    datetime_end: datetime
    send_interval_time_start: time | None = None
    send_interval_time_end: time | None = None
    client_filter: str | None = None


@dataclass(frozen=True, slots=True)
class MailingChange:
    """The validated fields of a request; ``UNSET`` where the request left a field out."""

    text: str | Unset = UNSET
    datetime_start: datetime | Unset = UNSET
    datetime_end: datetime | Unset = UNSET
    send_interval_time_start: time | Unset | None = UNSET
    send_interval_time_end: time | Unset | None = UNSET
    client_filter: str | Unset | None = UNSET


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(NOT_STRING)
    text = value.strip()
    if "\x00" in text:
        raise ValueError(NULL_CHARACTER)
    return text


def check_text(value: Any) -> str:
    """A text, trimmed: not null, not blank, within ``TEXT_MAX_LENGTH``."""
    if value is None:
        raise ValueError(NOT_NULL)
    text = _string(value)
    if not text:
        raise ValueError(BLANK)
    if len(text) > TEXT_MAX_LENGTH:
        raise ValueError(f"Ensure this field has no more than {TEXT_MAX_LENGTH} characters.")
    return text


def check_client_filter(value: Any) -> str | None:
    """A client filter, trimmed; blank or null is every client."""
    if value is None:
        return None
    text = _string(value)
    if len(text) > CLIENT_FILTER_MAX_LENGTH:
        raise ValueError(
            f"Ensure this field has no more than {CLIENT_FILTER_MAX_LENGTH} characters."
        )
    return text or None  # blank and null both mean "every client"


def check_datetime(value: Any) -> datetime:
    """ISO 8601 with a date and a time; a time without zone is UTC. Returned in UTC."""
    if value is None:
        raise ValueError(NOT_NULL)
    if not isinstance(value, str) or not _DATETIME.match(value.strip()):
        raise ValueError(DATETIME_MESSAGE)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(DATETIME_MESSAGE) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(DATETIME_RANGE) from None


def check_time(value: Any) -> time | None:
    """A send window's bound, ``hh:mm[:ss]``; null is no window."""
    if value is None:
        return None
    match = _TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(TIME_MESSAGE)
    hour, minute, second = match.groups()
    return time(int(hour), int(minute), int(second or 0))


def too_many_segments(text: str, max_segments: int) -> str | None:
    """Why ``text`` is refused under a cap of ``max_segments`` SMS segments (0: no cap)."""
    length = measure(text)
    if max_segments and length.segments > max_segments:
        return (
            f"Ensure this text fits in {max_segments} SMS segments; it needs {length.segments} "
            f"({length.encoding.value}, {length.characters} characters)."
        )
    return None


def _check(mailing: MailingFields, now: datetime, max_segments: int) -> None:
    """The rules between fields: end after start and in the future, a whole window or none,
    and the text within the segment cap."""
    errors: Errors = {}
    if (too_long := too_many_segments(mailing.text, max_segments)) is not None:
        errors["text"] = [too_long]
    end: list[str] = []
    if mailing.datetime_end <= mailing.datetime_start:
        end.append(END_BEFORE_START)
    if mailing.datetime_end <= now:
        end.append(END_IN_THE_PAST)
    if end:
        errors["datetime_end"] = end
    window_start, window_end = mailing.send_interval_time_start, mailing.send_interval_time_end
    if (window_start is None) != (window_end is None):
        missing = "send_interval_time_start" if window_start is None else "send_interval_time_end"
        errors[missing] = [WINDOW_HALF]
    elif window_start is not None and window_start == window_end:
        errors["send_interval_time_end"] = [WINDOW_EMPTY]
    if errors:
        raise InvalidInput(errors)


def _merge(current: MailingFields, change: MailingChange) -> MailingFields:
    given = {
        f.name: getattr(change, f.name)
        for f in fields(change)
        if not isinstance(getattr(change, f.name), Unset)
    }
    return replace(current, **given)


def _changed(before: MailingFields, after: MailingFields) -> set[str]:
    return {f.name for f in fields(after) if getattr(after, f.name) != getattr(before, f.name)}


def new_mailing(change: MailingChange, now: datetime, *, max_segments: int = 0) -> MailingFields:
    """The fields of a mailing created from ``change`` (parsed with ``require=True``); a text
    longer than ``max_segments`` SMS segments is refused (0: any length)."""
    if any(isinstance(getattr(change, name), Unset) for name in _REQUIRED_FIELDS):
        raise InvalidInput(
            {n: [REQUIRED] for n in _REQUIRED_FIELDS if isinstance(getattr(change, n), Unset)}
        )
    placeholder = MailingFields(text="", datetime_start=now, datetime_end=now)
    mailing = _merge(placeholder, change)
    _check(mailing, now, max_segments)
    return mailing


def edit(
    current: MailingFields,
    change: MailingChange,
    *,
    now: datetime,
    state: MailingState,
    max_segments: int = 0,
) -> MailingFields:
    """The fields after ``change`` (fields left out keep their value); ``current`` itself when
    nothing changes, whatever the state.

    Before its start a mailing that is not cancelled may change in every field. From its start
    only ``datetime_end`` may move, until the mailing is final (finished or cancelled).
    """
    mailing = _merge(current, change)
    if mailing == current:
        return current
    if not can_move_end(state):
        raise EditRefused(f"The mailing is {state}: it can no longer be changed.")
    started = not editable(now, current.datetime_start)
    if started and _changed(current, mailing) != {"datetime_end"}:
        raise EditRefused(STARTED)
    _check(mailing, now, max_segments)
    return mailing


STATUSES_MESSAGE: Final = (
    f"Expected a non-empty list of statuses among {', '.join(RESENDABLE_STATUSES)}."
)


def check_statuses(value: Any) -> list[str]:
    """The statuses of a resend, in ``RESENDABLE_STATUSES``' order."""
    if not isinstance(value, list) or not value or any(s not in RESENDABLE_STATUSES for s in value):
        raise ValueError(STATUSES_MESSAGE)
    return [s for s in RESENDABLE_STATUSES if s in value]


def follow_up(
    original: MailingFields, change: MailingChange, *, now: datetime, max_segments: int = 0
) -> MailingFields:
    """The fields of a follow-up of ``original``: what ``change`` gives, else the original's
    text and window, a start now and an end after the original's duration from the start;
    every client of the base (the audience is chosen by the original's outcome instead)."""
    start = change.datetime_start if isinstance(change.datetime_start, datetime) else now
    base = replace(
        original,
        datetime_start=start,
        datetime_end=start + (original.datetime_end - original.datetime_start),
        client_filter=None,
    )
    mailing = _merge(base, change)
    _check(mailing, now, max_segments)
    return mailing


def check_deletable(current: MailingFields, now: datetime) -> None:
    """A mailing may be deleted only before its start (a cancelled one included)."""
    if not editable(now, current.datetime_start):
        raise EditRefused(NOT_DELETABLE)
