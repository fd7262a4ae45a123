"""The CloudEvents envelope: JSON round trip, required attributes, bad bodies, upcasting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar
from uuid import uuid4

import orjson
import pytest

from sms_events.contracts import ClientCreated, Event, register, upcast, upcaster
from sms_events.envelope import CONTENT_TYPE, Envelope, EnvelopeError

# A test-only event whose schema went from v1 {"name"} to v2 {"first", "last"}: its type name is
# unique to this module so it never clashes with the real contracts.
_TEST_TYPE = "tests.envelope.person_renamed"


@register
class _PersonRenamed(Event):
    event_type: ClassVar[str] = _TEST_TYPE
    schema_version: ClassVar[int] = 2
    stream_category: ClassVar[str] = "person"

    person_id: int
    first: str
    last: str

    def _stream_key(self) -> str:
        return str(self.person_id)


@upcaster(_TEST_TYPE, 1)
def _split_name(data: dict[str, Any]) -> dict[str, Any]:
    first, _, last = data.pop("name").partition(" ")
    return {**data, "first": first, "last": last}


def _client_created() -> ClientCreated:
    return ClientCreated(
        client_id=7,
        phone="79991234567",
        operator_code="999",
        tag="vip",
        time_zone="Europe/Moscow",
        updated_at=datetime(2025, 1, 15, 9, 30, tzinfo=UTC),
    )


def _envelope(**overrides: Any) -> Envelope:
    event = _client_created()
    fields: dict[str, Any] = {
        "id": uuid4(),
        "type": event.event_type,
        "subject": event.stream_id(),
        "source": "/sms/tests",
        "time": datetime(2025, 1, 15, 12, 30, 1, 250000, tzinfo=timezone(timedelta(hours=3))),
        "data": event.model_dump(mode="json"),
        "sequence": 3,
        "correlationid": "corr-1",
        "causationid": "cause-1",
    }
    return Envelope(**{**fields, **overrides})


def test_round_trip_keeps_every_attribute() -> None:
    env = _envelope(extensions={"traceparent": "00-abc-def-01"})

    back = Envelope.from_json(env.to_json())

    assert back == env
    assert back.payload() == _client_created()


def test_json_has_the_cloudevents_required_attributes_and_utc_time_in_z() -> None:
    body = orjson.loads(_envelope().to_json())

    assert body["specversion"] == "1.0"
    for attribute in ("id", "source", "type"):
        assert isinstance(body[attribute], str) and body[attribute]
    assert body["time"] == "2025-01-15T09:30:01.250000Z"
    assert body["datacontenttype"] == "application/json"
    assert body["subject"] == "client-7"
    assert body["dataversion"] == 1
    assert body["sequence"] == 3
    assert body["correlationid"] == "corr-1"
    assert body["causationid"] == "cause-1"
    assert CONTENT_TYPE == "application/cloudevents+json"


def test_optional_extensions_are_left_out_when_unset() -> None:
    body = orjson.loads(_envelope(sequence=None, correlationid=None, causationid=None).to_json())

    assert not {"sequence", "correlationid", "causationid"} & body.keys()


def test_time_without_fraction_still_ends_in_z() -> None:
    body = orjson.loads(_envelope(time=datetime(2025, 1, 15, tzinfo=UTC)).to_json())

    assert body["time"] == "2025-01-15T00:00:00Z"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"",
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
        b'{"specversion": "0.3", "id": "x", "source": "s", "type": "t"}',
        b'{"specversion": "1.0", "source": "s", "type": "t", "time": "2025-01-01T00:00:00Z"}',
        b'{"specversion": "1.0", "id": "not-a-uuid", "source": "s", "type": "t",'
        b' "time": "2025-01-01T00:00:00Z"}',
        b'{"specversion": "1.0", "id": "0190a4b6-7c1d-7e2f-8a3b-4c5d6e7f8091", "source": "s",'
        b' "type": "t", "time": 12}',
        b'{"specversion": "1.0", "id": "0190a4b6-7c1d-7e2f-8a3b-4c5d6e7f8091", "source": "s",'
        b' "type": 5, "time": "2025-01-01T00:00:00Z"}',
        b'{"specversion": "1.0", "id": "0190a4b6-7c1d-7e2f-8a3b-4c5d6e7f8091", "source": "s",'
        b' "type": "t", "time": "2025-01-01T00:00:00Z", "data": [1]}',
        b'{"specversion": "1.0", "id": "0190a4b6-7c1d-7e2f-8a3b-4c5d6e7f8091", "source": "s",'
        b' "type": "t", "time": "2025-01-01T00:00:00Z", "dataversion": "two"}',
        b'{"specversion": "1.0", "id": "0190a4b6-7c1d-7e2f-8a3b-4c5d6e7f8091", "source": "s",'
        b' "type": "t", "time": "2025-01-01T00:00:00"}',
    ],
)
def test_anything_that_is_not_a_cloudevent_raises_envelope_error(raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.from_json(raw)


def test_old_schema_version_is_upcast_on_read() -> None:
    person = uuid4().int % 10_000
    env = _envelope(
        type=_TEST_TYPE, dataversion=1, data={"person_id": person, "name": "Ada Lovelace"}
    )

    payload = Envelope.from_json(env.to_json()).payload()

    assert payload == _PersonRenamed(person_id=person, first="Ada", last="Lovelace")


def test_current_schema_version_is_not_upcast() -> None:
    data = {"person_id": 1, "first": "Grace", "last": "Hopper"}

    assert upcast(_TEST_TYPE, 2, data) == _PersonRenamed(**data)


def test_extensions_cannot_override_the_cloudevent_attributes() -> None:
    env = _envelope(extensions={"id": "forged", "type": "forged", "traceparent": "00-1-2-01"})

    body = orjson.loads(env.to_json())

    assert body["id"] == str(env.id)
    assert body["type"] == "client.created"
    assert body["traceparent"] == "00-1-2-01"
