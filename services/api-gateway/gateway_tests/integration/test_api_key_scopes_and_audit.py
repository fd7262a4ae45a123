"""Named API keys with scopes: 403 naming the missing scope and storing nothing; the events of
every command carry the key's name as their actor; /api/v1/audit/ (admin) lists who did what."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app

from .mailing_support import URL, body

KEYS = {name: f"{name}-{secrets.token_hex(20)}" for name in ("viewer", "crm", "ops", "old")}
CONFIGURED = [
    f"viewer:read:{KEYS['viewer']}",
    f"crm:read+clients:write:{KEYS['crm']}",
    f"ops:admin:{KEYS['ops']}",
    KEYS["old"],  # a bare key: every scope but admin, named by its place in the list
]
BASE = "http://testserver"


@pytest.fixture(scope="module")
async def scoped_app(make_settings: Callable[..., Settings]) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(api_keys=CONFIGURED))
    async with app.router.lifespan_context(app):
        yield app


def _as(app: FastAPI, name: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE,
        headers={"Authorization": f"Bearer {KEYS[name]}"},
    )


async def test_a_key_without_the_scope_gets_403_naming_it_and_nothing_is_stored(
    scoped_app: FastAPI, phone: Callable[..., str], unchanged: Callable[[], object]
) -> None:
    async with _as(scoped_app, "viewer") as viewer, _as(scoped_app, "crm") as crm:
        assert (await viewer.get("/api/v1/clients/")).status_code == 200
        async with unchanged():  # type: ignore[attr-defined]
            refused = await viewer.post("/api/v1/clients/", json={"phone": phone(), "tag": "t"})
            assert refused.status_code == 403
            assert refused.json() == {"detail": "The API key 'viewer' lacks the scope "
                                                "'clients:write'."}  # fmt: skip
            refused = await crm.post(URL, json=body())
            assert refused.status_code == 403 and "'mailings:write'" in refused.json()["detail"]
            assert (await crm.get("/api/v1/audit/")).status_code == 403
        assert (await crm.post("/api/v1/clients/", json={"phone": phone(), "tag": "t"})).is_success


async def test_each_command_records_its_actor_and_the_audit_trail_lists_it(
    scoped_app: FastAPI, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    async with _as(scoped_app, "crm") as crm, _as(scoped_app, "old") as old:
        created = await crm.post("/api/v1/clients/", json={"phone": phone(), "tag": "t"},
                                 headers={"X-Request-ID": (request_id := uuid4().hex)})  # fmt: skip
        client_id = created.json()["id"]
        mailing = await old.post(URL, json=body())
        assert mailing.status_code == 201
        mailing_id = mailing.json()["id"]
    metadata = await pool.fetchval(
        "SELECT metadata FROM events WHERE stream_id = $1", f"client-{client_id}"
    )
    assert metadata["actor"] == {"type": "api_key", "id": "crm"}
    assert metadata["correlation_id"] == request_id

    async with _as(scoped_app, "ops") as ops:
        mine = (await ops.get("/api/v1/audit/", params={"client_id": client_id})).json()
        assert [(e["event"], e["actor"]["id"], e["request_id"]) for e in mine["results"]] == [
            ("client.created", "crm", request_id)
        ]
        theirs = (await ops.get("/api/v1/audit/", params={"mailing_id": mailing_id})).json()
        assert [(e["event"], e["actor"]) for e in theirs["results"]] == [
            ("mailing.scheduled", {"type": "api_key", "id": "key-4", "email": None})
        ]
        # Paged newest first by the `next` link, at any depth for the same cost.
        first = (await ops.get("/api/v1/audit/", params={"page_size": 1})).json()
        assert first["next"] is not None
        second = (await ops.get(first["next"])).json()
        assert second["results"][0]["position"] < first["results"][0]["position"]
        by_actor = (await ops.get("/api/v1/audit/", params={"actor": "crm"})).json()
        assert {e["actor"]["id"] for e in by_actor["results"]} == {"crm"}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"cursor": "nonsense"}, "cursor"), ({"since": "2024-01-01T00:00:00"}, "since"),
     ({"mailing_id": 1, "client_id": 1}, "client_id"), ({"page_size": 0}, "page_size")],
)  # fmt: skip
async def test_bad_audit_filters_are_400_naming_the_field(
    scoped_app: FastAPI, params: dict[str, object], field: str
) -> None:
    async with _as(scoped_app, "ops") as ops:
        answer = await ops.get("/api/v1/audit/", params=params)
    assert answer.status_code == 400 and field in answer.json()
