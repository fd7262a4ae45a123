"""The AsyncAPI document generated from the event models, and the committed copy of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from sms_events.asyncapi import build_document, main, render
from sms_events.contracts import event_class, registered_events

ROOT = Path(__file__).resolve().parents[4]
COMMITTED = ROOT / "docs" / "asyncapi.json"
VALIDATOR = ROOT / "tools" / "asyncapi" / "validate.mjs"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_committed_document_matches_the_event_models() -> None:
    # A fresh interpreter sees exactly the registered contracts, as `make asyncapi` does
    # (test modules register test-only events in this one).
    fresh = subprocess.run(
        [sys.executable, "-m", "sms_events.asyncapi"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    assert COMMITTED.read_text(encoding="utf-8") == fresh, (
        "docs/asyncapi.json is out of date with the event contracts: run `make asyncapi` "
        "(.venv/bin/sms-asyncapi --output docs/asyncapi.json) and commit the result"
    )


def test_generation_is_deterministic() -> None:
    assert render(build_document()) == render(build_document())


def test_describes_the_rabbitmq_server_and_asyncapi_3(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["servers"]["rabbitmq"]["protocol"] == "amqp"
    assert document["servers"]["rabbitmq"]["host"] == "localhost:5672"


def test_every_registered_event_has_a_channel_keyed_by_its_routing_key(
    document: dict[str, Any],
) -> None:
    for cls in registered_events():
        channel = document["channels"][cls.event_type]
        assert channel["address"] == cls.event_type
        exchange = channel["bindings"]["amqp"]["exchange"]
        assert exchange == {
            "name": "sms.events",
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        }
        assert channel["bindings"]["amqp"]["is"] == "routingKey"
        operation = document["operations"][f"send{cls.__name__}"]
        assert operation["action"] == "send"
        assert operation["channel"] == {"$ref": f"#/channels/{cls.event_type}"}
    assert {op["action"] for op in document["operations"].values()} == {"send"}


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = _refs(document)

    assert refs
    for ref in refs:
        assert _resolve(document, ref) is not None


def test_messages_carry_the_cloudevent_envelope_and_model_schema(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    for cls in registered_events():
        message = document["components"]["messages"][cls.__name__]
        payload = message["payload"]
        assert set(payload["required"]) >= {"specversion", "id", "source", "type", "data"}
        assert payload["properties"]["type"]["const"] == cls.event_type
        assert payload["properties"]["dataversion"]["const"] == cls.schema_version
        assert message["x-schema-version"] == cls.schema_version
        assert message["contentType"] == "application/cloudevents+json"
        assert cls.description in message["description"]
        # data is the model's own serialization schema, its $defs hoisted to components.
        own = cls.model_json_schema(
            mode="serialization", ref_template="#/components/schemas/{model}"
        )
        defs = own.pop("$defs", {})
        data_schema = _resolve(document, payload["properties"]["data"]["$ref"])
        assert data_schema == own
        for name, schema in defs.items():
            assert schemas[name] == schema


def test_examples_are_valid_events_of_their_type(document: dict[str, Any]) -> None:
    with_examples = 0
    for message in document["components"]["messages"].values():
        for example in message.get("examples", []):
            body = example["payload"]
            event = event_class(body["type"]).model_validate(body["data"])
            assert body["subject"] == event.stream_id()
            with_examples += 1

    assert with_examples >= len(registered_events()) // 2


def test_main_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    main([])

    assert orjson.loads(capsys.readouterr().out) == orjson.loads(render(build_document()))


def test_main_writes_the_document_to_output(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.json"

    main(["--output", str(target)])

    assert target.read_text(encoding="utf-8") == render(build_document())


def test_committed_document_passes_the_asyncapi_parser() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    assert (VALIDATOR.parent / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "install the validator first: npm ci --prefix tools/asyncapi"
    )

    result = subprocess.run(
        [node, str(VALIDATOR), str(COMMITTED), "--strict"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )

    assert result.returncode == 0, result.stderr + result.stdout


def test_validator_rejects_a_broken_document(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    broken = orjson.loads(COMMITTED.read_bytes())
    first = next(iter(broken["operations"].values()))
    first["channel"] = {"$ref": "#/channels/no.such.channel"}
    path = tmp_path / "broken.json"
    path.write_bytes(orjson.dumps(broken))

    result = subprocess.run(
        [node, str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=120
    )

    assert result.returncode != 0
    assert "no.such.channel" in result.stderr
