"""Shared by the mailing tests: valid bodies, the response shapes, and reads of the stream."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

MAILING_KEYS = [
    "id", "datetime_start", "datetime_end", "send_interval_time_start", "send_interval_time_end",
    "text", "client_filter", "clients_count", "scheduled_messages", "created_messages",
    "delivered_messages", "undelivered_messages", "cancelled_messages", "created_at",
    "updated_at", "state", "encoding", "characters", "segments", "source_mailing_id",
    "source_statuses",
]  # fmt: skip
DETAIL_KEYS = [*MAILING_KEYS, "mailing_messages", "messages_url", "follow_ups"]
MESSAGE_KEYS = ["id", "datetime_send", "status", "mailing_id", "client_id", "attempts",
                "last_error", "created_at", "updated_at"]  # fmt: skip
COUNTERS = ["clients_count", "scheduled_messages", "created_messages", "delivered_messages",
            "undelivered_messages", "cancelled_messages"]  # fmt: skip
STATES = {"scheduled", "running", "paused", "finished", "cancelled"}
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
TIME = re.compile(r"^\d{2}:\d{2}:\d{2}$")
URL = "/api/v1/mailings/"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def from_now(**delta: float) -> str:
    return iso(datetime.now(UTC) + timedelta(**delta))


def body(**fields: Any) -> dict[str, Any]:
    """A valid body: starts in an hour, ends in two."""
    return {"datetime_start": from_now(hours=1), "datetime_end": from_now(hours=2),
            "text": "Some text"} | fields  # fmt: skip


def started(**fields: Any) -> dict[str, Any]:
    """A valid body of a mailing that started a minute ago."""
    return body(datetime_start=from_now(minutes=-1), **fields)


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post(URL, json=body(**fields))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_mailing_shape(mailing: dict[str, Any], keys: list[str] = MAILING_KEYS) -> None:
    assert list(mailing) == keys  # the same keys, in the same order
    assert isinstance(mailing["id"], int)
    for stamp in ("datetime_start", "datetime_end", "created_at", "updated_at"):
        assert isinstance(mailing[stamp], str) and ISO_Z.match(mailing[stamp]), stamp
    for bound in ("send_interval_time_start", "send_interval_time_end"):
        assert mailing[bound] is None or TIME.match(mailing[bound]), bound
    assert isinstance(mailing["text"], str)
    assert mailing["client_filter"] is None or isinstance(mailing["client_filter"], str)
    for counter in COUNTERS:
        assert type(mailing[counter]) is int, counter
    assert mailing["state"] in STATES


def assert_message_shape(message: dict[str, Any]) -> None:
    assert list(message) == MESSAGE_KEYS
    assert message["status"] in {"SC", "DL", "ND", "CA"}
    for stamp in ("datetime_send", "created_at", "updated_at"):
        assert ISO_Z.match(message[stamp]), stamp


async def stream(pool: asyncpg.Pool, mailing_id: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT stream_version, type, data, metadata FROM events WHERE stream_id = $1"
        " ORDER BY stream_version",
        f"mailing-{mailing_id}",
    )


async def version(pool: asyncpg.Pool, mailing_id: int) -> int | None:
    value = await pool.fetchval("SELECT version FROM gateway_mailings WHERE id = $1", mailing_id)
    return int(value) if value is not None else None
