"""Idempotency-Key: a retried POST gets its first answer and changes nothing; another request
with the key is 422; a duplicate still running is 409; keys are private to an API key; errors
are not kept; and the answer commits with the command's writes or not at all."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app
from gateway.idempotency import Key, Once
from gateway.idempotency.rules import request_hash
from gateway.idempotency.store import prune_expired
from gateway.mailings import commands as mailing_commands
from gateway.mailings.repository import MailingRow
from gateway.responses import JSON
from sms_events.db import Connection

from .gateway_support import API_KEY, BASE_URL
from .mailing_support import URL, body, stream

OWNER = "api_key:key-1"  # conftest's bare API_KEY, first in the list
OTHER_KEY = f"other-{secrets.token_hex(20)}"
DAY = timedelta(hours=24)


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid4())}


async def _mailings_with(pool: asyncpg.Pool, text: str) -> list[int]:
    rows = await pool.fetch("SELECT id FROM gateway_mailings WHERE text = $1", text)
    return [r["id"] for r in rows]


async def _answers(pool: asyncpg.Pool, key: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM gateway_idempotency WHERE idem_key = $1", key)
    )


async def test_a_retried_create_gets_the_first_answer_and_creates_one_mailing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    headers, text = _key(), f"once {uuid4()}"
    sent = body(text=text)
    first = await client.post(URL, json=sent, headers=headers)
    again = await client.post(URL.rstrip("/"), json=dict(reversed(sent.items())), headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.content == first.content
    assert again.headers["content-type"] == "application/json"
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    [mailing_id] = await _mailings_with(pool, text)
    assert [e["type"] for e in await stream(pool, mailing_id)] == ["mailing.scheduled"]


async def test_the_same_key_with_another_body_is_422_and_stores_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    headers, text = _key(), f"first {uuid4()}"
    assert (await client.post(URL, json=body(text=text), headers=headers)).status_code == 201
    other = f"second {uuid4()}"
    reused = await client.post(URL, json=body(text=other), headers=headers)
    assert reused.status_code == 422
    assert "Idempotency-Key was used with a different request" in reused.json()["detail"]
    assert await _mailings_with(pool, other) == []
    # Another endpoint is another request too.
    client_body = {"phone": "79000000000"}
    assert (
        await client.post("/api/v1/clients/", json=client_body, headers=headers)
    ).status_code == 422


async def test_concurrent_duplicates_create_one_mailing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    headers, text = _key(), f"race {uuid4()}"
    sent = body(text=text)
    answers = await asyncio.gather(
        *(client.post(URL, json=sent, headers=headers) for _ in range(4))
    )
    assert {a.status_code for a in answers} <= {201, 409}
    assert len({a.content for a in answers if a.status_code == 201}) == 1
    [mailing_id] = await _mailings_with(pool, text)
    assert len(await stream(pool, mailing_id)) == 1


async def test_a_duplicate_while_the_first_runs_is_409_with_retry_after(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    headers, text = _key(), f"busy {uuid4()}"
    async with pool.acquire() as conn, conn.transaction():
        # What the first request's transaction holds while it runs.
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2 || E'\\n' || $3))",
            0x67770003,
            OWNER,
            headers["Idempotency-Key"],
        )
        busy = await client.post(URL, json=body(text=text), headers=headers)
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
    assert await _mailings_with(pool, text) == []
    assert (await client.post(URL, json=body(text=text), headers=headers)).status_code == 201


async def test_a_refused_request_keeps_no_answer_and_may_be_retried_fixed(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    headers, text = _key(), f"fixed {uuid4()}"
    refused = await client.post(URL, json=body(text=text, datetime_end="soon"), headers=headers)
    assert refused.status_code == 400
    assert await _answers(pool, headers["Idempotency-Key"]) == 0
    assert (await client.post(URL, json=body(text=text), headers=headers)).status_code == 201
    assert await _answers(pool, headers["Idempotency-Key"]) == 1


@pytest.mark.parametrize("value", [b"", b"x" * 256, "naïve".encode()])
async def test_an_invalid_key_is_400_naming_the_header(
    client: httpx.AsyncClient, value: bytes
) -> None:
    answer = await client.post(URL, json=body(), headers={"Idempotency-Key": value})
    assert answer.status_code == 400
    assert "Idempotency-Key" in answer.json()["detail"]


@pytest.fixture(scope="module")
async def two_keys_app(make_settings: Callable[..., Settings]) -> AsyncIterator[FastAPI]:
    keys = [API_KEY, f"other:read+mailings:write+clients:write:{OTHER_KEY}"]
    app = create_app(make_settings(api_keys=keys))
    async with app.router.lifespan_context(app):
        yield app


async def test_keys_are_private_to_each_api_key(two_keys_app: FastAPI, pool: asyncpg.Pool) -> None:
    headers, text = _key(), f"mine {uuid4()}"

    def as_key(token: str) -> httpx.AsyncClient:
        auth = {"Authorization": f"Bearer {token}"}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=two_keys_app), base_url=BASE_URL, headers=auth
        )

    async with as_key(API_KEY) as mine, as_key(OTHER_KEY) as theirs:
        first = await mine.post(URL, json=body(text=text), headers=headers)
        same = await theirs.post(URL, json=body(text=text), headers=headers)
        other_body = await theirs.post(URL, json=body(text=f"theirs {uuid4()}"), headers=headers)
    assert (first.status_code, same.status_code) == (201, 201)
    assert "idempotent-replayed" not in same.headers  # not the other caller's answer
    assert first.json()["id"] != same.json()["id"]
    assert other_body.status_code == 422  # their key, their first request
    assert len(await _mailings_with(pool, text)) == 2


async def test_client_create_opt_out_and_cancel_replay_their_first_answer(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    number, headers = phone(), _key()
    created = await client.post("/api/v1/clients/", json={"phone": number}, headers=headers)
    replayed = await client.post("/api/v1/clients/", json={"phone": number}, headers=headers)
    assert (created.status_code, replayed.status_code) == (201, 201)  # not 400 "phone taken"
    assert replayed.content == created.content

    headers = _key()
    opted = [
        await client.post("/api/v1/opt-outs/", json={"phone": number}, headers=headers)
        for _ in range(2)
    ]
    assert [o.status_code for o in opted] == [201, 201]  # the first answer, not "already there"

    mailing = (await client.post(URL, json=body(text=f"cancel {uuid4()}"))).json()
    headers = _key()
    cancel = f"{URL}{mailing['id']}/cancel/"
    answers = [await client.post(cancel, headers=headers) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]  # a second cancel alone is 400
    assert answers[1].content == answers[0].content
    assert [e["type"] for e in await stream(pool, mailing["id"])][-1] == "mailing.cancelled"
    assert len(await stream(pool, mailing["id"])) == 2


async def test_the_forecast_checks_the_key_and_keeps_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    headers = _key()
    for _ in range(2):
        answer = await client.post(f"{URL}preview/", json=body(), headers=headers)
        assert answer.status_code == 200 and "idempotent-replayed" not in answer.headers
    assert await _answers(pool, headers["Idempotency-Key"]) == 0
    bad = await client.post(f"{URL}preview/", json=body(), headers={"Idempotency-Key": ""})
    assert bad.status_code == 400


# --- the answer commits with the command --------------------------------------------------


class _CrashBeforeCommit(Once[MailingRow]):
    """The process dies after the command's writes and the answer's, before the commit."""

    async def after(self, conn: Connection, result: MailingRow) -> None:
        await super().after(conn, result)
        raise ConnectionResetError("crash")


def _once(cls: type[Once[MailingRow]], key: str, data: Any) -> Once[MailingRow]:
    scope = Key(OWNER, key, "POST", URL, DAY)
    return cls(scope, request_hash("POST", URL, data), lambda row: JSON({"id": row.id}, 201))


async def test_a_crash_before_commit_leaves_neither_the_mailing_nor_the_answer(
    pool: asyncpg.Pool,
) -> None:
    key, text = str(uuid4()), f"crash {uuid4()}"
    data, now = body(text=text), datetime.now(UTC)
    with pytest.raises(ConnectionResetError):
        await mailing_commands.create(
            pool, data, now=now, guard=_once(_CrashBeforeCommit, key, data)
        )
    assert await _mailings_with(pool, text) == []
    assert await _answers(pool, key) == 0


async def test_the_answer_commits_in_the_transaction_of_the_event(pool: asyncpg.Pool) -> None:
    key, text = str(uuid4()), f"together {uuid4()}"
    data = body(text=text)
    row = await mailing_commands.create(
        pool, data, now=datetime.now(UTC), guard=_once(Once, key, data)
    )
    same = await pool.fetchval(
        """
        SELECT (SELECT xmin::text FROM gateway_idempotency WHERE idem_key = $1)
             = (SELECT (transaction_id::text::bigint % 4294967296)::text FROM events
                WHERE stream_id = $2)
        """,
        key,
        f"mailing-{row.id}",
    )
    assert same is True


# --- expiry --------------------------------------------------------------------------------


async def test_expired_answers_are_pruned_in_bounded_batches_and_no_longer_replayed(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    owner = f"test:{uuid4()}"
    await pool.executemany(
        """
        INSERT INTO gateway_idempotency
            (key_owner, idem_key, request_hash, method, path, status, headers, body, created_at)
        VALUES ($1, $2, '\\x00', 'POST', '/', 201, '{}', '', now() - interval '3650 days')
        """,
        [(owner, f"old-{n}") for n in range(5)],
    )
    assert await prune_expired(pool, DAY, batch=2) == 2
    left = await pool.fetchval(
        "SELECT count(*) FROM gateway_idempotency WHERE key_owner = $1", owner
    )
    assert left == 3
    while await prune_expired(pool, DAY, batch=2):
        pass
    assert (
        await pool.fetchval("SELECT count(*) FROM gateway_idempotency WHERE key_owner = $1", owner)
        == 0
    )

    # A key whose answer expired is a new key: the request is carried out again.
    headers, text = _key(), f"expired {uuid4()}"
    assert (await client.post(URL, json=body(text=text), headers=headers)).status_code == 201
    await pool.execute(
        "UPDATE gateway_idempotency SET created_at = now() - interval '25 hours'"
        " WHERE idem_key = $1",
        headers["Idempotency-Key"],
    )
    again = await client.post(URL, json=body(text=f"new {uuid4()}"), headers=headers)
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers


# --- the provider's callback ---------------------------------------------------------------

INBOUND_TOKEN = f"inbound-{uuid4().hex}"


@pytest.fixture(scope="module")
async def provider(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(inbound_token=INBOUND_TOKEN))
    auth = {"Authorization": f"Bearer {INBOUND_TOKEN}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=auth
        ) as client,
    ):
        yield client


async def test_inbound_replays_with_and_without_a_stop_word(
    provider: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    number = int(phone())
    for text in ("STOP", "hello"):
        headers = _key()
        sent = {"phone": number, "text": text}
        first = await provider.post("/api/v1/inbound/", json=sent, headers=headers)
        again = await provider.post("/api/v1/inbound/", json=sent, headers=headers)
        assert first.status_code == again.status_code == 200
        assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
        other = await provider.post(
            "/api/v1/inbound/", json={**sent, "text": "other"}, headers=headers
        )
        assert other.status_code == 422
    owner = await pool.fetchval(
        "SELECT key_owner FROM gateway_idempotency WHERE idem_key = $1", headers["Idempotency-Key"]
    )
    assert owner == "inbound:provider"
