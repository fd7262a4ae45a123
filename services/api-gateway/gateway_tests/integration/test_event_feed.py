"""GET /api/v1/events/: the history in publishing order from any cursor, each event exactly once
whatever the page size, filtered by type with bounded scans, never past an appender still open,
behind its own scope (events:read)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app
from sms_events.contracts import ClientDeleted, MailingPaused
from sms_events.feed import cursor_of
from sms_events.store import EventStore, NewEvent, appending

KEYS = {name: f"{name}-{secrets.token_hex(20)}" for name in ("feed", "viewer", "ops", "old")}
CONFIGURED = [
    f"feed:events:read:{KEYS['feed']}",
    f"viewer:read+clients:write+mailings:write:{KEYS['viewer']}",
    f"ops:admin:{KEYS['ops']}",
    KEYS["old"],  # a bare key: every scope the old API had, which excludes the feed
]
URL = "/api/v1/events/"
WHEN = datetime(2025, 1, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
async def feed_app(make_settings: Callable[..., Settings]) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(api_keys=CONFIGURED))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def feed(feed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _as(feed_app, "feed") as client:
        yield client


def _as(app: FastAPI, name: str | None) -> httpx.AsyncClient:
    headers = {} if name is None else {"Authorization": f"Bearer {KEYS[name]}"}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    )


def _deleted(n: int = 1) -> NewEvent:
    return NewEvent(ClientDeleted(client_id=n, deleted_at=WHEN))


def _paused(n: int = 1) -> NewEvent:
    return NewEvent(MailingPaused(mailing_id=n, paused_at=WHEN))


async def _head(store: EventStore) -> str:
    """A cursor after everything stored so far: that of a new event of a stream of its own."""
    stream = f"test-{uuid4().hex}"
    await store.append(stream, [_deleted()])
    (marker,) = await store.read_stream(stream)
    return cursor_of(marker.checkpoint)


async def _page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await client.get(URL, params=params)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


async def _follow(client: httpx.AsyncClient, after: str, **params: Any) -> tuple[list[Any], str]:
    """Every event after ``after``, page by page; and the last ``next``."""
    events: list[Any] = []
    for _ in range(100):
        page = await _page(client, after=after, **params)
        events += page["events"]
        after = page["next"]
        if not page["has_more"]:
            return events, after
    raise AssertionError("the feed never reached its end")


def _ids(events: list[Any]) -> list[UUID]:
    return [UUID(e["id"]) for e in events]


async def test_paging_with_any_limit_returns_each_event_once_in_publishing_order(
    feed: httpx.AsyncClient, store: EventStore
) -> None:
    start = await _head(store)
    appended: list[UUID] = []
    for n in range(3):
        batch: list[NewEvent] = [_deleted(n), _paused(n), _deleted(n)]  # one transaction
        await store.append(f"test-{uuid4().hex}", batch)
        appended += [e.event_id for e in batch]

    for limit in (1, 2, 4, 1000):
        events, last = await _follow(feed, start, limit=limit)
        assert _ids(events) == appended
        assert last == events[-1]["cursor"]
    # Each envelope is the relay's: a CloudEvent with its place, and cursors sort as places do.
    first = events[0]
    assert first["specversion"] == "1.0" and first["type"] == "client.deleted"
    assert first["source"] == "/sms/api-gateway" and first["data"]["client_id"] == 0
    cursors = [e["cursor"] for e in events]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors) and start < cursors[0]
    # At the end, a page is empty and keeps the cursor it was given.
    assert await _page(feed, after=last) == {"events": [], "next": last, "has_more": False}


async def test_a_type_filter_returns_only_those_types_and_moves_past_the_others(
    feed: httpx.AsyncClient, store: EventStore
) -> None:
    start = await _head(store)
    stream = f"test-{uuid4().hex}"
    others = [_deleted(n) for n in range(12)]
    wanted = _paused()
    await store.append(stream, others)
    await store.append(stream, [wanted])
    await store.append(stream, [_deleted()])

    # limit=1 examines at most 10 events: the first page matches none but moves on.
    page = await _page(feed, after=start, type="mailing.paused", limit=1)
    assert page["events"] == [] and page["has_more"] and page["next"] > start
    page = await _page(feed, after=page["next"], type="mailing.paused", limit=1)
    assert _ids(page["events"]) == [wanted.event_id]

    events, _ = await _follow(feed, start, type="mailing.paused", limit=1)
    assert _ids(events) == [wanted.event_id]
    for both in ({"type": "mailing.paused,client.deleted"},
                 {"type": ["client.deleted", "mailing.paused"]}):  # fmt: skip
        events, _ = await _follow(feed, start, limit=5, **both)
        assert len(events) == 14


async def test_the_feed_stops_before_an_appender_still_open_and_shows_its_event_once_it_commits(
    feed: httpx.AsyncClient, store: EventStore, pool: asyncpg.Pool
) -> None:
    start = await _head(store)
    before, early, late = _deleted(1), _deleted(2), _deleted(3)
    await store.append(f"test-{uuid4().hex}", [before])
    async with pool.acquire() as conn:
        held = contextlib.AsyncExitStack()
        await held.enter_async_context(appending(conn))
        await store.append(f"test-{uuid4().hex}", [early], conn=conn)  # open, lower position
        await store.append(f"test-{uuid4().hex}", [late])  # committed after it

        events, stopped = await _follow(feed, start)
        assert _ids(events) == [before.event_id]
        assert stopped == events[-1]["cursor"]
        await held.aclose()  # commits

    page = await _page(feed, after=stopped)
    assert _ids(page["events"]) == [early.event_id, late.event_id]


async def test_only_keys_with_events_read_or_admin_may_read_the_feed(feed_app: FastAPI) -> None:
    async with _as(feed_app, None) as anonymous:
        assert (await anonymous.get(URL)).status_code == 401
    for name in ("viewer", "old"):
        async with _as(feed_app, name) as client:
            refused = await client.get(URL)
            assert refused.status_code == 403
            assert "'events:read'" in refused.json()["detail"]
    for name in ("feed", "ops"):
        async with _as(feed_app, name) as client:
            assert (await client.get(URL, params={"limit": 1})).status_code == 200
    async with _as(feed_app, "feed") as client:  # and nothing else
        assert (await client.get("/api/v1/clients/")).status_code == 403


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "bm90LWEtY3Vyc29y"}, "after"),
        ({"after": "f" * 32}, "after"),
        ({"after": "0" * 65}, "after"),
        ({"type": "client.deleted,mailing.sent"}, "type"),
        ({"type": "CLIENT.DELETED"}, "type"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
    ],
)
async def test_a_bad_query_is_400_naming_the_parameter(
    feed: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    answer = await feed.get(URL, params=params)
    assert answer.status_code == 400
    assert list(answer.json()) == [field]
