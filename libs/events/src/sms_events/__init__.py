"""Event contracts, event store, outbox relay and consumer helpers for the SMS services."""

from sms_events.contracts import (
    ClientCreated,
    ClientDeleted,
    ClientsImported,
    ClientUpdated,
    Event,
    ImportedClient,
    UnknownEventType,
    event_class,
    registered_events,
    upcast,
)
from sms_events.envelope import Envelope, EnvelopeError
from sms_events.store import (
    ANY_VERSION,
    NO_STREAM,
    Checkpoint,
    EventStore,
    NewEvent,
    RecordedEvent,
    WrongExpectedVersion,
    appending,
)

__all__ = [
    "ANY_VERSION",
    "NO_STREAM",
    "Checkpoint",
    "ClientCreated",
    "ClientDeleted",
    "ClientUpdated",
    "ClientsImported",
    "Envelope",
    "EnvelopeError",
    "Event",
    "EventStore",
    "ImportedClient",
    "NewEvent",
    "RecordedEvent",
    "UnknownEventType",
    "WrongExpectedVersion",
    "appending",
    "event_class",
    "registered_events",
    "upcast",
]
