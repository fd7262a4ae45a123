"""The services' logs after a small mailing with DEBUG on: JSON lines with the common fields,
a correlation id on every line about work, no secret and no phone anywhere, and one message
followed across the services by its id."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pytest

from sms_events.testing.environment import TEST_SIGNING_KEY
from tests.e2e.e2e_support import create_client, eventually, iso, mailing, messages, now, unique_tag
from tests.e2e.system_support import API_KEY, PROVIDER_TOKEN, System

pytestmark = pytest.mark.service_env({"LOG_LEVEL": "DEBUG"})

SERVICES = ("api-gateway", "scheduler", "dispatcher", "reporter")
N = 6
# Lines about a unit of work (a request, a batch, a round of the timer, one message).
WORK = {
    "http_request",
    "audience_changed",
    "messages_handed_over",
    "batch_dispatched",
    "attempts_failed_recorded",
    "batch_projected",
    "message_scheduled",
    "message_handed_over",
    "message_sent",
    "message_attempt_failed",
    "message_undelivered",
    "message_projected",
}
# The DEBUG lines that follow one message, by the service that writes them.
FOLLOW = {
    "scheduler": {"message_scheduled", "message_handed_over"},
    "dispatcher": {"message_sent"},
    "reporter": {"message_projected"},
}


def test_logs_are_json_traced_free_of_secrets_and_follow_a_message(
    system: System, provider: httpx.Client
) -> None:
    provider.post("/_control", json={"failure_rate": 0.3, "seed": 3})
    tag = unique_tag()
    request_id = f"e2e-logs-{uuid4().hex}"
    with system.api() as api:
        clients = [create_client(api, tag=tag) for _ in range(N)]
        resp = api.post(
            "/api/v1/mailings/",
            json=_mailing_body(tag),
            headers={"X-Request-ID": request_id},
        )
        assert resp.status_code == 201, resp.text
        mailing_id = resp.json()["id"]

        def all_delivered() -> None:
            got = mailing(api, mailing_id)
            assert got["delivered_messages"] == N, got

        eventually(all_delivered, timeout=60)
        message_ids = {m["id"] for m in messages(api, mailing_id)}
    # Every line written, shutdown included; a SIGTERM is a clean stop.
    assert {name: system.group.stop(name) for name in SERVICES} == dict.fromkeys(SERVICES, 0)

    logs = {name: system.group.log(name) for name in (*SERVICES, "fake-provider")}
    secrets_never_appear(logs, [c["phone"] for c in clients])
    lines = {name: parsed_lines(name, logs[name]) for name in SERVICES}
    for name in SERVICES:
        work_is_traced(name, lines[name])
        per_message_lines_are_debug(name, lines[name], message_ids)
    a_message_can_be_followed(lines, mailing_id, message_ids)
    the_request_id_reaches_the_events(system, lines, request_id, mailing_id)


def _mailing_body(tag: str) -> dict[str, Any]:
    return {
        "datetime_start": iso(now() - timedelta(seconds=5)),
        "datetime_end": iso(now() + timedelta(hours=1)),
        "text": "Hello",
        "client_filter": tag,
    }


def secrets_never_appear(logs: dict[str, str], phones: list[str]) -> None:
    for name, text in logs.items():
        assert text, f"{name} wrote no log"
        for secret in (API_KEY, PROVIDER_TOKEN, TEST_SIGNING_KEY, "Authorization", "authorization",
                       "Bearer "):  # fmt: skip
            assert secret not in text, (name, secret)
        for phone in phones:
            assert phone not in text, (name, "a client's phone")


def parsed_lines(name: str, text: str) -> list[dict[str, Any]]:
    out = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)  # every line is JSON
        assert isinstance(line, dict), raw
        missing = {"service", "level", "event", "timestamp"} - set(line)
        assert not missing, (name, missing, raw)
        assert line["service"] == name, raw
        out.append(line)
    assert out, name
    return out


def work_is_traced(name: str, lines: list[dict[str, Any]]) -> None:
    work = [line for line in lines if line["event"] in WORK]
    assert work, f"{name} logged no work"
    untraced = [line for line in work if not line.get("correlation_id")]
    assert not untraced, (name, untraced[:3])


def per_message_lines_are_debug(
    name: str, lines: list[dict[str, Any]], message_ids: set[int]
) -> None:
    # No line per message at INFO: the hot path logs per batch, messages only at DEBUG.
    loud = [line for line in lines if line.get("message_id") in message_ids and
            line["level"] != "debug"]  # fmt: skip
    assert not loud, (name, loud[:3])


def a_message_can_be_followed(
    lines: dict[str, list[dict[str, Any]]], mailing_id: int, message_ids: set[int]
) -> None:
    followed = min(message_ids)
    for name, events in FOLLOW.items():
        about = [line for line in lines[name] if line.get("message_id") == followed]
        assert {line["event"] for line in about} >= events, (name, about)
        assert all(line["mailing_id"] == mailing_id for line in about), about
        assert all(isinstance(line.get("attempt"), int) for line in about), about
    sent = [line for line in lines["dispatcher"] if line["event"] == "message_sent"]
    assert {line["message_id"] for line in sent} == message_ids  # each sent once
    dispatched = [line for line in lines["dispatcher"] if line["event"] == "batch_dispatched"]
    assert sum(line["delivered"] for line in dispatched) == len(message_ids)


def the_request_id_reaches_the_events(
    system: System, lines: dict[str, list[dict[str, Any]]], request_id: str, mailing_id: int
) -> None:
    (created,) = [
        line
        for line in lines["api-gateway"]
        if line["event"] == "http_request" and line.get("request_id") == request_id
    ]
    assert created["correlation_id"] == request_id
    # The scheduler resolved the audience under the request's correlation id...
    resolved = [
        line
        for line in lines["scheduler"]
        if line["event"] == "audience_changed" and line["mailing_id"] == mailing_id
    ]
    assert resolved and all(line["correlation_id"] == request_id for line in resolved)
    # ...and the events it appended for it carry it, with mailing.scheduled as their cause.
    with psycopg.connect(system.env.database_url) as conn:
        rows = conn.execute(
            "SELECT event_id, type, metadata FROM events"
            " WHERE stream_id = %s OR (type IN ('messages.scheduled', 'mailing.audience_resolved')"
            "   AND (data->>'mailing_id')::bigint = %s)",
            (f"mailing-{mailing_id}", mailing_id),
        ).fetchall()
    by_type = {row[1]: row for row in rows}
    scheduled_event = by_type["mailing.scheduled"]
    assert scheduled_event[2]["correlation_id"] == request_id
    for event_type in ("messages.scheduled", "mailing.audience_resolved"):
        metadata = by_type[event_type][2]
        assert metadata["correlation_id"] == request_id, event_type
        assert metadata["causation_id"] == str(scheduled_event[0]), event_type
    # Every event of the mailing's messages (due, delivered, failed) carries a correlation id.
    with psycopg.connect(system.env.database_url) as conn:
        untraced = conn.execute(
            "SELECT type FROM events WHERE (data->>'mailing_id')::bigint = %s"
            " AND NOT metadata ? 'correlation_id'",
            (mailing_id,),
        ).fetchall()
    assert untraced == []
