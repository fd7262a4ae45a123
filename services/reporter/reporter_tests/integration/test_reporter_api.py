"""The internal read API on a real aiohttp server over the real database."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr, ValidationError

from reporter.config import Settings as ReporterSettings
from sms_events.bearer import bearer_header
from sms_events.broker import Broker
from sms_events.contracts import MailingDeleted
from sms_events.settings import ServiceSettings

from .reporter_support import (
    T0,
    Client,
    cancelled,
    delivered,
    envelope,
    failed,
    handle,
    ids,
    new_id,
    reporter_app,
    scheduled,
)


@pytest.fixture
async def mailing(pool: asyncpg.Pool) -> tuple[int, list[int]]:
    """A mailing of 5 messages: 2 delivered, 1 cancelled, 2 scheduled (one after a failure)."""
    mailing, msgs = new_id(), ids(5)
    await handle(pool, scheduled(mailing, msgs))
    await handle(
        pool,
        envelope(delivered(mailing, msgs[:2], sent=T0 + timedelta(minutes=1)), at=T0),
        cancelled(mailing, msgs[2:3]),
        failed(mailing, msgs[3:4], attempts=1, error="timeout"),
    )
    return mailing, msgs


async def test_counters_of_several_mailings_with_unknown_ids_absent(
    client: Client, mailing: tuple[int, list[int]]
) -> None:
    mailing_id, _ = mailing
    unknown = new_id()
    resp = await client.get(f"/internal/v1/mailings/counters?ids={mailing_id},{unknown}")
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        str(mailing_id): {
            "clients_count": 5,
            "created_messages": 5,
            "scheduled_messages": 2,
            "delivered_messages": 2,
            "undelivered_messages": 0,
            "cancelled_messages": 1,
            "attempts_total": 3,
            "first_sent_at": "2025-03-01T09:01:00Z",
            "last_sent_at": "2025-03-01T09:01:00Z",
            "completed_at": None,
            "resolved_at": None,
        }
    }


async def test_counters_answer_400_for_bad_ids(
    client: Client,
) -> None:
    for query in ("", "?ids=1,x", "?ids=-3", "?ids=0", "?ids=99999999999999999999",
                  "?ids=" + ",".join(str(i) for i in range(1, 1002))):  # fmt: skip
        resp = await client.get(f"/internal/v1/mailings/counters{query}")
        assert resp.status == 400, query
        body = await resp.json()
        assert body["parameter"] == "ids" and body["reason"]
    resp = await client.get("/internal/v1/mailings/counters?ids=")
    assert (resp.status, await resp.json()) == (200, {})


async def test_messages_newest_first_with_the_old_shape(
    client: Client, mailing: tuple[int, list[int]]
) -> None:
    mailing_id, msgs = mailing
    resp = await client.get(f"/internal/v1/mailings/{mailing_id}/messages")
    assert resp.status == 200
    body = await resp.json()
    assert body["count"] == 5
    assert [m["id"] for m in body["results"]] == sorted(msgs, reverse=True)
    first = body["results"][-1]
    assert set(first) == {
        "id", "datetime_send", "status", "mailing_id", "client_id", "attempts", "last_error",
        "created_at", "updated_at",
    }  # fmt: skip
    assert first["status"] == "DL" and first["datetime_send"] == "2025-03-01T09:01:00Z"
    assert first["mailing_id"] == mailing_id and first["attempts"] == 1
    assert first["created_at"].endswith("Z")
    retried = next(m for m in body["results"] if m["id"] == msgs[3])
    assert (retried["status"], retried["attempts"], retried["last_error"]) == ("SC", 1, "timeout")


async def test_messages_filtered_by_status_count_from_the_counters(
    client: Client, mailing: tuple[int, list[int]]
) -> None:
    mailing_id, msgs = mailing
    expected = {"SC": [msgs[4], msgs[3]], "DL": [msgs[1], msgs[0]], "CA": [msgs[2]], "ND": []}
    for status, wanted in expected.items():
        resp = await client.get(f"/internal/v1/mailings/{mailing_id}/messages?status={status}")
        body = await resp.json()
        assert body["count"] == len(wanted), status
        assert [m["id"] for m in body["results"]] == wanted
        assert all(m["status"] == status for m in body["results"])


async def test_messages_pagination(client: Client, mailing: tuple[int, list[int]]) -> None:
    mailing_id, msgs = mailing
    newest_first = sorted(msgs, reverse=True)
    pages = []
    for page in (1, 2, 3, 4):
        resp = await client.get(
            f"/internal/v1/mailings/{mailing_id}/messages?page={page}&page_size=2"
        )
        body = await resp.json()
        assert body["count"] == 5
        pages.append([m["id"] for m in body["results"]])
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:], []]


async def test_messages_of_an_unknown_or_deleted_mailing_are_an_empty_list(
    client: Client, pool: asyncpg.Pool
) -> None:
    empty = {"count": 0, "results": [], "next_before": None, "previous_after": None}
    resp = await client.get(f"/internal/v1/mailings/{new_id()}/messages")
    assert (resp.status, await resp.json()) == (200, empty)
    mailing_id = new_id()
    await handle(pool, scheduled(mailing_id, ids(2)))
    await handle(pool, MailingDeleted(mailing_id=mailing_id, deleted_at=T0))
    for query in ("", "?before=99", "?after=0"):
        resp = await client.get(f"/internal/v1/mailings/{mailing_id}/messages{query}")
        assert await resp.json() == empty
    resp = await client.get(f"/internal/v1/mailings/counters?ids={mailing_id}")
    assert await resp.json() == {}


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("status=XX", "status"),
        ("status=dl", "status"),
        ("status=WD", "status"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=" + "9" * 5000, "page"),
        ("page_size=1001", "page_size"),
        ("page_size=0", "page_size"),
        ("before=abc", "before"),
        ("after=-1", "after"),
        ("after=1.5", "after"),
        (f"before={2**63}", "before"),
        ("page=2&before=5", "before"),
        ("after=5&before=5", "after"),
    ],
)
async def test_messages_answer_400_with_a_reason(
    client: Client, query: str, parameter: str
) -> None:
    resp = await client.get(f"/internal/v1/mailings/1/messages?{query}")
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "invalid_parameter"
    assert body["parameter"] == parameter and body["reason"]


async def test_messages_answer_400_for_a_bad_mailing_id(
    client: Client,
) -> None:
    resp = await client.get("/internal/v1/mailings/abc/messages")
    assert resp.status == 400
    assert (await resp.json())["parameter"] == "mailing_id"


async def test_with_a_token_every_internal_call_needs_it(
    pool: asyncpg.Pool, broker: Broker, settings: ServiceSettings
) -> None:
    token = "internal-" + "t" * 40
    guarded = ReporterSettings(
        **settings.model_dump(), internal_api_token=SecretStr(token), _env_file=None
    )
    async with TestClient(TestServer(reporter_app(guarded, pool, broker))) as client:
        for header in ({}, {"Authorization": f"Bearer {token}x"}, {"Authorization": token}):
            refused = await client.get("/internal/v1/stats", headers=header)
            assert (refused.status, await refused.json()) == (401, {"error": "unauthorized"})
        allowed = await client.get("/internal/v1/stats", headers=bearer_header(token))
        assert allowed.status == 200


def test_off_loopback_the_token_is_required(settings: ServiceSettings) -> None:
    with pytest.raises(ValidationError, match="set INTERNAL_API_TOKEN"):
        ReporterSettings(**settings.model_dump(), reporter_http_host="0.0.0.0", _env_file=None)
    with pytest.raises(ValidationError, match="at least 32"):
        ReporterSettings(**settings.model_dump(), internal_api_token=SecretStr("x" * 31),
                         _env_file=None)  # fmt: skip
