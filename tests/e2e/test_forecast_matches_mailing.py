"""The forecast before launch against what the real mailing then does, through every service.

Stated tolerances: when every zone's window opens later (the scheduler times each message for
its zone's slot), the per-hour counts of the forecast equal the hours the messages are due in,
exactly. When the mailing sends at once, at DISPATCH_RATE_LIMIT, each hour's count may differ by
the messages the pipeline's start-up (at most 5 s at the rate) moves across an hour boundary,
and the real sending time (first to last delivery) is within 50 % of the forecast's."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.e2e_support import assert_counter, eventually, iso, messages, now, unique_tag
from tests.e2e.system_support import System

RATE = 20
STARTUP_S = 5

pytestmark = pytest.mark.service_env({"DISPATCH_RATE_LIMIT": str(RATE)})


def _import(api: httpx.Client, tag: str, zones: dict[str, int], prefix: int) -> int:
    rows = [f"7{prefix:03d}{i:07d},{tag},{zone}"
            for i, zone in enumerate(z for z, n in zones.items() for _ in range(n))]  # fmt: skip
    resp = api.post("/api/v1/clients/import",
                    content=("phone,tag,time_zone\n" + "\n".join(rows) + "\n").encode(),
                    headers={"Content-Type": "text/csv"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    return len(rows)


def _hour(stamp: str) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return iso(moment.replace(minute=0, second=0, microsecond=0))


def _forecast_then_create(api: httpx.Client, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    preview = api.post("/api/v1/mailings/preview/", json=body)
    assert preview.status_code == 200, preview.text
    created = api.post("/api/v1/mailings/", json=body)
    assert created.status_code == 201, created.text
    return preview.json(), created.json()["id"]


def test_per_hour_forecast_equals_the_hours_the_scheduler_times(system: System) -> None:
    zones = {"UTC": 10, "Asia/Tokyo": 12, "Asia/Kolkata": 6, "Europe/Moscow": 8}
    with system.api() as api:
        tag = unique_tag()
        n = _import(api, tag, zones, 831)
        start = now()
        # A one-hour window opening two whole hours from now in UTC: no zone's is open now.
        opening = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
        body = {
            "datetime_start": iso(start),
            "datetime_end": iso(start + timedelta(days=2)),
            "text": "Forecast check",
            "client_filter": tag,
            "send_interval_time_start": opening.strftime("%H:00"),
            "send_interval_time_end": (opening + timedelta(hours=1)).strftime("%H:00"),
        }
        forecast, mailing_id = _forecast_then_create(api, body)
        assert forecast["audience"]["total"] == n
        eventually(lambda: assert_counter(api, mailing_id, "created_messages", n), timeout=60)
        due = Counter(_hour(m["datetime_send"]) for m in messages(api, mailing_id))
        predicted = {h["hour"]: h["messages"] for h in forecast["schedule"]["hours"]}
        assert {h: c for h, c in predicted.items() if c} == dict(due)
        api.post(f"/api/v1/mailings/{mailing_id}/cancel/")


def test_a_rate_limited_send_takes_the_forecast_time(system: System) -> None:
    n = 200  # ten seconds at RATE
    with system.api() as api:
        tag = unique_tag()
        _import(api, tag, {"Europe/Moscow": n}, 832)
        start = now()
        body = {
            "datetime_start": iso(start),
            "datetime_end": iso(start + timedelta(hours=2)),
            "text": "Rate check",
            "client_filter": tag,
        }
        forecast, mailing_id = _forecast_then_create(api, body)
        schedule = forecast["schedule"]
        predicted_s = (
            datetime.fromisoformat(schedule["last_send"].replace("Z", "+00:00"))
            - datetime.fromisoformat(schedule["first_send"].replace("Z", "+00:00"))
        ).total_seconds()
        assert predicted_s == pytest.approx((n - 1) / RATE)
        eventually(lambda: assert_counter(api, mailing_id, "delivered_messages", n), timeout=90)
        sent = sorted(
            datetime.fromisoformat(m["datetime_send"].replace("Z", "+00:00"))
            for m in messages(api, mailing_id)
        )
        real_s = (sent[-1] - sent[0]).total_seconds()
        print(f"\nforecast {predicted_s:.1f} s, real {real_s:.1f} s for {n} messages at {RATE}/s")
        assert 0.5 * predicted_s <= real_s <= 1.5 * predicted_s
        real = Counter(_hour(iso(t)) for t in sent)
        predicted = {h["hour"]: h["messages"] for h in schedule["hours"] if h["messages"]}
        for hour in set(real) | set(predicted):
            assert abs(real.get(hour, 0) - predicted.get(hour, 0)) <= RATE * STARTUP_S, hour
