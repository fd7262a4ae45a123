"""Helpers for the send-window scenarios: windows a few seconds long in a zone with an odd
offset, the fake provider's journal as the witness of when calls arrived."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.e2e.e2e_support import create_mailing, iso, messages, now, unique_tag

ZONE = "Asia/Kathmandu"  # +05:45: a window in local time is not one in UTC


def window(opens_in: float, length: float) -> tuple[datetime, datetime, str, str]:
    """A local window opening ``opens_in`` seconds from now, as UTC instants and local times."""
    opens = (now() + timedelta(seconds=opens_in)).replace(microsecond=0) + timedelta(seconds=1)
    closes = opens + timedelta(seconds=length)
    tz = ZoneInfo(ZONE)
    return opens, closes, _hms(opens.astimezone(tz)), _hms(closes.astimezone(tz))


def _hms(local: datetime) -> str:
    return local.strftime("%H:%M:%S")


def import_in_zone(api: httpx.Client, n: int, prefix: int) -> str:
    tag = unique_tag()
    rows = "".join(f"7{prefix:03d}{i:07d},{tag},{ZONE}\n" for i in range(n))
    resp = api.post("/api/v1/clients/import", content=("phone,tag,time_zone\n" + rows).encode(),
                    headers={"Content-Type": "text/csv"})  # fmt: skip
    assert resp.status_code == 200 and resp.json()["created"] == n, resp.text
    return tag


def provider_receipts(provider: httpx.Client, ids: list[int]) -> dict[int, list[float]]:
    got: dict[int, list[float]] = {}
    for i in range(0, len(ids), 200):
        part = ",".join(str(m) for m in ids[i : i + 200])
        body = provider.get("/_inspect/messages", params={"ids": part}).json()
        got |= {int(k): v["times"] for k, v in body.items()}
    return got


def latest_after_close(receipts: dict[int, list[float]], closes: datetime) -> float:
    """Seconds from the close to the last call that reached the provider (<= 0: none after)."""
    times = [t for ts in receipts.values() for t in ts]
    return max(times) - closes.timestamp() if times else float("-inf")


def due_of(msg: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(msg["datetime_send"]).replace("Z", "+00:00"))


def assert_unsent_wait_for_tomorrow(msgs: list[dict[str, Any]], opens: datetime) -> int:
    unsent = [x for x in msgs if x["status"] == "SC"]
    tomorrow = opens + timedelta(days=1)
    for x in unsent:
        assert abs((due_of(x) - tomorrow).total_seconds()) < 1, (x, tomorrow)
    return len(unsent)


def report(name: str, late: float, sent: int, waiting: int) -> None:
    shown = "none after the close" if late <= 0 else f"{late * 1000:.0f} ms after the close"
    print(f"\n[send window] {name}: {sent} sent in the window, {waiting} wait for tomorrow; "
          f"latest call: {shown}")  # fmt: skip


def all_messages(api: httpx.Client, mailing_id: int, n: int) -> list[dict[str, Any]]:
    msgs = messages(api, mailing_id)
    assert len(msgs) == n, len(msgs)
    return msgs


def settled_for_now(api: httpx.Client, mailing_id: int, n: int) -> list[dict[str, Any]]:
    """The messages once every one is delivered or waits for a later window (none due now)."""
    msgs = all_messages(api, mailing_id, n)
    soon = now() + timedelta(hours=1)
    assert all(x["status"] == "DL" or due_of(x) > soon for x in msgs), [
        (x["status"], x["datetime_send"]) for x in msgs if x["status"] != "DL"
    ][:5]
    return msgs


def sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def windowed_mailing(
    api: httpx.Client, tag: str, window_start: str, window_end: str, **fields: Any
) -> dict[str, Any]:
    """A mailing to ``tag`` with a local send window, ending in two days (so tomorrow's window
    is still before the end)."""
    return create_mailing(
        api, client_filter=tag, datetime_end=iso(now() + timedelta(days=2)),
        send_interval_time_start=window_start, send_interval_time_end=window_end, **fields,
    )  # fmt: skip
