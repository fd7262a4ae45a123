"""Rebuilding projections in end-to-end tests: a varied history through the real stack, the
tables' contents as the events determine them, and ``sms-replay`` run as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg

from tests.e2e.e2e_support import (
    assert_counter,
    create_client,
    create_mailing,
    eventually,
    import_clients,
    iso,
    mailing,
    now,
    unique_phone,
    unique_tag,
)
from tests.e2e.system_support import System

# Not something the events determine (as table.column), each with why:
BOOKKEEPING = frozenset(
    {
        # Written by a projection's own clock when it handles an event.
        "reporter_mailings.updated_at",
        "scheduler_mailings.updated_at",
        "scheduler_messages.updated_at",
        # A resolution job's place in the queue and its progress (a rebuilt job starts over).
        "scheduler_resolutions.requested_at",
        "scheduler_resolutions.after_client",
        # Which dispatcher process claimed the call: the claim's state (operational, carried
        # over at a swap), not the call's record.
        "dispatcher_attempts.owner",
    }
)

Rows = dict[str, list[tuple[Any, ...]]]


def table_rows(database_url: str, tables: Iterable[str]) -> Rows:
    """Every row of each table, in every column but the bookkeeping ones, in a stable order."""
    out: Rows = {}
    with psycopg.connect(database_url) as conn:
        for table in tables:
            cols = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND table_name = %s"
                    " ORDER BY ordinal_position",
                    (table,),
                )
                if f"{table}.{r[0]}" not in BOOKKEEPING
            ]
            assert cols, f"no table {table}"
            listed = ", ".join(cols)
            out[table] = conn.execute(
                f"SELECT {listed} FROM {table} ORDER BY {listed}"  # type: ignore[arg-type]
            ).fetchall()
    return out


def settled_rows(database_url: str, tables: Iterable[str], timeout: float = 60) -> Rows:
    """The tables once they stopped changing (the same twice, a second apart)."""
    tables = list(tables)
    last = table_rows(database_url, tables)

    def same_a_second_later() -> Rows:
        nonlocal last
        time.sleep(1)
        now_rows = table_rows(database_url, tables)
        stable, last = now_rows == last, now_rows
        assert stable, "still changing"
        return now_rows

    return eventually(same_a_second_later, timeout=timeout, every=0)


def assert_same_rows(live: Rows, rebuilt: Rows) -> None:
    for table in live:
        missing = sorted(set(live[table]) - set(rebuilt[table]), key=repr)[:5]
        extra = sorted(set(rebuilt[table]) - set(live[table]), key=repr)[:5]
        assert live[table] == rebuilt[table], f"{table}: live only {missing}, rebuilt only {extra}"


def run_replay(
    system: System, projection: str, *extra: str, env: Mapping[str, str] | None = None
) -> str:
    """``sms-replay <projection>`` as a separate process, as an operator runs it (with the
    services' environment, or ``env``); its output."""
    command = Path(sys.executable).parent / "sms-replay"
    done = subprocess.run(
        [str(command), projection, *extra],
        env={**os.environ, **(env or system.service_env)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@contextmanager
def provider_behaving(system: System, **control: Any) -> Iterator[None]:
    """The fake provider set to ``control`` inside the block, healthy again after it."""
    with system.provider() as provider:
        provider.post("/_control", json=control).raise_for_status()
        try:
            yield
        finally:
            provider.post("/_control", json={"failure_rate": 0, "reject_rate": 0,
                                              "down": False, "timeout_rate": 0,
                                              "429_rate": 0})  # fmt: skip


@dataclass
class History:
    """What ``varied_history`` made: its mailings by what happened to them."""

    mailings: Mapping[str, int]


def _ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code in (200, 201, 204), resp.text
    return dict(resp.json()) if resp.content else {}


def varied_history(system: System) -> History:
    """Clients created, edited, moved to another zone, deleted and imported; opt-outs
    recorded, removed and imported; mailings
    delivered through retries, undelivered, rejected, edited, paused and resumed, cancelled,
    deleted, left paused; every one settled when this returns."""
    tag, other = unique_tag(), unique_tag()
    with system.api() as api:
        clients = [create_client(api, tag=tag, time_zone="Europe/Moscow") for _ in range(6)]
        _ok(api.patch(f"/api/v1/clients/{clients[0]['id']}/", json={"tag": other}))
        _ok(api.patch(f"/api/v1/clients/{clients[1]['id']}/", json={"time_zone": "Asia/Tokyo"}))
        _ok(api.delete(f"/api/v1/clients/{clients[2]['id']}/"))
        import_clients(api, tag, 20, prefix=int(time.time()) % 900 + 100)
        # The suppression list (phones outside the base, so the audiences below stay as they
        # are): recorded, removed, imported.
        _ok(api.post("/api/v1/opt-outs/", json={"phone": unique_phone(), "reason": "asked"}))
        _ok(api.post("/api/v1/opt-outs/", json={"phone": (gone := unique_phone())}))
        _ok(api.delete(f"/api/v1/opt-outs/{gone}/"))
        listed = f"phone,reason\n{unique_phone()},bulk\n{unique_phone()},\n"
        _ok(api.post("/api/v1/opt-outs/import", content=listed,
                     headers={"Content-Type": "text/csv"}))  # fmt: skip
        audience = 6 - 2 + 20
        made: dict[str, int] = {}

        with provider_behaving(system, failure_rate=0.3, **{"429_rate": 0.05}):
            made["retried"] = create_mailing(api, client_filter=tag)["id"]
            eventually(lambda: assert_counter(api, made["retried"], "delivered_messages",
                                              audience), timeout=90)  # fmt: skip
        with provider_behaving(system, down=True):
            made["undelivered"] = create_mailing(
                api, client_filter=other, datetime_end=iso(now() + timedelta(seconds=5))
            )["id"]
            eventually(lambda: assert_counter(api, made["undelivered"], "undelivered_messages",
                                              1), timeout=60)  # fmt: skip
        with provider_behaving(system, reject_rate=1):
            made["rejected"] = create_mailing(api, client_filter=other)["id"]
            eventually(lambda: assert_counter(api, made["rejected"], "undelivered_messages", 1))

        later = now() + timedelta(hours=1)
        window = {"datetime_start": iso(later), "datetime_end": iso(later + timedelta(hours=1))}
        made["cancelled"] = create_mailing(api, client_filter=tag, **window)["id"]
        mid = made["cancelled"]
        _ok(api.patch(f"/api/v1/mailings/{mid}/", json={"text": "Edited text"}))
        eventually(lambda: assert_counter(api, mid, "scheduled_messages", audience))
        _ok(api.post(f"/api/v1/mailings/{mid}/pause/"))
        _ok(api.post(f"/api/v1/mailings/{mid}/resume/"))
        _ok(api.post(f"/api/v1/mailings/{mid}/cancel/"))
        eventually(lambda: assert_counter(api, mid, "cancelled_messages", audience))

        made["deleted"] = create_mailing(api, client_filter=tag, **window)["id"]
        eventually(lambda: assert_counter(api, made["deleted"], "scheduled_messages", audience))
        _ok(api.delete(f"/api/v1/mailings/{made['deleted']}/"))

        # A send window with no moment before the end: its audience is left out, with why.
        local = later.astimezone(ZoneInfo("Europe/Moscow"))
        made["left_out"] = create_mailing(
            api,
            client_filter=tag,
            send_interval_time_start=(local + timedelta(hours=3)).strftime("%H:%M:00"),
            send_interval_time_end=(local + timedelta(hours=4)).strftime("%H:%M:00"),
            **window,
        )["id"]

        made["held"] = create_mailing(api, client_filter=tag, **window)["id"]
        eventually(lambda: assert_counter(api, made["held"], "scheduled_messages", audience))
        # Another audience before the start: the first one's messages are withdrawn.
        _ok(api.patch(f"/api/v1/mailings/{made['held']}/", json={"client_filter": other}))
        eventually(lambda: assert_counter(api, made["held"], "scheduled_messages", 1))
        _ok(api.post(f"/api/v1/mailings/{made['held']}/pause/"))

        start = now() + timedelta(seconds=2)
        made["resumed"] = create_mailing(api, client_filter=tag, datetime_start=iso(start))["id"]
        _ok(api.post(f"/api/v1/mailings/{made['resumed']}/pause/"))
        time.sleep(max(0.0, (start - now()).total_seconds()) + 1)
        _ok(api.post(f"/api/v1/mailings/{made['resumed']}/resume/"))
        eventually(lambda: assert_counter(api, made["resumed"], "delivered_messages",
                                          audience), timeout=60)  # fmt: skip
        assert mailing(api, made["retried"])["state"] == "finished"
    return History(made)
