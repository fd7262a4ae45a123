"""Opt-out rules as plain functions: what a request body or an import line may say, and whether
an inbound text message is a stop word. No I/O; the endpoints, the importer and the admin page
all judge with these."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, get_args

from gateway.clients.rules import PHONE_MESSAGE, normalize_phone
from gateway.errors import NON_FIELD_ERRORS, Errors, InvalidInput
from sms_events.contracts import OptOutSource

__all__ = [
    "DEFAULT_STOP_WORDS",
    "REASON_MAX_LENGTH",
    "SOURCES",
    "InboundMessage",
    "OptOutRequest",
    "StopWords",
    "parse_inbound",
    "parse_opt_out",
    "parse_phone",
]

REASON_MAX_LENGTH: Final = 200
DEFAULT_STOP_WORDS: Final = ("STOP", "СТОП", "UNSUBSCRIBE")
SOURCES: Final[tuple[OptOutSource, ...]] = get_args(OptOutSource)

REQUIRED: Final = "This field is required."
NOT_AN_OBJECT: Final = "Invalid data. Expected a JSON object."
REASON_TOO_LONG: Final = f"Ensure this field has no more than {REASON_MAX_LENGTH} characters."
NOT_STRING: Final = "Not a valid string."
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


def _reason(raw: Any, errors: Errors) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        errors["reason"] = [NOT_STRING]
        return None
    reason = raw.strip()
    if "\x00" in reason:
        errors["reason"] = ["Null characters are not allowed."]
    elif len(reason) > REASON_MAX_LENGTH:
        errors["reason"] = [REASON_TOO_LONG]
    return reason or None


def parse_opt_out(data: Any) -> OptOutRequest:
    """``{"phone": ..., "reason": ...}`` of ``POST /api/v1/opt-outs/`` or an import line;
    raises ``InvalidInput`` naming each bad field."""
    if not isinstance(data, Mapping):
        raise InvalidInput({NON_FIELD_ERRORS: [NOT_AN_OBJECT]})
    errors: Errors = {}
    phone = ""
    if data.get("phone") in (None, ""):
        errors["phone"] = [REQUIRED]
    else:
        try:
            phone = parse_phone(data["phone"])
        except ValueError as exc:
            errors["phone"] = [str(exc)]
    reason = _reason(data.get("reason"), errors)
    if errors:
        raise InvalidInput(errors)
    return OptOutRequest(phone, reason)


def parse_inbound(data: Any) -> InboundMessage:
    """The provider's ``{"phone": <int64>, "text": "...", "received_at": "..."}``; raises
    ``InvalidInput`` naming each bad field."""
    if not isinstance(data, Mapping):
        raise InvalidInput({NON_FIELD_ERRORS: [NOT_AN_OBJECT]})
    errors: Errors = {}
    phone, text, received_at = "", "", None
    raw_phone = data.get("phone")
    if raw_phone is None:
        errors["phone"] = [REQUIRED]
    elif isinstance(raw_phone, bool) or not isinstance(raw_phone, int):
        errors["phone"] = [PHONE_INT_MESSAGE]
    else:
        try:
            phone = normalize_phone(str(raw_phone))
        except ValueError:
            errors["phone"] = [PHONE_INT_MESSAGE]
    raw_text = data.get("text")
    if raw_text is None:
        errors["text"] = [REQUIRED]
    elif not isinstance(raw_text, str):
        errors["text"] = [NOT_STRING]
    else:
        text = raw_text
    raw_at = data.get("received_at")
    if raw_at is not None:
        try:
            if not isinstance(raw_at, str):
                raise ValueError(raw_at)
            received_at = datetime.fromisoformat(raw_at.replace("Z", "+00:00"))
            if received_at.tzinfo is None:
                raise ValueError(raw_at)
        except ValueError:
            errors["received_at"] = [DATETIME_MESSAGE]
    if errors:
        raise InvalidInput(errors)
    return InboundMessage(phone, text, received_at)


# What may surround a stop word: spaces and punctuation (dashes and ellipsis included).
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
