"""AsyncAPI 3.0.0 description of the event stream, generated from the registered event models.

The document is what a consumer needs to subscribe without reading our code: the broker, the
topic exchange, one channel per event type (its routing key), and each message's CloudEvents
envelope with the payload's JSON schema. Output is deterministic (models sorted by type name,
fixed example ids and times), so ``docs/asyncapi.json`` can be committed and checked for drift.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Sequence
from datetime import date, datetime, time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final, Union, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from sms_events.contracts import Event, registered_events
from sms_events.envelope import CONTENT_TYPE
from sms_events.settings import RabbitSettings
from sms_events.signing import SIGNATURE_HEADER

__all__ = ["build_document", "main", "render"]

ASYNCAPI_VERSION: Final = "3.0.0"
SERVER: Final = "rabbitmq"
_HOST: Final = "localhost:5672"
_AMQP_BINDING: Final = "0.3.0"
_SCHEMAS: Final = "#/components/schemas/"
# The default, not the environment's: the document must not depend on who generates it.
_EXCHANGE: Final[str] = RabbitSettings.model_fields["amqp_exchange"].default
# Fixed values for the examples so that regenerating never changes the file.
_EXAMPLE_ID: Final = "0190a4b6-7c1d-7e2f-8a3b-4c5d6e7f8091"
_EXAMPLE_TIME: Final = "2025-01-15T09:30:00Z"
_EXAMPLE_SCALARS: Final[dict[type, Any]] = {
    bool: True,
    int: 1,
    float: 1.0,
    str: "string",
    datetime: _EXAMPLE_TIME,
    date: "2025-01-15",
    time: "09:00:00",
    UUID: _EXAMPLE_ID,
}


def _package_version() -> str:
    try:
        return version("sms-events")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


def _envelope_schema(cls: type[Event], data_ref: dict[str, Any]) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode body (see envelope.py) around this event's data."""
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "datacontenttype", "data"],
        "properties": {
            "specversion": {"type": "string", "const": "1.0"},
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "Event id; consumers de-duplicate on it (delivery is at least once)",
            },
            "source": {
                "type": "string",
                "format": "uri-reference",
                "description": "The service that appended the event, e.g. /sms/api-gateway",
            },
            "type": {"type": "string", "const": cls.event_type},
            "subject": {
                "type": "string",
                "description": "The event's stream, written category-id",
            },
            "time": {
                "type": "string",
                "format": "date-time",
                "description": "When the event was stored, UTC",
            },
            "datacontenttype": {"type": "string", "const": "application/json"},
            "dataversion": {
                "type": "integer",
                "const": cls.schema_version,
                "description": "Schema version of data (extension attribute)",
            },
            "sequence": {
                "type": "integer",
                "minimum": 1,
                "description": "The event's version within its stream (extension attribute)",
            },
            "correlationid": {
                "type": "string",
                "description": "Id of the request that started this chain of events",
            },
            "causationid": {
                "type": "string",
                "description": "Id of the event or request that directly caused this one",
            },
            "cursor": {
                "type": "string",
                "pattern": "^[0-9a-f]{32}$",
                "description": "The event's place in publishing order, as the event feed "
                "(GET /api/v1/events/) pages by it: opaque, but cursors compare as strings in "
                "that order (extension attribute)",
            },
            "data": data_ref,
        },
    }


def _value_example(annotation: Any) -> Any:
    """A placeholder value of a type: scalars, nested models and lists of them."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return _value_example(next(a for a in get_args(annotation) if a is not type(None)))
    if origin in (list, tuple, set, frozenset, Sequence):
        return [_value_example(get_args(annotation)[0])]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_example(annotation)
    if annotation in _EXAMPLE_SCALARS:
        return _EXAMPLE_SCALARS[annotation]
    raise LookupError(f"no example for {annotation!r}")


def _model_example(cls: type[BaseModel]) -> dict[str, Any]:
    """Every required field (and every field with examples): its first example, else a
    placeholder by type."""
    return {
        name: info.examples[0] if info.examples else _value_example(info.annotation)
        for name, info in cls.model_fields.items()
        if info.is_required() or info.examples
    }


def _example_event(cls: type[Event]) -> Event | None:
    """An event that validates against the model, or ``None`` when none can be made up."""
    try:
        return cls.model_validate(_model_example(cls))
    except (LookupError, StopIteration, IndexError, ValidationError):
        return None


def _message(cls: type[Event], data_ref: dict[str, Any]) -> dict[str, Any]:
    description = cls.description or f"The {cls.event_type} event."
    message: dict[str, Any] = {
        "name": cls.event_type,
        "title": cls.__name__,
        "summary": description,
        "description": (
            f"{description}\n\nPublished as a CloudEvent with routing key `{cls.event_type}` to "
            f"the `{_EXCHANGE}` topic exchange. Payload schema version {cls.schema_version}; "
            "older versions are upcast by sms_events on read."
        ),
        "contentType": CONTENT_TYPE,
        "correlationId": {
            "description": "Correlation id of the originating request",
            "location": "$message.payload#/correlationid",
        },
        "tags": [{"name": cls.stream_category}],
        "headers": {
            "type": "object",
            "properties": {
                SIGNATURE_HEADER: {
                    "type": "string",
                    "pattern": "^v1=[0-9a-f]{64}$",
                    "description": "HMAC-SHA256 of the exact body bytes under the platform's "
                    "EVENT_SIGNING_KEY, set by the relay: the platform's consumers refuse "
                    "(dead-letter) a message without a valid one. Other projects cannot check "
                    "it and need not: their read-only users cannot publish.",
                }
            },
        },
        "payload": _envelope_schema(cls, data_ref),
        "bindings": {
            "amqp": {"messageType": cls.event_type, "bindingVersion": _AMQP_BINDING},
        },
        "x-schema-version": cls.schema_version,
    }
    example = _example_event(cls)
    if example is not None:
        message["examples"] = [
            {
                "name": cls.__name__,
                "payload": {
                    "specversion": "1.0",
                    "id": _EXAMPLE_ID,
                    "source": "/sms/api-gateway",
                    "type": cls.event_type,
                    "subject": example.stream_id(),
                    "time": _EXAMPLE_TIME,
                    "datacontenttype": "application/json",
                    "dataversion": cls.schema_version,
                    "sequence": 1,
                    "correlationid": "5f0c7e2a9b1d4c3e8f6a7b8c9d0e1f2a",
                    "cursor": "00000000000003e9000000000000002a",
                    "data": example.model_dump(mode="json"),
                },
            }
        ]
    return message


def _data_schemas(events: Sequence[type[Event]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each model's serialization schema as a ref, and every definition for components.

    ``models_json_schema`` is ``model_json_schema(mode="serialization")`` for several models at
    once: it hoists every model and nested definition into one ``$defs`` (what becomes
    components/schemas) and names clashing definitions apart.
    """
    refs, top = models_json_schema(
        [(cls, "serialization") for cls in events], ref_template=_SCHEMAS + "{model}"
    )
    defs = top.get("$defs", {})
    return [dict(refs[(cls, "serialization")]) for cls in events], dict(sorted(defs.items()))


def build_document(events: Sequence[type[Event]] | None = None) -> dict[str, Any]:
    """The AsyncAPI document for ``events`` (every registered event model by default)."""
    events = sorted(events or registered_events(), key=lambda cls: cls.event_type)
    data_refs, schemas = _data_schemas(events)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for cls, data_ref in zip(events, data_refs, strict=True):
        name = cls.__name__
        messages[name] = _message(cls, data_ref)
        channels[cls.event_type] = {
            "address": cls.event_type,
            "title": name,
            "description": cls.description or f"The {cls.event_type} event.",
            "servers": [{"$ref": f"#/servers/{SERVER}"}],
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": _EXCHANGE,
                        "type": "topic",
                        "durable": True,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                    "bindingVersion": _AMQP_BINDING,
                }
            },
        }
        # The platform sends every event (through the outbox relay); consumers receive them.
        operations[f"send{name}"] = {
            "action": "send",
            "title": f"Publish {cls.event_type}",
            "summary": f"The platform publishes {name} after the event is committed.",
            "channel": {"$ref": f"#/channels/{cls.event_type}"},
            "messages": [{"$ref": f"#/channels/{cls.event_type}/messages/{name}"}],
            "bindings": {
                "amqp": {"deliveryMode": 2, "mandatory": False, "bindingVersion": _AMQP_BINDING}
            },
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:sms:events",
        "info": {
            "title": "SMS mailing platform events",
            "version": _package_version(),
            "description": (
                "Every event the SMS mailing platform publishes. Events are stored first "
                "(PostgreSQL event store) and published by the outbox relay at least once, in "
                "commit order per stream, as persistent CloudEvents 1.0 JSON messages with "
                "publisher confirms. Consumers bind their own durable queues to the exchange by "
                "routing key (the event type) and must de-duplicate by event id."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            SERVER: {
                "host": _HOST,
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ; every event goes to one durable topic exchange",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render(document: dict[str, Any]) -> str:
    """The document as committed: indented JSON with a trailing newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Print the AsyncAPI document, or write it to ``--output``."""
    parser = argparse.ArgumentParser(description="Generate the AsyncAPI document of the events")
    parser.add_argument("--output", type=Path, help="write here instead of standard output")
    args = parser.parse_args(argv)
    text = render(build_document())
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
