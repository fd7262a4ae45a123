"""Mailing commands: edits and deletion before the start, only the end after it, cancel, pause
and resume by state; each change one event on mailing-<id>, in one transaction with the read
model, carrying the request id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import structlog
from structlog.testing import capture_logs

from gateway.mailings.rules import END_IN_THE_PAST, STARTED
from sms_events.contracts import MailingUpdated
from sms_events.store import EventStore

from ..reporter_support import ReporterDouble
from .mailing_support import URL, body, create, from_now, started, stream, version

Unchanged = Callable[[], Any]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_create_edit_delete_append_events_with_the_request_id(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    ids = [f"req-{uuid4().hex}" for _ in range(4)]
    created = await client.post(
        URL,
        json=body(client_filter="956, vip", send_interval_time_start="09:00",
                  send_interval_time_end="21:00"),
        headers={"X-Request-ID": ids[0]},
    )  # fmt: skip
    assert created.headers["X-Request-ID"] == ids[0]
    mailing = created.json()
    mid, url = mailing["id"], f"{URL}{mailing['id']}/"
    assert await version(pool, mid) == 1

    patched = await client.patch(url, json={"text": "New text"}, headers={"X-Request-ID": ids[1]})
    assert (patched.status_code, patched.json()["text"]) == (200, "New text")
    assert _utc(patched.json()["updated_at"]) > _utc(mailing["updated_at"])
    new = body(text="Put text")
    put = await client.put(url, json=new, headers={"X-Request-ID": ids[2]})
    assert put.status_code == 200
    # PUT keeps the optional fields it leaves out, as the old API (and client PUT) do.
    assert (put.json()["client_filter"], put.json()["send_interval_time_start"]) == (
        "956, vip", "09:00:00"
    )  # fmt: skip
    assert await version(pool, mid) == 3
    deleted = await client.delete(url, headers={"X-Request-ID": ids[3]})
    assert deleted.status_code == 204 and deleted.content == b""
    assert await version(pool, mid) is None
    assert (await client.get(url)).status_code == 404

    events = await stream(pool, mid)
    assert [(e["stream_version"], e["type"]) for e in events] == [
        (1, "mailing.scheduled"), (2, "mailing.updated"), (3, "mailing.updated"),
        (4, "mailing.deleted"),
    ]  # fmt: skip
    assert [e["metadata"]["correlation_id"] for e in events] == ids
    first = events[0]["data"]
    assert first | {"updated_at": None} == {
        "mailing_id": mid, "text": "Some text", "datetime_start": first["datetime_start"],
        "datetime_end": first["datetime_end"], "send_interval_time_start": "09:00:00",
        "send_interval_time_end": "21:00:00", "client_filter": "956, vip", "updated_at": None,
        "source_mailing_id": None, "source_statuses": None,
    }  # fmt: skip
    assert _utc(first["datetime_start"]) == _utc(mailing["datetime_start"])
    assert events[1]["data"]["text"] == "New text"
    assert _utc(events[2]["data"]["datetime_end"]) == _utc(new["datetime_end"])
    assert events[3]["data"]["mailing_id"] == mid and events[3]["data"]["deleted_at"]


async def test_a_change_to_nothing_appends_no_event(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    mailing = await create(client, send_interval_time_start="09:00",
                           send_interval_time_end="10:00")  # fmt: skip
    url = f"{URL}{mailing['id']}/"
    same_start = datetime.fromisoformat(mailing["datetime_start"]).astimezone().isoformat()
    for change in ({}, {"text": " Some text "}, {"send_interval_time_start": "09:00:00"},
                   {"datetime_start": same_start}, {"id": 1, "clients_count": 99}):  # fmt: skip
        response = await client.patch(url, json=change)
        assert response.status_code == 200
        assert response.json() == mailing  # updated_at untouched too
    put = {k: mailing[k] for k in ("datetime_start", "datetime_end", "text")}
    assert (await client.put(url, json=put)).json() == mailing
    assert len(await stream(pool, mailing["id"])) == 1


async def test_a_started_mailing_refuses_edits_and_deletion(
    client: httpx.AsyncClient, unchanged: Unchanged
) -> None:
    mailing = await create(client, **started())
    url = f"{URL}{mailing['id']}/"
    async with unchanged():
        for change in ({"text": "changed"}, {"client_filter": "vip"},
                       {"text": "changed", "datetime_end": from_now(hours=5)},
                       {"datetime_start": from_now(minutes=10)}):  # fmt: skip
            response = await client.patch(url, json=change)
            assert (response.status_code, response.json()) == (400, {"detail": STARTED}), change
        response = await client.put(url, json=body(text="changed"))
        assert (response.status_code, response.json()) == (400, {"detail": STARTED})
        deleted = await client.delete(url)
        assert deleted.status_code == 400
        assert deleted.json() == {
            "detail": "The mailing has started and can no longer be deleted; cancel it instead."
        }
    assert (await client.get(url)).status_code == 200


async def test_the_end_of_a_started_mailing_may_move_while_it_is_not_final(
    client: httpx.AsyncClient, pool: asyncpg.Pool, reporter: ReporterDouble, unchanged: Unchanged
) -> None:
    mailing = await create(client, **started())
    mid, url = mailing["id"], f"{URL}{mailing['id']}/"
    later = from_now(hours=7)
    moved = await client.patch(url, json={"datetime_end": later})
    assert moved.status_code == 200, moved.text
    assert (_utc(moved.json()["datetime_end"]), moved.json()["state"]) == (_utc(later), "running")
    # A full PUT with the same fields and a new end is the same change.
    put = {k: mailing[k] for k in ("datetime_start", "text")} | {"datetime_end": from_now(hours=8)}
    assert (await client.put(url, json=put)).status_code == 200
    events = await stream(pool, mid)
    types = [e["type"] for e in events]
    assert types == ["mailing.scheduled", "mailing.updated", "mailing.updated"]
    async with unchanged():
        past = await client.patch(url, json={"datetime_end": from_now(minutes=-0.5)})
        assert (past.status_code, past.json()) == (400, {"datetime_end": [END_IN_THE_PAST]})
        # Every message final: finished early, and the end stays where it is.
        reporter.set_counters(mid, clients_count=1, created_messages=1, delivered_messages=1)
        final = await client.patch(url, json={"datetime_end": from_now(hours=9)})
        assert (final.status_code, final.json()) == (
            400, {"detail": "The mailing is finished: it can no longer be changed."}
        )  # fmt: skip


async def test_pause_resume_and_cancel_follow_the_state(
    client: httpx.AsyncClient, pool: asyncpg.Pool, unchanged: Unchanged
) -> None:
    mailing = await create(client)
    mid, base = mailing["id"], f"{URL}{mailing['id']}"

    async def command(name: str, expect: int = 200) -> dict[str, Any]:
        response = await client.post(f"{base}/{name}/")
        assert response.status_code == expect, (name, response.text)
        result: dict[str, Any] = response.json()
        return result

    assert (await command("pause"))["state"] == "paused"
    async with unchanged():
        assert await command("pause", 400) == {
            "detail": "A paused mailing cannot be paused: it is already paused."
        }
    assert (await command("resume"))["state"] == "scheduled"
    async with unchanged():
        assert await command("resume", 400) == {
            "detail": "A scheduled mailing cannot be resumed: it is not paused."
        }
    # A paused mailing can still be edited before its start, and cancelled.
    await command("pause")
    assert (await client.patch(f"{base}/", json={"text": "held"})).json()["state"] == "paused"
    cancelled = await command("cancel")
    assert cancelled["state"] == "cancelled" and cancelled["text"] == "held"
    async with unchanged():
        assert await command("cancel", 400) == {
            "detail": "A cancelled mailing cannot be cancelled: it is already cancelled."
        }
        assert await command("resume", 400) == {"detail": "A cancelled mailing cannot be resumed."}
        assert await command("pause", 400) == {"detail": "A cancelled mailing cannot be paused."}
        edit = await client.patch(f"{base}/", json={"datetime_end": from_now(hours=3)})
        assert edit.json() == {"detail": "The mailing is cancelled: it can no longer be changed."}
    assert (await client.get(f"{base}/")).json()["state"] == "cancelled"

    events = await stream(pool, mid)
    assert [(e["stream_version"], e["type"]) for e in events] == [
        (1, "mailing.scheduled"), (2, "mailing.paused"), (3, "mailing.resumed"),
        (4, "mailing.paused"), (5, "mailing.updated"), (6, "mailing.cancelled"),
    ]  # fmt: skip
    assert set(events[1]["data"]) == {"mailing_id", "paused_at"}
    assert set(events[2]["data"]) == {"mailing_id", "resumed_at"}
    assert set(events[5]["data"]) == {"mailing_id", "cancelled_at"}
    row = await pool.fetchrow(
        "SELECT paused, cancelled_at, version FROM gateway_mailings WHERE id = $1", mid
    )
    assert row is not None
    assert (row["paused"], row["cancelled_at"] is not None, row["version"]) == (True, True, 6)
    # A cancelled mailing that has not started may still be deleted.
    assert (await client.delete(f"{base}/")).status_code == 204


async def test_a_running_mailing_can_be_paused_resumed_and_cancelled(
    client: httpx.AsyncClient, reporter: ReporterDouble
) -> None:
    mid = (await create(client, **started()))["id"]
    reporter.set_counters(mid, clients_count=3, created_messages=3, scheduled_messages=2,
                          delivered_messages=1)  # fmt: skip
    paused = (await client.post(f"{URL}{mid}/pause/")).json()
    assert (paused["state"], paused["scheduled_messages"]) == ("paused", 2)
    assert (await client.post(f"{URL}{mid}/resume/")).json()["state"] == "running"
    assert (await client.post(f"{URL}{mid}/cancel/")).json()["state"] == "cancelled"


async def test_a_finished_mailing_refuses_every_command(
    client: httpx.AsyncClient, reporter: ReporterDouble, unchanged: Unchanged
) -> None:
    mid = (await create(client, **started()))["id"]
    reporter.set_counters(mid, clients_count=1, created_messages=1, undelivered_messages=1)
    async with unchanged():
        for name, past in (("cancel", "cancelled"), ("pause", "paused"), ("resume", "resumed")):
            response = await client.post(f"{URL}{mid}/{name}/")
            assert response.status_code == 400
            assert response.json() == {"detail": f"A finished mailing cannot be {past}."}


async def test_read_model_and_events_commit_together(
    client: httpx.AsyncClient, pool: asyncpg.Pool, store: EventStore
) -> None:
    mailing = await create(client)
    mid = mailing["id"]
    # Someone else appends to the stream behind the read model's back: the gateway's append
    # at the version it read fails every time, and its read-model write rolls back with it.
    await store.append(
        f"mailing-{mid}",
        [MailingUpdated(mailing_id=mid, text="foreign", datetime_start=datetime.now(UTC),
                        datetime_end=datetime.now(UTC), updated_at=datetime.now(UTC))],
    )  # fmt: skip
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        for request in (client.patch(f"{URL}{mid}/", json={"text": "mine"}),
                        client.post(f"{URL}{mid}/pause/")):  # fmt: skip
            response = await request
            assert response.status_code == 409
            assert response.json() == {
                "detail": "The mailing was changed by another request at the same time; retry."
            }
    row = await pool.fetchrow("SELECT text, paused, version FROM gateway_mailings WHERE id = $1",
                              mid)  # fmt: skip
    assert row is not None
    assert (row["text"], row["paused"], row["version"]) == ("Some text", False, 1)
    assert len(await stream(pool, mid)) == 2
    conflicts = [e for e in logs if e["event"] == "command_conflict"]
    assert conflicts and all(e["mailing_id"] == mid and e["subject"] == "mailing"
                             for e in conflicts)  # fmt: skip


async def test_concurrent_commands_on_one_mailing_serialise(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    mid = (await create(client))["id"]
    url = f"{URL}{mid}/"
    responses = await asyncio.gather(
        *(client.patch(url, json={"text": f"text {i}"}) for i in range(12)),
        client.post(f"{url}pause/"),
    )
    assert [r.status_code for r in responses] == [200] * 13
    events = await stream(pool, mid)
    assert [e["stream_version"] for e in events] == list(range(1, 15))
    assert await version(pool, mid) == 14
    final = (await client.get(url)).json()
    assert (
        final["text"] == [e for e in events if e["type"] == "mailing.updated"][-1]["data"]["text"]
    )
    assert final["state"] == "paused"


async def test_command_log_lines_name_the_mailing(client: httpx.AsyncClient) -> None:
    mid = (await create(client))["id"]
    with capture_logs() as logs:
        await client.post(f"{URL}{mid}/pause/", headers={"X-Request-ID": "pause-1"})
        await client.patch(f"{URL}{mid}/", json={"text": "secret words"})
    lines = [e for e in logs if e["event"] == "http_request"]
    assert [(e["command"], e["mailing_id"], e["status"]) for e in lines] == [
        ("pause", mid, 200), ("patch", mid, 200)
    ]  # fmt: skip
    assert "secret words" not in repr(logs)  # bodies are never logged


async def test_window_bounds_round_trip_through_the_read_model(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    mid = (await create(client, send_interval_time_start="22:00",
                        send_interval_time_end="06:00"))["id"]  # fmt: skip
    row = await pool.fetchrow(
        "SELECT send_interval_time_start, send_interval_time_end FROM gateway_mailings"
        " WHERE id = $1",
        mid,
    )
    assert row is not None
    assert (row[0], row[1]) == (time(22), time(6))
    cleared = await client.patch(
        f"{URL}{mid}/", json={"send_interval_time_start": None, "send_interval_time_end": None}
    )
    assert cleared.json()["send_interval_time_start"] is None
