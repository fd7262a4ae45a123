"""Helpers for end-to-end tests: unique data, polling until the system shows a result."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

T = TypeVar("T")


def unique_phone() -> str:
    return f"7{random.randint(100, 999)}{random.randint(0, 9_999_999):07d}"


def unique_tag() -> str:
    return f"e2e{random.randint(0, 10**9)}"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


def eventually(check: Callable[[], T], timeout: float = 60, every: float = 0.2) -> T:
    """Call ``check`` until it stops raising AssertionError; return its value."""
    for attempt in Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(every),
        retry=retry_if_exception_type(AssertionError),
        reraise=True,
    ):
        with attempt:
            return check()
    raise AssertionError("unreachable")


def create_client(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"phone": unique_phone(), **fields}
    resp = api.post("/api/v1/clients/", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def import_clients(api: httpx.Client, tag: str, n: int, prefix: int) -> None:
    """Import ``n`` clients tagged ``tag`` in one CSV; their phones are 7<prefix:03d><i:07d>,
    so tests that pick different prefixes never collide."""
    rows = "".join(f"7{prefix:03d}{i:07d},{tag},Europe/Moscow\n" for i in range(n))
    resp = api.post("/api/v1/clients/import", content=("phone,tag,time_zone\n" + rows).encode(),
                    headers={"Content-Type": "text/csv"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == n


def create_mailing(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {
        "datetime_start": iso(now() - timedelta(seconds=5)),
        "datetime_end": iso(now() + timedelta(hours=1)),
        "text": "Some text",
        **fields,
    }
    resp = api.post("/api/v1/mailings/", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def mailing(api: httpx.Client, mailing_id: int) -> dict[str, Any]:
    resp = api.get(f"/api/v1/mailings/{mailing_id}/")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def messages(api: httpx.Client, mailing_id: int, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        resp = api.get(
            f"/api/v1/mailings/{mailing_id}/messages/",
            params={"page": page, "page_size": 1000, **params},
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        out += body["results"]
        if not body["next"]:
            return out
        page += 1


def counters(m: dict[str, Any]) -> dict[str, int]:
    keys = ("clients_count", "scheduled_messages", "created_messages", "delivered_messages",
            "undelivered_messages", "cancelled_messages")  # fmt: skip
    return {k: m[k] for k in keys}


def assert_counter(api: httpx.Client, mailing_id: int, key: str, n: int) -> dict[str, Any]:
    """The mailing, once its counter ``key`` equals ``n`` (for ``eventually``)."""
    got = mailing(api, mailing_id)
    assert got[key] == n, got
    return got


def recipients(api: httpx.Client, mailing_id: int, n: int) -> list[dict[str, Any]]:
    """The mailing's messages, once there are exactly ``n`` (for ``eventually``)."""
    msgs = messages(api, mailing_id)
    assert len(msgs) == n, msgs
    return msgs
