"""Each client change is an event on client-<id>, written in one transaction with the read
model; version = stream version; the request id travels as the correlation id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from uuid import uuid4

import asyncpg
import httpx

from gateway.clients import repository
from sms_events.contracts import ClientCreated, ClientDeleted, ClientUpdated
from sms_events.store import EventStore


async def _version(pool: asyncpg.Pool, client_id: int) -> int | None:
    value = await pool.fetchval("SELECT version FROM gateway_clients WHERE id = $1", client_id)
    return int(value) if value is not None else None


async def versions_in_reader_order(pool: asyncpg.Pool, stream: str) -> list[int]:
    """The stream's versions in the order a reader of all events (the relay) sees them."""
    rows = await pool.fetch(
        "SELECT stream_version FROM events WHERE stream_id = $1"
        " ORDER BY transaction_id, global_position",
        stream,
    )
    return [r["stream_version"] for r in rows]


async def test_create_update_delete_append_events_with_correlation_id(
    client: httpx.AsyncClient, store: EventStore, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    request_ids = [f"req-{uuid4().hex}" for _ in range(3)]
    created = await client.post(
        "/api/v1/clients/",
        json={"phone": phone(), "tag": "a"},
        headers={"X-Request-ID": request_ids[0]},
    )
    assert created.headers["X-Request-ID"] == request_ids[0]
    body = created.json()
    cid = body["id"]
    assert await _version(pool, cid) == 1

    await client.patch(
        f"/api/v1/clients/{cid}/", json={"tag": "b"}, headers={"X-Request-ID": request_ids[1]}
    )
    assert await _version(pool, cid) == 2
    await client.delete(f"/api/v1/clients/{cid}/", headers={"X-Request-ID": request_ids[2]})
    assert await _version(pool, cid) is None

    events = await store.read_stream(f"client-{cid}")
    assert [(e.type, e.stream_version) for e in events] == [
        ("client.created", 1),
        ("client.updated", 2),
        ("client.deleted", 3),
    ]
    assert [e.metadata["correlation_id"] for e in events] == request_ids
    first, second, third = (e.payload() for e in events)
    assert isinstance(first, ClientCreated)
    assert (first.client_id, first.phone, first.tag, first.time_zone) == (
        cid, body["phone"], "a", "UTC"
    )  # fmt: skip
    assert first.operator_code == body["phone"][1:4]
    assert isinstance(second, ClientUpdated)
    assert second.tag == "b"
    assert isinstance(third, ClientDeleted)
    assert third.client_id == cid


async def test_request_id_is_generated_when_absent_or_unsafe(
    client: httpx.AsyncClient, store: EventStore, phone: Callable[..., str]
) -> None:
    response = await client.post(
        "/api/v1/clients/", json={"phone": phone()}, headers={"X-Request-ID": "bad id\twith\tjunk"}
    )
    generated = response.headers["X-Request-ID"]
    assert generated and "junk" not in generated
    (event,) = await store.read_stream(f"client-{response.json()['id']}")
    assert event.metadata["correlation_id"] == generated


async def test_a_change_to_nothing_appends_no_event(
    client: httpx.AsyncClient, store: EventStore, phone: Callable[..., str]
) -> None:
    number = phone()
    body = (await client.post("/api/v1/clients/", json={"phone": number, "tag": "x"})).json()
    url = f"/api/v1/clients/{body['id']}/"
    for change in ({}, {"tag": "x"}, {"phone": f"+{number}", "time_zone": "UTC"}):
        response = await client.patch(url, json=change)
        assert response.status_code == 200
        assert response.json() == body  # updated_at untouched too
    assert (await client.put(url, json={"phone": number})).json() == body
    assert len(await store.read_stream(f"client-{body['id']}")) == 1


async def test_read_model_and_events_commit_together(
    client: httpx.AsyncClient, store: EventStore, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    body = (await client.post("/api/v1/clients/", json={"phone": phone(), "tag": "old"})).json()
    stream = f"client-{body['id']}"
    # Someone else appends to the stream behind the read model's back: the gateway's append at
    # the version it read now fails, and its read-model write must roll back with it.
    await store.append(
        stream,
        [ClientUpdated(client_id=body["id"], phone=body["phone"], operator_code="000",
                       tag="foreign", time_zone="UTC", updated_at=body["updated_at"])],
    )  # fmt: skip
    response = await client.patch(f"/api/v1/clients/{body['id']}/", json={"tag": "new"})
    assert response.status_code == 409
    assert "retry" in response.json()["detail"]
    row = await pool.fetchrow("SELECT tag, version FROM gateway_clients WHERE id = $1", body["id"])
    assert row is not None
    assert (row["tag"], row["version"]) == ("old", 1)
    assert len(await store.read_stream(stream)) == 2


async def test_concurrent_patches_serialise_without_errors(
    client: httpx.AsyncClient, store: EventStore, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    body = (await client.post("/api/v1/clients/", json={"phone": phone()})).json()
    url = f"/api/v1/clients/{body['id']}/"
    responses = await asyncio.gather(
        *(client.patch(url, json={"tag": f"tag{i}"}) for i in range(15))
    )
    assert [r.status_code for r in responses] == [200] * 15
    events = await store.read_stream(f"client-{body['id']}")
    assert [e.stream_version for e in events] == list(range(1, 17))
    # Readers that go by transaction id see the versions in order too.
    assert await versions_in_reader_order(pool, f"client-{body['id']}") == list(range(1, 17))
    assert await _version(pool, body["id"]) == 16
    final = (await client.get(url)).json()
    assert final["tag"] == events[-1].data["tag"]


async def test_concurrent_creates_of_one_phone_make_one_client(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    number = phone()
    responses = await asyncio.gather(
        *(client.post("/api/v1/clients/", json={"phone": number}) for _ in range(8))
    )
    assert sorted(r.status_code for r in responses) == [201] + [400] * 7
    assert await pool.fetchval("SELECT count(*) FROM gateway_clients WHERE phone = $1", number) == 1
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM events WHERE type = 'client.created' AND data->>'phone' = $1",
            number,
        )
        == 1
    )


async def test_a_transaction_sees_writes_of_younger_transactions(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    body = (await client.post("/api/v1/clients/", json={"phone": phone()})).json()
    other = (await client.post("/api/v1/clients/", json={"phone": phone()})).json()
    async with pool.acquire() as conn, conn.transaction():
        await conn.fetchval("SELECT pg_current_xact_id()")  # this transaction now has its id
        assert not await repository.written_after_us(conn, [body["id"], other["id"]])
        # A younger transaction appends to one stream and commits meanwhile.
        assert (await client.patch(f"/api/v1/clients/{body['id']}/", json={"tag": "x"})).is_success
        assert await repository.written_after_us(conn, [body["id"]])
        assert not await repository.written_after_us(conn, [other["id"], 0])
        # A younger import changes the other one (in a batch event, not on its stream).
        imported = await client.post(
            "/api/v1/clients/import",
            content=f"{other['phone']},y\n".encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert imported.json()["updated"] == 1
        assert await repository.written_after_us(conn, [other["id"]])
        assert not await repository.written_after_us(conn, [0])
