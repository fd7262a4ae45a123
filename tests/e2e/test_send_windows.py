"""No call starts outside the client's local window, whatever happens between scheduling and
sending: a creation after today's window, a backlog at the close, a pause across the close, a
retry whose backoff crosses it. Real clock, windows a few seconds long, clients in a zone with
an odd offset (+05:45), and the fake provider's journal as the witness of when calls arrived.

Each test prints the longest time a call reached the provider after its window's close: it
must be no more than a call in flight (the check is at the start of the call)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.conftest import System
from tests.e2e.helpers import (
    create_mailing,
    eventually,
    iso,
    messages,
    now,
    unique_tag,
)

ZONE = "Asia/Kathmandu"
RATE = 20  # messages per second, for every dispatcher replica together
# A call that starts just before the close reaches the provider a moment later (loopback).
IN_FLIGHT_S = 0.5

pytestmark = pytest.mark.service_env({"DISPATCH_RATE_LIMIT": str(RATE)})


def _window(opens_in: float, length: float) -> tuple[datetime, datetime, str, str]:
    """A local window opening ``opens_in`` seconds from now, as UTC instants and local times."""
    opens = (now() + timedelta(seconds=opens_in)).replace(microsecond=0) + timedelta(seconds=1)
    closes = opens + timedelta(seconds=length)
    tz = ZoneInfo(ZONE)
    return opens, closes, _hms(opens.astimezone(tz)), _hms(closes.astimezone(tz))


def _hms(local: datetime) -> str:
    return local.strftime("%H:%M:%S")


def _import(api: httpx.Client, n: int, prefix: int) -> str:
    tag = unique_tag()
    rows = "".join(f"7{prefix:03d}{i:07d},{tag},{ZONE}\n" for i in range(n))
    resp = api.post("/api/v1/clients/import", content=("phone,tag,time_zone\n" + rows).encode(),
                    headers={"Content-Type": "text/csv"})  # fmt: skip
    assert resp.status_code == 200 and resp.json()["created"] == n, resp.text
    return tag


def _receipts(provider: httpx.Client, ids: list[int]) -> dict[int, list[float]]:
    got: dict[int, list[float]] = {}
    for i in range(0, len(ids), 200):
        part = ",".join(str(m) for m in ids[i : i + 200])
        body = provider.get("/_inspect/messages", params={"ids": part}).json()
        got |= {int(k): v["times"] for k, v in body.items()}
    return got


def _latest_after_close(receipts: dict[int, list[float]], closes: datetime) -> float:
    """Seconds from the close to the last call that reached the provider (<= 0: none after)."""
    times = [t for ts in receipts.values() for t in ts]
    return max(times) - closes.timestamp() if times else float("-inf")


def _due(msg: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(msg["datetime_send"]).replace("Z", "+00:00"))


def _assert_unsent_wait_for_tomorrow(msgs: list[dict[str, Any]], opens: datetime) -> int:
    unsent = [x for x in msgs if x["status"] == "SC"]
    tomorrow = opens + timedelta(days=1)
    for x in unsent:
        assert abs((_due(x) - tomorrow).total_seconds()) < 1, (x, tomorrow)
    return len(unsent)


def _report(name: str, late: float, sent: int, waiting: int) -> None:
    shown = "none after the close" if late <= 0 else f"{late * 1000:.0f} ms after the close"
    print(f"\n[send window] {name}: {sent} sent in the window, {waiting} wait for tomorrow; "
          f"latest call: {shown}")  # fmt: skip


def test_created_after_todays_window_sends_nothing_until_tomorrow(system: System) -> None:
    with system.api() as api, system.provider() as provider:
        tag = _import(api, 20, 811)
        opens, _, start_local, end_local = _window(-40, 20)  # closed 20 s ago
        m = create_mailing(
            api, client_filter=tag, datetime_start=iso(now() - timedelta(hours=1)),
            datetime_end=iso(now() + timedelta(days=2)),
            send_interval_time_start=start_local, send_interval_time_end=end_local,
        )  # fmt: skip
        msgs = eventually(lambda: _all(api, m["id"], 20))
        time.sleep(3)  # had the due time been taken from the start, they would be gone now
        ids = [x["id"] for x in msgs]
        assert all(not ts for ts in _receipts(provider, ids).values())
        msgs = messages(api, m["id"])
        assert _assert_unsent_wait_for_tomorrow(msgs, opens) == 20
        _report("created after the close", float("-inf"), 0, 20)


def test_a_backlog_at_the_close_waits_for_the_next_window(system: System) -> None:
    n = 200  # ten seconds of sending at RATE, in a five-second window
    with system.api() as api, system.provider() as provider:
        tag = _import(api, n, 812)
        opens, closes, start_local, end_local = _window(3, 5)
        m = create_mailing(
            api, client_filter=tag, datetime_end=iso(now() + timedelta(days=2)),
            send_interval_time_start=start_local, send_interval_time_end=end_local,
        )  # fmt: skip
        _sleep_until(closes + timedelta(seconds=3))
        msgs = eventually(lambda: _settled_for_now(api, m["id"], n), timeout=30)
        receipts = _receipts(provider, [x["id"] for x in msgs])
        late = _latest_after_close(receipts, closes)
        sent = sum(1 for ts in receipts.values() if ts)
        assert late <= IN_FLIGHT_S, late
        assert all(min(ts) >= opens.timestamp() - 0.05 for ts in receipts.values() if ts)
        assert 0 < sent < n
        waiting = _assert_unsent_wait_for_tomorrow(msgs, opens)
        assert sent + waiting == n
        _report("backlog at the close (rate limit)", late, sent, waiting)


def test_a_pause_across_the_close_resumes_in_the_next_window(system: System) -> None:
    n = 200
    with system.api() as api, system.provider() as provider:
        tag = _import(api, n, 813)
        opens, closes, start_local, end_local = _window(3, 5)
        m = create_mailing(
            api, client_filter=tag, datetime_end=iso(now() + timedelta(days=2)),
            send_interval_time_start=start_local, send_interval_time_end=end_local,
        )  # fmt: skip
        _sleep_until(opens + timedelta(seconds=2))
        assert api.post(f"/api/v1/mailings/{m['id']}/pause/").status_code == 200
        _sleep_until(closes + timedelta(seconds=2))
        assert api.post(f"/api/v1/mailings/{m['id']}/resume/").status_code == 200
        time.sleep(3)
        msgs = eventually(lambda: _settled_for_now(api, m["id"], n), timeout=30)
        receipts = _receipts(provider, [x["id"] for x in msgs])
        late = _latest_after_close(receipts, closes)
        sent = sum(1 for ts in receipts.values() if ts)
        assert late <= IN_FLIGHT_S, late
        assert 0 < sent < n
        waiting = _assert_unsent_wait_for_tomorrow(msgs, opens)
        assert sent + waiting == n
        _report("paused in the window, resumed after it", late, sent, waiting)


def test_a_retry_whose_backoff_crosses_the_close_waits_for_the_next_window(
    system: System,
) -> None:
    n = 5
    with system.api() as api, system.provider() as provider:
        tag = _import(api, n, 814)
        provider.post("/_control", json={"failure_rate": 1.0})
        try:
            opens, closes, start_local, end_local = _window(3, 3)
            m = create_mailing(
                api, client_filter=tag, datetime_end=iso(now() + timedelta(days=2)),
                send_interval_time_start=start_local, send_interval_time_end=end_local,
            )  # fmt: skip
            _sleep_until(closes + timedelta(seconds=3))
        finally:
            provider.post("/_control", json={"failure_rate": 0.0})
        time.sleep(1)
        msgs = eventually(lambda: _settled_for_now(api, m["id"], n), timeout=30)
        receipts = _receipts(provider, [x["id"] for x in msgs])
        late = _latest_after_close(receipts, closes)
        assert late <= IN_FLIGHT_S, late
        assert all(len(ts) >= 2 for ts in receipts.values())  # retried inside the window
        assert _assert_unsent_wait_for_tomorrow(msgs, opens) == n
        _report("retries crossing the close", late, 0, n)


def _all(api: httpx.Client, mailing_id: int, n: int) -> list[dict[str, Any]]:
    msgs = messages(api, mailing_id)
    assert len(msgs) == n, len(msgs)
    return msgs


def _settled_for_now(api: httpx.Client, mailing_id: int, n: int) -> list[dict[str, Any]]:
    """The messages once every one is delivered or waits for a later window (none due now)."""
    msgs = _all(api, mailing_id, n)
    soon = now() + timedelta(hours=1)
    assert all(x["status"] == "DL" or _due(x) > soon for x in msgs), [
        (x["status"], x["datetime_send"]) for x in msgs if x["status"] != "DL"
    ][:5]
    return msgs


def _sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))
