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
    request through the services.
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
    extensions: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> Event:
        """The typed event model (upcast to the current schema version)."""
        return upcast(self.type, self.dataversion, self.data)

    def to_json(self) -> bytes:
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
        for name in ("sequence", "correlationid", "causationid"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        body.update(self.extensions)
        return orjson.dumps(body)

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        try:
            body = orjson.loads(raw)
            if body.get("specversion") != "1.0":
                raise EnvelopeError(f"unsupported specversion {body.get('specversion')!r}")
            known = {
                "specversion", "id", "source", "type", "subject", "time", "datacontenttype",
                "dataversion", "data", "sequence", "correlationid", "causationid",
            }  # fmt: skip
            return cls(
                id=UUID(body["id"]),
                type=body["type"],
                subject=body.get("subject", ""),
                source=body["source"],
                time=datetime.fromisoformat(body["time"].replace("Z", "+00:00")),
                data=body.get("data") or {},
                dataversion=int(body.get("dataversion", 1)),
                sequence=body.get("sequence"),
                correlationid=body.get("correlationid"),
                causationid=body.get("causationid"),
                extensions={k: v for k, v in body.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
            if isinstance(exc, EnvelopeError):
                raise
            raise EnvelopeError(f"not a CloudEvent: {exc}") from exc
