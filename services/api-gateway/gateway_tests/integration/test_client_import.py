"""Bulk import: streamed CSV and NDJSON, row-by-row validation, batched upserts with batch
events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from gateway.clients.importer import EVENT_SIZE, ImportFormat, import_clients
from gateway.clients.rules import PHONE_MESSAGE, TIME_ZONE_MESSAGE
from sms_events.contracts import ClientDeleted
from sms_events.store import EventStore, NewEvent, appending

from .client_history_support import (
    IMPORTED_CREATED,
    IMPORTED_UPDATED,
    Change,
    history,
    imported_since,
    last_position,
)

CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}
URL = "/api/v1/clients/import"


def _tag() -> str:
    return f"i{uuid4().hex[:12]}"


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _client(pool: asyncpg.Pool, number: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT id, phone, tag, time_zone, version FROM gateway_clients WHERE phone = $1", number
    )
    return dict(row) if row else None


async def test_imports_100k_rows_in_seconds_and_reports_bad_lines(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    tag = _tag()
    bad = {1234: "12345", 50_000: "79990000000,way-too-long-a-tag-here", 99_999: "7999,,Moon/Base"}
    lines = [bad.get(n) or f"{phone('811')},{tag},Europe/Moscow" for n in range(1, 100_001)]
    body = ("\n".join(lines) + "\n").encode()
    position = await last_position(pool)

    started = time.perf_counter()
    response = await client.post(URL, content=_chunks(body, 64 * 1024), headers=CSV, timeout=300)
    seconds = time.perf_counter() - started
    print(f"\n100k-row CSV import: {seconds:.2f} s ({len(body) / 1e6:.1f} MB)")

    assert response.status_code == 200
    result = response.json()
    assert result["created"] == 99_997
    assert (result["updated"], result["unchanged"], result["rejected"]) == (0, 0, 3)
    assert result["errors"] == [
        {"line": 1234, "errors": {"phone": [PHONE_MESSAGE]}},
        {"line": 50_000, "errors": {"tag": ["Ensure this field has no more than 20 characters."]}},
        {"line": 99_999, "errors": {"phone": [PHONE_MESSAGE], "time_zone": [TIME_ZONE_MESSAGE]}},
    ]
    assert await pool.fetchval("SELECT count(*) FROM gateway_clients WHERE tag = $1", tag) == 99_997
    # 200 batch events (20 transactions of 5,000 rows or fewer, 500 clients per event), and no
    # other event: not one per client.
    n = await pool.fetchval("SELECT count(*) FROM events WHERE global_position > $1", position)
    assert n == 200
    batches = await imported_since(pool, position)
    assert len(batches) == 200
    assert {len(b) for b in batches} == {EVENT_SIZE, 4997 % EVENT_SIZE}
    # Every imported client's row and item agree.
    mismatched = await pool.fetchval(
        """
        SELECT count(*) FROM gateway_clients g
        FULL JOIN (SELECT (c->>'client_id')::bigint AS id, c
                     FROM events e CROSS JOIN jsonb_array_elements(e.data->'clients') c
                    WHERE e.global_position > $2) i ON i.id = g.id
        WHERE (g.tag = $1 OR i.id IS NOT NULL)
          AND (i.c IS NULL OR g.id IS NULL OR (i.c->>'version')::int <> 1
               OR NOT (i.c->>'created')::boolean OR g.version <> 1
               OR (i.c->>'phone', i.c->>'operator_code', i.c->>'tag', i.c->>'time_zone')
                  IS DISTINCT FROM (g.phone, g.operator_code, g.tag, g.time_zone))
        """,
        tag,
        position,
    )
    assert mismatched == 0
    assert seconds < 60, f"100k rows took {seconds:.1f} s"


async def test_csv_with_header_in_any_column_order(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    a, b, c = phone(), phone(), phone()
    body = (
        "\ufefftime_zone,Phone,tag,extra\r\n"
        f"Asia/Omsk,+{a},vip,ignored\r\n"
        "\r\n"
        f',{b},"quoted, tag",x\r\n'
        f"Europe/Moscow,{c}\r\n"
    ).encode()
    response = await client.post(
        URL, content=body, headers={"Content-Type": "text/csv; charset=utf-8"}
    )
    assert response.json() == {
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "errors": [],
    }
    assert (await _client(pool, a) or {}).items() >= {
        "tag": "vip",
        "time_zone": "Asia/Omsk",
    }.items()
    assert (await _client(pool, b) or {}).items() >= {
        "tag": "quoted, tag",
        "time_zone": "UTC",
    }.items()
    assert (await _client(pool, c) or {}).items() >= {
        "tag": None,
        "time_zone": "Europe/Moscow",
    }.items()


async def test_ndjson_with_bad_lines(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    a, b = phone(), phone()
    body = "\n".join(
        [
            json.dumps({"phone": a, "tag": "n", "time_zone": "Asia/Tokyo", "unknown": 1}),
            "{not json",
            json.dumps([a]),
            "",
            json.dumps({"phone": int(b)}),
            json.dumps({"tag": "no phone"}),
        ]
    ).encode()
    response = await client.post(URL, content=body, headers=NDJSON)
    result = response.json()
    assert (result["created"], result["rejected"]) == (2, 3)
    assert [e["line"] for e in result["errors"]] == [2, 3, 6]
    assert result["errors"][0]["errors"]["non_field_errors"][0].startswith("JSON parse error - ")
    assert result["errors"][2]["errors"] == {"phone": ["This field is required."]}
    assert (await _client(pool, a) or {})["time_zone"] == "Asia/Tokyo"
    assert (await _client(pool, b) or {})["tag"] is None


async def test_existing_phones_are_updated_and_unchanged_rows_skipped(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    same, changed, kept = phone(), phone(), phone()
    for number in (same, changed, kept):
        await client.post(
            "/api/v1/clients/", json={"phone": number, "tag": "t", "time_zone": "Asia/Omsk"}
        )
    new = phone()
    body = (
        f"phone,tag,time_zone\n{same},t,Asia/Omsk\n{changed},t2,\n{kept},t,\n{new},,\n"
    ).encode()
    result = (await client.post(URL, content=body, headers=CSV)).json()
    assert (result["created"], result["updated"], result["unchanged"]) == (1, 1, 2)

    row = await _client(pool, changed) or {}
    assert (row["tag"], row["time_zone"], row["version"]) == ("t2", "Asia/Omsk", 2)
    assert await history(pool, row["id"]) == [
        Change(1, "client.created", "t", "Asia/Omsk"),
        Change(2, IMPORTED_UPDATED, "t2", "Asia/Omsk"),
    ]
    assert (await _client(pool, same) or {})["version"] == 1
    assert (await _client(pool, kept) or {})["version"] == 1

    # The same file again changes nothing at all.
    again = (await client.post(URL, content=body, headers=CSV)).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 4)


async def test_columns_a_file_leaves_out_keep_their_values(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    number = phone()
    await client.post(
        "/api/v1/clients/", json={"phone": number, "tag": "t", "time_zone": "Asia/Omsk"}
    )
    await client.post(URL, content=f"phone\n{number}\n".encode(), headers=CSV)
    await client.post(URL, content=json.dumps({"phone": number}).encode(), headers=NDJSON)
    row = await _client(pool, number) or {}
    assert (row["tag"], row["time_zone"], row["version"]) == ("t", "Asia/Omsk", 1)
    await client.post(
        URL, content=json.dumps({"phone": number, "tag": None}).encode(), headers=NDJSON
    )
    assert (await _client(pool, number) or {})["tag"] is None


async def test_a_phone_repeated_in_one_file_behaves_like_sequential_rows(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    number, other = phone(), phone()
    body = (
        f"{number},first,UTC\n{other},x\n{number},second\n{number},second\n{number},third,Asia/Omsk\n"
    ).encode()
    result = (await client.post(URL, content=body, headers=CSV)).json()
    assert (result["created"], result["updated"], result["unchanged"]) == (2, 2, 1)
    row = await _client(pool, number) or {}
    assert (row["tag"], row["time_zone"], row["version"]) == ("third", "Asia/Omsk", 3)
    assert await history(pool, row["id"]) == [
        Change(1, IMPORTED_CREATED, "first", "UTC"),
        Change(2, IMPORTED_UPDATED, "second", "UTC"),
        Change(3, IMPORTED_UPDATED, "third", "Asia/Omsk"),
    ]


async def test_import_streams_and_commits_batch_by_batch(
    pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    tag = _tag()
    seen_mid_stream: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for n in range(30):
            if n == 20:  # 2,000 rows sent so far, in batches of 500
                seen_mid_stream.append(
                    await pool.fetchval("SELECT count(*) FROM gateway_clients WHERE tag = $1", tag)
                )
            yield "".join(f"{phone()},{tag}\n" for _ in range(100)).encode()

    result = await import_clients(pool, body(), ImportFormat.CSV, batch_size=500)
    assert result.created == 3000
    # Rows were committed while the body was still arriving: nothing waited for the end. (The
    # fourth batch may still be committing while the fifth is parsed.)
    assert seen_mid_stream[0] in (1500, 2000)


async def test_errors_list_is_capped_but_counting_goes_on(pool: asyncpg.Pool) -> None:
    body = b"bad\n" * 1500

    async def one_chunk() -> AsyncIterator[bytes]:
        yield body

    result = await import_clients(pool, one_chunk(), ImportFormat.CSV)
    assert result.rejected == 1500
    assert len(result.errors) == 1000
    assert result.errors[-1]["line"] == 1000


async def test_overlong_lines_are_rejected_not_buffered(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    number = phone()
    body = b"x" * 200_000 + f"\n{number}\n".encode() + b"y" * 100_000
    result = (await client.post(URL, content=_chunks(body, 8192), headers=CSV)).json()
    assert (result["created"], result["rejected"]) == (1, 2)
    assert [e["line"] for e in result["errors"]] == [1, 3]
    assert "longer than" in result["errors"][0]["errors"]["non_field_errors"][0]


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "text/plain", "multipart/form-data; boundary=x",
                     "text/csv; charset=windows-1251"]
)  # fmt: skip
async def test_unsupported_content_type_is_415(
    client: httpx.AsyncClient, unchanged: Callable[[], Any], content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    async with unchanged():
        response = await client.post(URL, content=b"79991234567\n", headers=headers)
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "text/csv" in detail or "UTF-8" in detail


async def test_import_path_with_trailing_slash(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    response = await client.post(URL + "/", content=f"{phone()}\n".encode(), headers=CSV)
    assert response.json()["created"] == 1


async def test_empty_body_imports_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b"", headers=NDJSON)
    assert response.json() == {
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "errors": [],
    }


async def test_imports_and_patches_racing_on_one_client_stay_consistent(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    number = phone()
    cid = (await client.post("/api/v1/clients/", json={"phone": number})).json()["id"]
    imports = [
        client.post(URL, content=f"{number},imp{i}\n".encode(), headers=CSV) for i in range(8)
    ]
    zones = ("Asia/Omsk", "Asia/Tokyo", "Europe/Paris", "UTC")
    patches = [
        client.patch(f"/api/v1/clients/{cid}/", json={"time_zone": zones[i % 4]}) for i in range(8)
    ]
    responses = await asyncio.gather(*imports, *patches)
    assert all(r.status_code == 200 for r in responses)

    row = await _client(pool, number) or {}
    # Every version once, on the client's stream (patches) or in a batch (imports), and a reader
    # going by transaction id (the relay) sees them in version order.
    changes = await history(pool, cid)
    assert [c.version for c in changes] == list(range(1, row["version"] + 1))
    assert {c.kind for c in changes} == {"client.created", "client.updated", IMPORTED_UPDATED}
    assert (changes[-1].tag, changes[-1].time_zone) == (row["tag"], row["time_zone"])


async def test_clients_travel_in_batch_events_of_bounded_size(
    pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    tag = _tag()
    position = await last_position(pool)

    async def body() -> AsyncIterator[bytes]:
        yield "".join(f"{phone()},{tag}\n" for _ in range(2300)).encode()

    result = await import_clients(pool, body(), ImportFormat.CSV, batch_size=2000)
    assert result.created == 2300
    # One transaction of 2,000 rows (four events of 500), then one of 300 (one event).
    assert [len(b) for b in await imported_since(pool, position)] == [500, 500, 500, 500, 300]
    streams = await pool.fetch(
        "SELECT stream_id, stream_version FROM events WHERE global_position > $1", position
    )
    assert all(r["stream_id"].startswith("import-") for r in streams)
    assert all(r["stream_version"] == 1 for r in streams)
    assert len({r["stream_id"] for r in streams}) == 5


async def test_commands_on_an_imported_client_go_on_from_its_version(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    number = phone()
    await client.post(URL, content=f"{number},a\n".encode(), headers=CSV)
    cid = (await _client(pool, number) or {})["id"]
    assert (
        await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", f"client-{cid}")
        == 0
    )

    # Its stream is empty, yet the PATCH appends version 2: the read model's version goes on.
    patched = await client.patch(f"/api/v1/clients/{cid}/", json={"tag": "b"})
    assert patched.status_code == 200
    await client.post(URL, content=f"{number},c,Asia/Tokyo\n".encode(), headers=CSV)
    assert (await client.delete(f"/api/v1/clients/{cid}/")).status_code == 204
    assert await history(pool, cid) == [
        Change(1, IMPORTED_CREATED, "a", "UTC"),
        Change(2, "client.updated", "b", "UTC"),
        Change(3, IMPORTED_UPDATED, "c", "Asia/Tokyo"),
        Change(4, "client.deleted", None, None),
    ]


async def test_a_version_taken_behind_the_read_models_back_fails_the_command(
    client: httpx.AsyncClient, pool: asyncpg.Pool, store: EventStore, phone: Callable[..., str]
) -> None:
    number = phone()
    await client.post(URL, content=f"{number},a\n".encode(), headers=CSV)
    row = await _client(pool, number) or {}
    # The client's stream has no event, yet version 2 is taken: the command must not reuse it.
    foreign = ClientDeleted(client_id=row["id"], deleted_at=datetime.now(UTC))
    async with pool.acquire() as conn, appending(conn):
        await store.append_versioned([(foreign.stream_id(), 2, NewEvent(foreign))], conn=conn)
    response = await client.patch(f"/api/v1/clients/{row['id']}/", json={"tag": "b"})
    assert response.status_code == 409
    after = await _client(pool, number) or {}
    assert (after["tag"], after["version"]) == ("a", 1)


async def test_a_deleted_clients_phone_imported_again_is_a_new_client(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    number = phone()
    old = (await client.post("/api/v1/clients/", json={"phone": number, "tag": "x"})).json()["id"]
    assert (await client.delete(f"/api/v1/clients/{old}/")).status_code == 204
    result = (await client.post(URL, content=f"{number},y\n".encode(), headers=CSV)).json()
    assert (result["created"], result["updated"]) == (1, 0)
    new = (await _client(pool, number) or {})["id"]
    assert new != old  # ids are never reused: the old client's deletion stays final
    assert await history(pool, new) == [Change(1, IMPORTED_CREATED, "y", "UTC")]
    assert [c.kind for c in await history(pool, old)] == ["client.created", "client.deleted"]
