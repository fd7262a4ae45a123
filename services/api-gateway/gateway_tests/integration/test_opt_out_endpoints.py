"""The suppression list over HTTP: record, list, get, remove, bulk import and the provider's
inbound stop words; every change one versioned event; bad input 400 naming the field; the
forecast counts opted-out recipients apart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app
from sms_events.contracts import OptOutRecorded, OptOutRemoved, OptOutsImported
from sms_events.store import EventStore

INBOUND_TOKEN = f"inbound-{uuid4().hex}"


async def _events(store: EventStore, pool: asyncpg.Pool, phone: str) -> list[tuple[str, int]]:
    rows = await pool.fetch(
        "SELECT type, stream_version FROM events WHERE stream_id = $1 ORDER BY global_position",
        f"opt_out-{phone}",
    )
    return [(r["type"], r["stream_version"]) for r in rows]


async def test_record_get_list_remove_and_record_again(
    client: httpx.AsyncClient, store: EventStore, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    p = phone()
    created = await client.post("/api/v1/opt-outs/", json={"phone": f"+{p}", "reason": " rude "})
    assert created.status_code == 201, created.text
    assert created.json()["phone"] == p
    assert created.json()["reason"] == "rude"
    assert created.json()["source"] == "api"

    again = await client.post("/api/v1/opt-outs/", json={"phone": p, "reason": "other"})
    assert again.status_code == 200
    assert again.json()["reason"] == "rude"  # left as it was, no new event

    got = await client.get(f"/api/v1/opt-outs/{p}/")
    assert got.status_code == 200 and got.json() == created.json()
    listed = await client.get("/api/v1/opt-outs/", params={"source": "api", "page_size": 1000})
    assert p in [r["phone"] for r in listed.json()["results"]]

    assert (await client.delete(f"/api/v1/opt-outs/{p}/")).status_code == 204
    assert (await client.get(f"/api/v1/opt-outs/{p}/")).status_code == 404
    assert (await client.delete(f"/api/v1/opt-outs/{p}/")).status_code == 404

    assert (await client.post("/api/v1/opt-outs/", json={"phone": p})).status_code == 201
    assert await _events(store, pool, p) == [
        (OptOutRecorded.event_type, 1),
        (OptOutRemoved.event_type, 2),
        (OptOutRecorded.event_type, 3),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "phone"),
        ({"phone": "12345"}, "phone"),
        ({"phone": True}, "phone"),
        ({"phone": "79990000000", "reason": "x" * 201}, "reason"),
        ({"phone": "79990000000", "reason": 5}, "reason"),
        ([1, 2], "non_field_errors"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(
    client: httpx.AsyncClient, body: object, field: str
) -> None:
    answer = await client.post("/api/v1/opt-outs/", json=body)
    assert answer.status_code == 400
    assert field in answer.json()


async def test_unknown_phones_and_pages_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/opt-outs/not-a-phone/")).status_code == 404
    assert (await client.delete("/api/v1/opt-outs/70000000000/")).status_code == 404
    assert (await client.get("/api/v1/opt-outs/", params={"page": 99999})).status_code == 404
    assert (await client.get("/api/v1/opt-outs/", params={"source": "x"})).status_code == 400


async def test_import_appends_batch_events_and_is_idempotent(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    phones = [phone() for _ in range(3)]
    already = phones[0]
    await client.post("/api/v1/opt-outs/", json={"phone": already})
    body = "phone,reason\n" + "\n".join(f"{p},complaint" for p in phones) + "\nnope,\n"
    answer = await client.post(
        "/api/v1/opt-outs/import", content=body, headers={"Content-Type": "text/csv"}
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["created"], result["unchanged"], result["rejected"]) == (2, 1, 1)
    assert result["errors"][0]["line"] == 5 and "phone" in result["errors"][0]["errors"]
    rows = await pool.fetch(
        "SELECT data FROM events WHERE type = $1 AND data::text LIKE $2",
        OptOutsImported.event_type,
        f"%{phones[1]}%",
    )
    assert len(rows) == 1
    again = await client.post(
        "/api/v1/opt-outs/import", content=body, headers={"Content-Type": "text/csv"}
    )
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 3)
    source = await pool.fetchval("SELECT source FROM gateway_opt_outs WHERE phone = $1", phones[2])
    assert source == "import"


READER = "reader:read:" + "r" * 40
WRITER = "crm:clients:write:" + "w" * 40


async def test_scopes_read_may_list_but_not_write(
    make_settings: Callable[..., Settings], anonymous: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    assert (await anonymous.get("/api/v1/opt-outs/")).status_code == 401
    scoped = create_app(make_settings(api_keys=[READER, WRITER]))
    body = {"phone": phone()}
    async with scoped.router.lifespan_context(scoped):

        def as_(key: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                transport=httpx.ASGITransport(app=scoped),
                base_url="http://testserver",
                headers={"Authorization": f"Bearer {key.rpartition(':')[2]}"},
            )

        async with as_(READER) as reader, as_(WRITER) as writer:
            assert (await reader.get("/api/v1/opt-outs/")).status_code == 200
            refused = await reader.post("/api/v1/opt-outs/", json=body)
            assert refused.status_code == 403 and "clients:write" in refused.json()["detail"]
            assert (await writer.post("/api/v1/opt-outs/", json=body)).status_code == 201
            gone = await reader.delete(f"/api/v1/opt-outs/{body['phone']}/")
            assert gone.status_code == 403


@pytest.fixture(scope="module")
async def inbound_app(make_settings: Callable[..., Settings]) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(inbound_token=INBOUND_TOKEN, opt_out_stop_words="STOP,СТОП"))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def provider(inbound_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=inbound_app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {INBOUND_TOKEN}"},
    ) as c:
        yield c


async def test_inbound_stop_word_opts_out_and_other_text_does_not(
    provider: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    stopper, chatter = phone(), phone()
    at = "2026-12-03T10:00:00Z"
    answer = await provider.post(
        "/api/v1/inbound/", json={"phone": int(stopper), "text": " Стоп! ", "received_at": at}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"opted_out": True, "stop_word": "стоп"}
    row = await pool.fetchrow("SELECT source, reason FROM gateway_opt_outs WHERE phone = $1",
                              stopper)  # fmt: skip
    assert row is not None and (row["source"], row["reason"]) == ("inbound", "Стоп!")

    other = await provider.post("/api/v1/inbound/", json={"phone": int(chatter), "text": "stop it"})
    assert other.json() == {"opted_out": False, "stop_word": None}
    assert await pool.fetchval("SELECT 1 FROM gateway_opt_outs WHERE phone = $1", chatter) is None


async def test_inbound_needs_its_token_and_a_valid_body(
    inbound_app: FastAPI, provider: httpx.AsyncClient, app: FastAPI
) -> None:
    body = {"phone": 79990000001, "text": "STOP"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=inbound_app), base_url="http://testserver"
    ) as stranger:
        assert (await stranger.post("/api/v1/inbound/", json=body)).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await stranger.post("/api/v1/inbound/", json=body, headers=wrong)).status_code \
            == 401  # fmt: skip
    # No INBOUND_TOKEN configured: closed.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {INBOUND_TOKEN}"},
    ) as unconfigured:
        assert (await unconfigured.post("/api/v1/inbound/", json=body)).status_code == 401
    for bad, field in (
        ({"phone": "79990000001", "text": "STOP"}, "phone"),
        ({"phone": 79990000001}, "text"),
        ({"phone": 79990000001, "text": "STOP", "received_at": "yesterday"}, "received_at"),
    ):
        answer = await provider.post("/api/v1/inbound/", json=bad)
        assert answer.status_code == 400 and field in answer.json(), answer.text


async def test_forecast_counts_opted_out_recipients_apart(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    tag = f"oo{uuid4().hex[:8]}"
    phones = [phone() for _ in range(3)]
    for p in phones:
        assert (await client.post("/api/v1/clients/", json={"phone": p, "tag": tag})).is_success
    await client.post("/api/v1/opt-outs/", json={"phone": phones[0]})
    body = {
        "text": "hello",
        "datetime_start": "2030-01-01T10:00:00Z",
        "datetime_end": "2030-01-02T10:00:00Z",
        "client_filter": tag,
    }
    answer = await client.post("/api/v1/mailings/preview/", json=body)
    assert answer.status_code == 200, answer.text
    audience = answer.json()["audience"]
    assert (audience["total"], audience["opted_out"]) == (2, 1)
    assert audience["by_tag"] == [{"tag": tag, "count": 2}]
