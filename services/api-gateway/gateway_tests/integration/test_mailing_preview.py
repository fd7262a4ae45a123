"""POST /api/v1/mailings/preview/: the forecast of a mailing from the real client base, storing
nothing; the same 400s as a create."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app

from .gateway_support import API_KEY, BASE_URL, Snapshot, new_phone
from .mailing_support import iso

URL = "/api/v1/mailings/preview/"


@pytest.fixture
async def priced(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(
        make_settings(sms_price_per_segment="0.35", sms_price_currency="EUR",
                      dispatch_rate_limit=0.01)
    )  # fmt: skip
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=BASE_URL,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as client,
    ):
        yield client


async def _clients(client: httpx.AsyncClient, tag: str, zones: dict[str, int]) -> None:
    lines = [
        f"{new_phone('901' if i % 2 else '902')},{tag},{zone}"
        for zone, n in zones.items()
        for i in range(n)
    ]
    response = await client.post(
        "/api/v1/clients/import",
        content="phone,tag,time_zone\n" + "\n".join(lines) + "\n",
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == len(lines)


def _next_hour(after: datetime) -> datetime:
    return after.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


async def test_forecast_of_a_windowed_mailing_stores_nothing(
    client: httpx.AsyncClient, priced: httpx.AsyncClient, unchanged: Callable[[], Snapshot]
) -> None:
    tag = f"pv{uuid4().hex[:8]}"
    await _clients(client, tag, {"UTC": 10, "Asia/Tokyo": 12, "Europe/Moscow": 8})
    now = datetime.now(UTC)
    # The UTC window opens two hours from now: every zone's first window is ahead.
    opening = _next_hour(now) + timedelta(hours=1)
    body: dict[str, Any] = {
        "datetime_start": iso(now),
        "datetime_end": iso(now + timedelta(days=3)),
        "text": "Привет! Скидка 20%",
        "client_filter": f"{tag}, nosuchtag",
        "send_interval_time_start": f"{opening.hour:02}:00",
        "send_interval_time_end": f"{(opening.hour + 1) % 24:02}:00",
    }
    async with unchanged():
        response = await priced.post(URL, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["audience"] == {
        "total": 30,
        "by_operator_code": [{"operator_code": "901", "count": 15},
                             {"operator_code": "902", "count": 15}],
        "by_tag": [{"tag": tag, "count": 30}],
        "other_tags": 0,
        "opted_out": 0,
        "by_time_zone": [
            {"time_zone": "Asia/Tokyo", "count": 12,
             "first_send": iso(_zone_opening(opening, -9, now))},
            {"time_zone": "UTC", "count": 10, "first_send": iso(opening)},
            {"time_zone": "Europe/Moscow", "count": 8,
             "first_send": iso(_zone_opening(opening, -3, now))},
        ],
    }  # fmt: skip
    # At 0.01 messages/s (36 an hour), every zone's window takes all its messages.
    hours = {h["hour"]: h["messages"] for h in answer["schedule"]["hours"] if h["messages"]}
    assert hours == {
        iso(opening): 10,
        iso(_zone_opening(opening, -9, now)): 12,
        iso(_zone_opening(opening, -3, now)): 8,
    }
    assert answer["schedule"]["send_rate"] == 0.01
    assert answer["unsendable"] == {"total": 0, "reasons": []}
    assert (answer["encoding"], answer["characters"], answer["segments"]) == ("UCS-2", 18, 1)
    assert answer["cost"] == {
        "messages": 30, "segments": 30, "price_per_segment": "0.35", "total": "10.50",
        "currency": "EUR",
    }  # fmt: skip


def _zone_opening(utc_opening: datetime, offset_hours: int, now: datetime) -> datetime:
    """When the window opening at ``utc_opening`` in UTC opens in a zone ``offset_hours``
    ahead of UTC (no DST in the zones used), the first time after ``now``."""
    moment = utc_opening + timedelta(hours=offset_hours)
    while moment <= now:
        moment += timedelta(days=1)
    return moment


async def test_recipients_without_a_send_moment_are_counted_with_the_reason(
    client: httpx.AsyncClient, priced: httpx.AsyncClient
) -> None:
    tag = f"pv{uuid4().hex[:8]}"
    await _clients(client, tag, {"UTC": 3, "Asia/Tokyo": 200})
    now = datetime.now(UTC)
    opening = _next_hour(now) + timedelta(hours=1)
    body = {
        "datetime_start": iso(now),
        "datetime_end": iso(opening + timedelta(minutes=30)),
        "text": "Hi",
        "client_filter": tag,
        # Open in UTC from `opening` for one hour: Tokyo's opens 9 hours before, already past.
        "send_interval_time_start": f"{opening.hour:02}:00",
        "send_interval_time_end": f"{(opening.hour + 1) % 24:02}:00",
    }
    answer = (await priced.post(URL, json=body)).json()
    # 30 minutes at 0.01/s: 18 messages fit; Tokyo has no window before the end.
    assert answer["unsendable"]["reasons"] == [
        {"reason": "no_window_before_end", "count": 200, "time_zones": ["Asia/Tokyo"]}
    ]
    assert answer["unsendable"]["total"] == 200
    assert sum(h["messages"] for h in answer["schedule"]["hours"]) == 3
    assert answer["cost"]["messages"] == 3


async def test_bad_bodies_are_refused_like_a_create(
    client: httpx.AsyncClient, unchanged: Callable[[], Snapshot]
) -> None:
    async with unchanged():
        missing = await client.post(URL, json={"text": "x"})
        assert missing.status_code == 400
        assert set(missing.json()) == {"datetime_start", "datetime_end"}
        now = datetime.now(UTC)
        backwards = await client.post(
            URL,
            json={"datetime_start": iso(now + timedelta(hours=2)),
                  "datetime_end": iso(now + timedelta(hours=1)), "text": "x"},
        )  # fmt: skip
        assert backwards.status_code == 400
        assert backwards.json() == {"datetime_end": ["datetime_end must be after datetime_start."]}
        assert (await client.post(URL, content=b"{")).status_code == 400
