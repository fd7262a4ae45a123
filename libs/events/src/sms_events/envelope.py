"""CloudEvents 1.0 structured-mode JSON envelope: how events travel on the broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from sms_events.contracts import Event, upcast

__all__ = ["CONTENT_TYPE", "Envelope", "EnvelopeError"]

CONTENT_TYPE = "application/cloudevents+json"


class EnvelopeError(ValueError):
    """A message on the wire is not a CloudEvent this library can read."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as it is published: CloudEvents attributes plus our extensions.

    Extensions (lower-case alphanumerics, as the spec requires): ``dataversion`` is the payload
    schema version, ``sequence`` the stream version, ``correlationid``/``causationid`` trace a
    request through the services, ``cursor`` is the event's place in the relay's order (the event
    feed's cursor, see sms_events.feed: a consumer coming from the feed compares the two).
    """

    id: UUID
    type: str
    subject: str
    source: str
    time: datetime
    data: dict[str, Any]
    dataversion: int = 1
    sequence: int | None = None
    correlationid: str | None = None
    causationid: str | None = None
    cursor: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    _event: Event | None = field(default=None, init=False, repr=False, compare=False)

    def payload(self) -> Event:
        """The typed event model (upcast to the current schema version), parsed once."""
        if self._event is None:
            object.__setattr__(self, "_event", upcast(self.type, self.dataversion, self.data))
        assert self._event is not None
        return self._event

    def to_json(self) -> bytes:
        """The structured-mode JSON body; extensions never override the attributes above."""
        body: dict[str, Any] = {
            "specversion": "1.0",
            "id": str(self.id),
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "dataversion": self.dataversion,
            "data": self.data,
        }
        for name in ("sequence", "correlationid", "causationid", "cursor"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        body |= {k: v for k, v in self.extensions.items() if k not in _KNOWN}
        return orjson.dumps(body)

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        """Parse a structured-mode CloudEvent; anything else raises ``EnvelopeError``."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"not JSON: {exc}") from exc
        # Every field is checked here: a consumer must be able to dead-letter a bad message
        # on EnvelopeError alone instead of crashing on whatever a malformed body raises.
        if not isinstance(body, dict):
            raise EnvelopeError(f"not a CloudEvent: a JSON {type(body).__name__}, not an object")
        if body.get("specversion") != "1.0":
            raise EnvelopeError(f"unsupported specversion {body.get('specversion')!r}")
        try:
            data = body.get("data") or {}
            if not isinstance(data, dict):
                raise EnvelopeError("data is not a JSON object")
            return cls(
                id=UUID(_text(body, "id")),
                type=_text(body, "type"),
                subject=_optional_text(body, "subject") or "",
                source=_text(body, "source"),
                time=_timestamp(_text(body, "time")),
                data=data,
                dataversion=_integer(body, "dataversion") or 1,
                sequence=_integer(body, "sequence"),
                correlationid=_optional_text(body, "correlationid"),
                causationid=_optional_text(body, "causationid"),
                cursor=_optional_text(body, "cursor"),
                extensions={k: v for k, v in body.items() if k not in _KNOWN},
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, EnvelopeError):
                raise
            raise EnvelopeError(f"not a CloudEvent: {exc!r}") from exc


_KNOWN = frozenset(
    {
        "specversion", "id", "source", "type", "subject", "time", "datacontenttype",
        "dataversion", "data", "sequence", "correlationid", "causationid", "cursor",
    }
)  # fmt: skip


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise EnvelopeError(f"attribute {name!r} must be a non-empty string, got {value!r}")
    return value


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise EnvelopeError(f"attribute {name!r} must be a string, got {value!r}")
    return value


def _integer(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise EnvelopeError(f"attribute {name!r} must be an integer, got {value!r}")
    return value


def _timestamp(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:  # RFC 3339 requires an offset; guessing one would shift events
        raise EnvelopeError(f"time {text!r} has no UTC offset")
    return parsed
