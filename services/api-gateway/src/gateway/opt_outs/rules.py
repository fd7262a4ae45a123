"""Opt-out rules as plain functions: what each field of a request body or an import line may
say (the request models of ``gateway.opt_outs.schemas`` carry them), and whether an inbound
text message is a stop word. No I/O."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, get_args

from gateway.clients.rules import PHONE_MESSAGE, normalize_phone
from gateway.errors import NOT_STRING, NULL_CHARACTER, REQUIRED
from sms_events.contracts import OptOutSource

__all__ = [
    "DEFAULT_STOP_WORDS",
    "REASON_MAX_LENGTH",
    "SOURCES",
    "InboundMessage",
    "OptOutRequest",
    "StopWords",
    "check_inbound_phone",
    "check_inbound_text",
    "check_phone",
    "check_reason",
    "check_received_at",
    "parse_phone",
]

REASON_MAX_LENGTH: Final = 200
DEFAULT_STOP_WORDS: Final = ("STOP", "СТОП", "UNSUBSCRIBE")
SOURCES: Final[tuple[OptOutSource, ...]] = get_args(OptOutSource)

NOT_AN_OBJECT: Final = "Invalid data. Expected a JSON object."
REASON_TOO_LONG: Final = f"Ensure this field has no more than {REASON_MAX_LENGTH} characters."
PHONE_INT_MESSAGE: Final = "Phone must be an integer of 11 digits starting with 7."
DATETIME_MESSAGE: Final = "Datetime has wrong format. Use ISO 8601 with a time zone."


@dataclass(frozen=True, slots=True)
class OptOutRequest:
    phone: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A mobile-originated message as the provider posts it."""

    phone: str
    text: str
    received_at: datetime | None


def parse_phone(raw: Any) -> str:
    """The normalised phone of a path, body or CSV cell (``79991234567``, ``+7999…`` or the
    integer); raises ``ValueError(PHONE_MESSAGE)``."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError(PHONE_MESSAGE)
    return normalize_phone(str(raw))


def check_phone(raw: Any) -> str:
    """The phone of ``POST /api/v1/opt-outs/`` or an import line: null or blank is missing."""
    if raw in (None, ""):
        raise ValueError(REQUIRED)
    return parse_phone(raw)


def check_reason(raw: Any) -> str | None:
    """Why, trimmed; blank or null is no reason."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError(NOT_STRING)
    reason = raw.strip()
    if "\x00" in reason:
        raise ValueError(NULL_CHARACTER)
    if len(reason) > REASON_MAX_LENGTH:
        raise ValueError(REASON_TOO_LONG)
    return reason or None


def check_inbound_phone(raw: Any) -> int:
    """The provider's sender: an integer of 11 digits starting with 7."""
    if raw is None:
        raise ValueError(REQUIRED)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(PHONE_INT_MESSAGE)
    try:
        normalize_phone(str(raw))
    except ValueError:
        raise ValueError(PHONE_INT_MESSAGE) from None
    return raw


def check_inbound_text(raw: Any) -> str:
    """The message's text, as sent."""
    if raw is None:
        raise ValueError(REQUIRED)
    if not isinstance(raw, str):
        raise ValueError(NOT_STRING)
    return raw


def check_received_at(raw: Any) -> datetime | None:
    """When the provider received it: ISO 8601 with a zone, or null."""
    if raw is None:
        return None
    try:
        if not isinstance(raw, str):
            raise ValueError(raw)
        received_at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if received_at.tzinfo is None:
            raise ValueError(raw)
    except ValueError:
        raise ValueError(DATETIME_MESSAGE) from None
    return received_at


_AROUND: Final = ".!?,;:\"'()[]«»\u2026-\u2013\u2014 \t\r\n"


def _folded(text: str) -> str:
    # NFKC makes full-width and other look-alike forms plain; casefold handles Cyrillic too.
    return unicodedata.normalize("NFKC", text).casefold()


class StopWords:
    """The words that opt a phone out when a message consists of one of them (any case,
    surrounding spaces and punctuation ignored: "Stop", " STOP! ", "стоп."). A longer message
    merely containing the word ("don't stop") is not an opt-out."""

    def __init__(self, words: Iterable[str]) -> None:
        self._words = frozenset(_folded(w.strip()) for w in words if w.strip())

    def match(self, text: str) -> str | None:
        """The stop word ``text`` is, in its folded form, or None."""
        core = _folded(text).strip().strip(_AROUND)
        return core if core in self._words else None
