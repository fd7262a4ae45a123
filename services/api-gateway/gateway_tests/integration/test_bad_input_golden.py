"""Golden answers to bad requests on every write endpoint: the exact status and JSON body, as
the old Django REST framework API gave them (each bad field with its messages, or ``detail``).

Recorded from the gateway before its request bodies were validated by pydantic models; the
table is literal on purpose (no message constants imported from the gateway), so that a change
of wording, of status or of shape fails here whatever the code it moved to.

The table is ``bad_input_golden.json``: per case a method, a path, a body (JSON, or ``raw:``
text or ``hex:`` bytes sent as application/json), and the answer. ``<+2h>`` in a body is a time
two hours from now; ``{client}``, ``{taken}`` (a phone in use), ``{mailing}`` (to come),
``{started}`` and ``{cancelled}`` are made by the ``ids`` fixture. Every case stores nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app

from .gateway_support import API_KEY, BASE_URL, Snapshot, new_phone

INBOUND_TOKEN = f"inbound-{uuid4().hex}"
GOLDEN = Path(__file__).with_name("bad_input_golden.json")
RAW, HEX = "raw:", "hex:"  # a body given as text or as hex bytes rather than as JSON


def _moment(token: str) -> str:
    """``<+2h>`` -> an ISO 8601 UTC time two hours from now (``<-1h>``: an hour ago)."""
    hours = int(token[1:-2])
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def _fill(value: Any, ids: dict[str, str]) -> Any:
    """The placeholders of a case filled in: times relative to now, ids, a taken phone."""
    if isinstance(value, str):
        if value.startswith("<") and value.endswith("h>"):
            return _moment(value)
        for name, real in ids.items():
            value = value.replace(f"{{{name}}}", real)
        return value
    if isinstance(value, list):
        return [_fill(item, ids) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, ids) for key, item in value.items()}
    return value


CASES: list[dict[str, Any]] = json.loads(GOLDEN.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
async def golden_app(make_settings: Callable[..., Settings]) -> AsyncIterator[FastAPI]:
    """One app with a segment cap and an inbound token, so every write endpoint answers."""
    app = create_app(make_settings(mailing_max_segments=2, inbound_token=INBOUND_TOKEN))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def golden(golden_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=golden_app), base_url=BASE_URL
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def ids(golden_app: FastAPI) -> dict[str, str]:
    """A client, a taken phone, a mailing to come, one started and one cancelled."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=golden_app),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        taken = new_phone()
        assert (await client.post("/api/v1/clients/", json={"phone": taken})).status_code == 201
        mine = await client.post("/api/v1/clients/", json={"phone": new_phone()})
        found = {"client": str(mine.json()["id"]), "taken": taken}
        for name, start in (("mailing", "<+1h>"), ("started", "<-1h>"), ("cancelled", "<+1h>")):
            body = _fill({"datetime_start": start, "datetime_end": "<+3h>", "text": "Hi"}, {})
            created = await client.post("/api/v1/mailings/", json=body)
            assert created.status_code == 201, created.text
            found[name] = str(created.json()["id"])
        cancel = await client.post(f"/api/v1/mailings/{found['cancelled']}/cancel/")
        assert cancel.status_code == 200, cancel.text
    return found


async def _answer(
    client: httpx.AsyncClient, case: dict[str, Any], ids: dict[str, str]
) -> httpx.Response:
    path = _fill(case["path"], ids)
    token = INBOUND_TOKEN if path.startswith("/api/v1/inbound") else API_KEY
    headers = {"Authorization": f"Bearer {token}", **case.get("headers", {})}
    body = case["body"]
    if isinstance(body, str) and body.startswith((RAW, HEX)):
        raw = body[4:].encode() if body.startswith(RAW) else bytes.fromhex(body[4:])
        headers.setdefault("Content-Type", "application/json")
        return await client.request(case["method"], path, content=raw, headers=headers)
    return await client.request(case["method"], path, json=_fill(body, ids), headers=headers)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
async def test_a_bad_request_gets_its_golden_answer(
    golden: httpx.AsyncClient,
    ids: dict[str, str],
    unchanged: Callable[[], Snapshot],
    case: dict[str, Any],
) -> None:
    async with unchanged():
        response = await _answer(golden, case, ids)
    assert (response.status_code, response.json()) == (case["status"], case["answer"])
