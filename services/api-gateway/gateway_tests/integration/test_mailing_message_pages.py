"""A mailing's messages page by page through the gateway and the real reporter (its internal
API over this run's database, messages projected by its handler): following ``next`` to the
end and ``previous`` back sees every message once and in order, with or without ``?status=``,
and ``count`` is the number of messages the filter selects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from aiohttp import web

from gateway import Settings, create_app
from reporter.api import ROUTES
from reporter.handlers import handle_batch
from sms_events.broker import Broker
from sms_events.contracts import (
    DeliveredMessage,
    Event,
    MessagesCancelled,
    MessagesDelivered,
    MessagesScheduled,
    MessagesUndelivered,
    MessagesWithdrawn,
    ScheduledMessage,
    UndeliveredMessage,
)
from sms_events.runtime import RUNTIME, Runtime
from sms_events.settings import ServiceSettings
from sms_events.testing.factories import envelope_for
from sms_events.testing.processes import free_port

from .mailing_support import URL, assert_message_shape, create, started

MESSAGES = 3000
STATUSES = (None, "SC", "DL", "ND", "CA")
_batches = iter(range(10**9))


@pytest.fixture(scope="module")
async def reporter_url(
    pool: asyncpg.Pool, broker: Broker, settings: ServiceSettings
) -> AsyncIterator[str]:
    """The reporter's internal read API, served as the reporter serves it."""
    app = web.Application()
    app[RUNTIME] = Runtime("reporter", settings, pool, broker, asyncio.Event())
    app.add_routes(ROUTES)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture(scope="module")
async def gateway(
    make_settings: Callable[..., Settings], reporter_url: str, api_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(reporter_url=reporter_url))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {api_key}"},
        ) as client,
    ):
        yield client


def _batch_id() -> str:
    return f"pages-{next(_batches)}"


async def project(pool: asyncpg.Pool, *events: Event) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await handle_batch(conn, [envelope_for(e) for e in events])


async def project_messages(pool: asyncpg.Pool, mailing_id: int, ids: Sequence[int]) -> None:
    """Every message scheduled, then by its index: 4 in 10 delivered, 1 undelivered, 1
    cancelled, 1 withdrawn before the start (it leaves every list and count), 3 left."""
    by_fate: dict[int, list[int]] = {k: [] for k in range(10)}
    for i, message_id in enumerate(ids):
        by_fate[i % 10].append(message_id)
    t0 = (await pool.fetchval("SELECT now()")).replace(microsecond=0)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        scheduled = [
            ScheduledMessage(message_id=m, client_id=m % 10**6 + 1, due_at=t0) for m in chunk
        ]
        await project(
            pool,
            MessagesScheduled(mailing_id=mailing_id, batch_id=_batch_id(), messages=scheduled),
        )
    delivered = [m for k in (0, 1, 2, 3) for m in by_fate[k]]
    await project(
        pool,
        MessagesDelivered(
            mailing_id=mailing_id,
            batch_id=_batch_id(),
            messages=[DeliveredMessage(message_id=m, attempt=1, sent_at=t0) for m in delivered],
        ),
        MessagesUndelivered(
            mailing_id=mailing_id,
            batch_id=_batch_id(),
            messages=[
                UndeliveredMessage(message_id=m, attempts=3, error="HTTP 400", failed_at=t0)
                for m in by_fate[4]
            ],
        ),
        MessagesCancelled(
            mailing_id=mailing_id, batch_id=_batch_id(), message_ids=by_fate[5], reason="test"
        ),
        MessagesWithdrawn(mailing_id=mailing_id, batch_id=_batch_id(), message_ids=by_fate[6]),
    )


@pytest.fixture(scope="module")
async def mailing(gateway: httpx.AsyncClient, pool: asyncpg.Pool) -> int:
    """A started mailing with 3,000 messages projected into the reporter (2,700 left after
    the withdrawals), their ids with gaps."""
    mailing_id: int = (await create(gateway, **started()))["id"]
    base = mailing_id * 10**7
    await project_messages(pool, mailing_id, [base + 3 * i for i in range(MESSAGES)])
    return mailing_id


async def truth(pool: asyncpg.Pool, mailing_id: int, status: str | None) -> list[int]:
    """Every id the filter selects, newest first, read straight from the reporter's rows."""
    rows = await pool.fetch(
        "SELECT message_id FROM reporter_messages WHERE mailing_id = $1"
        " AND ($2::text IS NULL OR status = $2) ORDER BY message_id DESC",
        mailing_id,
        status,
    )
    return [r["message_id"] for r in rows]


async def get(client: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    # No params= at all with a link: httpx would replace the link's query with it.
    given = {k: v for k, v in params.items() if v is not None}
    response = await client.get(url, params=given) if given else await client.get(url)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert list(body) == ["count", "next", "previous", "results"]
    return body


def ids(page: dict[str, Any]) -> list[int]:
    return [m["id"] for m in page["results"]]


@pytest.mark.parametrize("status", STATUSES)
async def test_next_to_the_end_and_previous_back_see_every_message_once_in_order(
    gateway: httpx.AsyncClient, pool: asyncpg.Pool, mailing: int, status: str | None
) -> None:
    expected = await truth(pool, mailing, status)
    page = await get(gateway, f"{URL}{mailing}/messages/", status=status)
    assert page["previous"] is None
    forward, counts = [ids(page)], {page["count"]}
    while page["next"] is not None:
        assert page["next"].startswith(f"http://testserver{URL}{mailing}/messages/?")
        query = parse_qs(urlsplit(page["next"]).query)
        assert query.get("status") == ([status] if status else None) and "page" not in query
        page = await get(gateway, page["next"])
        forward.append(ids(page))
        counts.add(page["count"])
    for message in page["results"]:
        assert_message_shape(message)
    backward = [forward[-1]]
    while page["previous"] is not None:
        page = await get(gateway, page["previous"])
        backward.append(ids(page))
        counts.add(page["count"])
    assert [m for p in forward for m in p] == expected
    assert [len(p) for p in forward[:-1]] == [25] * (len(forward) - 1)
    assert list(reversed(backward)) == forward
    assert counts == {len(expected)}
    last = await get(gateway, f"{URL}{mailing}/messages/", status=status, page="last")
    assert ids(last) == forward[-1] and last["next"] is None


async def test_count_is_the_reporters_counter_and_equals_the_rows(
    gateway: httpx.AsyncClient, pool: asyncpg.Pool, mailing: int
) -> None:
    detail = (await gateway.get(f"{URL}{mailing}/")).json()
    by_status = {
        None: detail["created_messages"],
        "SC": detail["scheduled_messages"],
        "DL": detail["delivered_messages"],
        "ND": detail["undelivered_messages"],
        "CA": detail["cancelled_messages"],
    }
    assert by_status == {None: 2700, "SC": 900, "DL": 1200, "ND": 300, "CA": 300}
    for status, n in by_status.items():
        assert len(await truth(pool, mailing, status)) == n
        page = await get(gateway, f"{URL}{mailing}/messages/", status=status, page_size=7)
        assert page["count"] == n
        deeper = await get(gateway, page["next"])
        assert deeper["count"] == n
    newest = await truth(pool, mailing, None)
    assert [m["id"] for m in detail["mailing_messages"]] == newest[:100]
    first = await get(gateway, detail["messages_url"])
    assert ids(first) == newest[:25]


async def test_a_page_jump_continues_by_cursor(
    gateway: httpx.AsyncClient, pool: asyncpg.Pool, mailing: int
) -> None:
    expected = await truth(pool, mailing, "DL")
    url = f"{URL}{mailing}/messages/"
    third = await get(gateway, url, status="DL", page=3, page_size=50)
    assert ids(third) == expected[100:150]
    assert ids(await get(gateway, third["next"])) == expected[150:200]
    assert ids(await get(gateway, third["previous"])) == expected[50:100]
    second = await get(gateway, url, status="DL", page=2, page_size=50)
    back = await get(gateway, second["previous"])
    assert ids(back) == expected[:50] and back["previous"] is None
    cursor = parse_qs(urlsplit(third["next"]).query)["cursor"][0]
    with_page = await get(gateway, url, status="DL", page_size=50, page=9, cursor=cursor)
    assert ids(with_page) == expected[150:200]  # the cursor wins over ?page=


@pytest.mark.parametrize(
    "cursor", ["x", "YmVmb3JlOjI=", "c2lkZXdheXM6MQ", "YmVmb3JlOi0x", "é", "A" * 500]
)
async def test_a_malformed_cursor_is_an_invalid_page(
    gateway: httpx.AsyncClient, mailing: int, cursor: str
) -> None:
    response = await gateway.get(f"{URL}{mailing}/messages/", params={"cursor": cursor})
    assert (response.status_code, response.json()) == (404, {"detail": "Invalid page."})


async def test_a_mailing_without_messages_has_one_empty_page(
    gateway: httpx.AsyncClient,
) -> None:
    mailing_id = (await create(gateway))["id"]
    page = await get(gateway, f"{URL}{mailing_id}/messages/")
    assert page == {"count": 0, "next": None, "previous": None, "results": []}
    beyond = await gateway.get(f"{URL}{mailing_id}/messages/", params={"page": 2})
    assert (beyond.status_code, beyond.json()) == (404, {"detail": "Invalid page."})
