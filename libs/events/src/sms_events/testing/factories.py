"""Build CloudEvent envelopes from contract models, as the relay would publish them."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from sms_events.contracts import Event
from sms_events.envelope import Envelope

__all__ = ["envelope_for"]


def envelope_for(event: Event, sequence: int = 1, source: str = "/tests") -> Envelope:
    return Envelope(
        id=uuid4(),
        type=event.event_type,
        subject=event.stream_id(),
        source=source,
        time=datetime.now(UTC),
        data=event.model_dump(mode="json"),
        dataversion=event.schema_version,
        sequence=sequence,
    )
