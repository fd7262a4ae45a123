"""Client rules as plain functions: validation with DRF-style messages, defaults, change detection.

No I/O here: the HTTP handlers and the bulk importer both call these, so a row in a CSV file is
judged exactly like the body of a ``POST /api/v1/clients/``.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from gateway.errors import (
    NOT_NULL,
    NOT_STRING,
    NULL_CHARACTER,
    REQUIRED,
    InvalidInput,
)
from gateway.fields import UNSET, Unset

__all__ = [
    "DEFAULT_TIME_ZONE",
    "PHONE_MESSAGE",
    "TAG_MAX_LENGTH",
    "ClientChange",
    "ClientState",
    "apply_change",
    "check_phone",
    "check_tag",
    "check_time_zone",
    "is_time_zone",
    "normalize_phone",
    "operator_code",
]

PHONE_MESSAGE: Final = "Phone must be 11 digits starting with 7, e.g. 79991234567."
TAG_MAX_LENGTH: Final = 20
DEFAULT_TIME_ZONE: Final = "UTC"

TAG_TOO_LONG: Final = f"Ensure this field has no more than {TAG_MAX_LENGTH} characters."
TIME_ZONE_MESSAGE: Final = "Unknown time zone; use an IANA name such as Europe/Moscow or UTC."
NOT_AN_OBJECT: Final = "Invalid data. Expected a JSON object with the client's fields."

# ASCII digits only: "\d" would also accept Arabic-Indic and other Unicode digits.
_PHONE = re.compile(r"7[0-9]{10}")
# Names that exist on one machine but mean something else (or nothing) on another.
_NOT_PORTABLE = frozenset({"localtime", "posixrules", "Factory"})


@dataclass(frozen=True, slots=True)
class ClientState:
    """The writable fields of a client after a command."""

    phone: str
    tag: str | None = None
    time_zone: str = DEFAULT_TIME_ZONE

    @property
    def operator_code(self) -> str:
        return operator_code(self.phone)


@dataclass(frozen=True, slots=True)
class ClientChange:
    """The validated fields of a request; ``UNSET`` where the request left a field out."""

    phone: str | Unset = UNSET
    tag: str | Unset | None = UNSET
    time_zone: str | Unset = UNSET


def normalize_phone(raw: str) -> str:
    """``79991234567`` from ``79991234567``, ``+79991234567`` or either with spaces around;
    raises ``ValueError(PHONE_MESSAGE)`` for anything else."""
    phone = raw.strip()
    if phone.startswith("+"):
        phone = phone[1:]
    if not _PHONE.fullmatch(phone):
        raise ValueError(PHONE_MESSAGE)
    return phone


def operator_code(phone: str) -> str:
    """The mobile operator's code: digits 2-4 of a normalised phone (``999`` in 79991234567)."""
    return phone[1:4]


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones() - _NOT_PORTABLE)


def is_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone known to zoneinfo (``Europe/Moscow``, ``UTC``)."""
    return name in _time_zones()


def _text(value: Any) -> str:
    # DRF's CharField takes numbers too (a phone sent as 79991234567), but not booleans.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(NOT_STRING)
    text = str(value).strip()
    if "\x00" in text:
        raise ValueError(NULL_CHARACTER)
    return text


def check_phone(value: Any) -> str:
    """A body's (or an import row's) phone, normalised; ``ValueError`` with DRF's message."""
    if value is None:
        raise ValueError(NOT_NULL)
    return normalize_phone(_text(value))


def check_tag(value: Any) -> str | None:
    """A tag, trimmed; blank or null is no tag."""
    if value is None:
        return None
    tag = _text(value)
    if len(tag) > TAG_MAX_LENGTH:
        raise ValueError(TAG_TOO_LONG)
    return tag or None  # a blank tag means "no tag", so ?tag= filters never see ""


def check_time_zone(value: Any) -> str:
    """An IANA time zone name, trimmed."""
    if value is None:
        raise ValueError(NOT_NULL)
    if not isinstance(value, str):
        raise ValueError(NOT_STRING)
    name = value.strip()
    if not is_time_zone(name):
        raise ValueError(TIME_ZONE_MESSAGE)
    return name


def apply_change(current: ClientState | None, change: ClientChange) -> ClientState:
    """The state after ``change``: fields left out keep their value (or get the default, for a
    new client). ``PUT`` behaves like this too, as it does in Django REST framework."""
    if current is None:
        if isinstance(change.phone, Unset):
            raise InvalidInput({"phone": [REQUIRED]})
        current = ClientState(phone=change.phone)
    return ClientState(
        phone=current.phone if isinstance(change.phone, Unset) else change.phone,
        tag=current.tag if isinstance(change.tag, Unset) else change.tag,
        time_zone=current.time_zone if isinstance(change.time_zone, Unset) else change.time_zone,
    )
