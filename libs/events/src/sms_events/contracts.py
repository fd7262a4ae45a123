"""Event payload models: the one definition of every event on the stream."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ClientCreated",
    "ClientDeleted",
    "ClientUpdated",
    "Event",
    "UnknownEventType",
    "event_class",
    "registered_events",
    "upcast",
]


class UnknownEventType(LookupError):
    """An envelope names a type this version of the contracts does not know."""


class Event(BaseModel):
    """Base of every event payload.

    Subclasses set ``event_type`` (dotted, lower-case, past tense: it is also the RabbitMQ
    routing key) and ``schema_version``. Adding an optional field keeps the version; a breaking
    change bumps it and registers an upcaster from the previous version.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    stream_category: ClassVar[str]
    description: ClassVar[str] = ""

    def stream_id(self) -> str:
        """The stream this event belongs to, written ``category-id``."""
        return f"{self.stream_category}-{self._stream_key()}"

    def _stream_key(self) -> str:
        raise NotImplementedError


_REGISTRY: dict[str, type[Event]] = {}
# (type, from_version) -> function turning a payload of that version into the next one.
_UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def register(cls: type[Event]) -> type[Event]:
    """Class decorator adding an event model to the registry under its type name."""
    if cls.event_type in _REGISTRY:
        raise ValueError(f"event type {cls.event_type!r} registered twice")
    _REGISTRY[cls.event_type] = cls
    return cls


def upcaster(
    event_type: str, from_version: int
) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Callable[[dict[str, Any]], dict[str, Any]]]:
    """Register a function that turns a ``from_version`` payload into ``from_version + 1``."""

    def decorate(
        fn: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return decorate


def event_class(event_type: str) -> type[Event]:
    """The model registered for ``event_type``."""
    try:
        return _REGISTRY[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def registered_events() -> list[type[Event]]:
    """Every registered event model, sorted by type name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def upcast(event_type: str, version: int, data: dict[str, Any]) -> Event:
    """Parse a stored or received payload, upgrading old schema versions on the way."""
    cls = event_class(event_type)
    while version < cls.schema_version:
        data = _UPCASTERS[(event_type, version)](data)
        version += 1
    return cls.model_validate(data)


# --- clients ---------------------------------------------------------------------------------


class _ClientEvent(Event):
    stream_category: ClassVar[str] = "client"

    client_id: int = Field(description="Integer id of the client, as in the REST API")

    def _stream_key(self) -> str:
        return str(self.client_id)


class _ClientState(_ClientEvent):
    phone: str = Field(description="11 digits starting with 7", examples=["79991234567"])
    operator_code: str = Field(description="Digits 2-4 of the phone", examples=["999"])
    tag: str | None = Field(default=None, max_length=20)
    time_zone: str = Field(description="IANA time zone name", examples=["Europe/Moscow"])
    updated_at: datetime


@register
class ClientCreated(_ClientState):
    event_type: ClassVar[str] = "client.created"
    description: ClassVar[str] = "A client was added to the base."


@register
class ClientUpdated(_ClientState):
    event_type: ClassVar[str] = "client.updated"
    description: ClassVar[str] = "A client's fields changed; the payload is the full new state."


@register
class ClientDeleted(_ClientEvent):
    event_type: ClassVar[str] = "client.deleted"
    description: ClassVar[str] = "A client was removed from the base."

    deleted_at: datetime
