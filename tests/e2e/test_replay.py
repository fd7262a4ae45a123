"""``sms-replay``: each service's projections rebuilt from the event store alone equal the live
ones, and live consumption resumes across the swap without missing or repeating an event."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from dispatcher.projections import PROJECTION as DISPATCHER
from gateway.projection import PROJECTION as GATEWAY
from reporter.projection import PROJECTION as REPORTER
from scheduler.projection import PROJECTION as SCHEDULER
from sms_events.testing.environment import TestEnvironment
from sms_events.testing.processes import SERVICES, free_port, wait_http_ok
from sms_events.testing.restore import restore_events
from tests.e2e.e2e_support import (
    assert_counter,
    create_client,
    create_mailing,
    eventually,
    iso,
    mailing,
    messages,
    now,
    unique_tag,
)
from tests.e2e.replay_support import (
    History,
    assert_same_rows,
    run_replay,
    settled_rows,
    table_rows,
    varied_history,
)
from tests.e2e.system_support import System

# Sending paced at 100 messages a second, so that rebuilds run while a mailing sends.
pytestmark = pytest.mark.service_env({"DISPATCH_RATE_LIMIT": "100"})

# Every table each projection rebuilds, but the state it carries over as it is.
REPORTER_TABLES = tuple(t for t in REPORTER.tables if t not in REPORTER.carry)


GATEWAY_TABLES = GATEWAY.tables
SCHEDULER_TABLES = SCHEDULER.tables
# The call records the events determine: claims in flight (no outcome) are carried as they are.
DISPATCHER_TABLES = DISPATCHER.tables


@pytest.fixture(scope="module")
def history(system: System) -> History:
    return varied_history(system)


def _answers(system: System, history: History) -> dict[str, Any]:
    with system.api() as api:
        out: dict[str, Any] = {"stats": api.get("/api/v1/stats/").json()}
        for name, mid in history.mailings.items():
            out[name] = (
                api.get(f"/api/v1/mailings/{mid}/").json(),
                api.get(f"/api/v1/mailings/{mid}/stats/").json(),
            )
    return out


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON answers differ (for the assertion message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d for k in a.keys() | b.keys() for d in _differences(a.get(k), b.get(k), f"{path}.{k}")
        ]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_reporter_rebuilt_from_the_events_equals_the_live_tables(
    system: System, history: History
) -> None:
    live = settled_rows(system.env.database_url, REPORTER_TABLES)
    answers = _answers(system, history)
    assert live["reporter_messages"] and live["reporter_withdrawn_messages"]
    assert live["reporter_mailing_dimensions"] and live["reporter_mailing_latency"]
    out = run_replay(system, "reporter")
    assert "events/s" in out and "ETA" in out and "swapped in at position" in out, out
    assert_same_rows(live, table_rows(system.env.database_url, REPORTER_TABLES))
    again = _answers(system, history)
    assert again == answers, _differences(answers, again)


def test_gateway_read_models_rebuilt_from_the_events_equal_the_live_ones(
    system: System, history: History
) -> None:
    live = settled_rows(system.env.database_url, GATEWAY_TABLES)
    with system.api() as api:
        clients = api.get("/api/v1/clients/", params={"page_size": 1000}).json()
        mailings = api.get("/api/v1/mailings/", params={"page_size": 1000}).json()
    out = run_replay(system, "api-gateway")
    assert "swapped in at position" in out, out
    assert_same_rows(live, table_rows(system.env.database_url, GATEWAY_TABLES))
    with system.api() as api:
        assert api.get("/api/v1/clients/", params={"page_size": 1000}).json() == clients
        assert api.get("/api/v1/mailings/", params={"page_size": 1000}).json() == mailings
        # Ids go on from where they were, deleted ones included: none is given twice.
        newest = max(c["id"] for c in clients["results"])
        assert create_client(api, tag=unique_tag())["id"] > newest
        m = create_mailing(api, client_filter=unique_tag())
        assert m["id"] > max(history.mailings.values())
        assert api.post(f"/api/v1/mailings/{m['id']}/cancel/").status_code == 200


def test_scheduler_rebuilt_from_the_events_equals_the_live_tables(
    system: System, history: History
) -> None:
    live = settled_rows(system.env.database_url, SCHEDULER_TABLES)
    # The history holds every kind of row and state the events must determine.
    states = {row[4] for row in live["scheduler_messages"]}
    assert {"delivered", "undelivered", "cancelled", "scheduled"} <= states, states
    assert any(row[5] > 1 for row in live["scheduler_messages"]), "no retry"
    assert live["scheduler_left_out"] and live["scheduler_deleted_clients"]
    assert live["scheduler_opt_outs"] and any(row[8] for row in live["scheduler_mailings"])
    answers = _answers(system, history)
    appended = _event_count(system)
    out = run_replay(system, "scheduler")
    assert "events/s" in out and "swapped in at position" in out, out
    assert_same_rows(live, table_rows(system.env.database_url, SCHEDULER_TABLES))
    # Nothing in the rebuilt tables gives the live scheduler anything to do (a job left
    # pending, a message not settled): it appends nothing.
    time.sleep(2)
    assert _event_count(system) == appended
    again = _answers(system, history)
    assert again == answers, _differences(answers, again)
    # The rebuilt schedule goes on: a mailing created now is resolved and sent from it.
    with system.api() as api:
        m = create_mailing(api, client_filter=_tag_of(system, history))
        eventually(lambda: assert_counter(api, m["id"], "delivered_messages", 1), 60)


def test_dispatcher_records_rebuilt_from_the_events_equal_the_live_ones(
    system: System, history: History
) -> None:
    live = settled_rows(system.env.database_url, DISPATCHER_TABLES)
    outcomes = {row[2] for row in live["dispatcher_attempts"]}
    assert {"delivered", "retryable", "rejected"} <= outcomes, outcomes
    assert live["dispatcher_mailing_holds"] and live["dispatcher_opt_outs"]
    out = run_replay(system, "dispatcher")
    assert "swapped in at position" in out, out
    assert_same_rows(live, table_rows(system.env.database_url, DISPATCHER_TABLES))


def _event_count(system: System) -> int:
    with psycopg.connect(system.env.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    assert row is not None
    return int(row[0])


def _tag_of(system: System, history: History) -> str:
    """The tag of the "undelivered" mailing's audience: one client."""
    with system.api() as api:
        return str(mailing(api, history.mailings["undelivered"])["client_filter"])


def test_reporter_rebuilt_while_a_mailing_sends_misses_and_repeats_nothing(
    system: System, history: History
) -> None:
    tag = unique_tag()
    with system.api() as api:
        rows = "".join(f"7555{i:07d},{tag},Europe/Moscow\n" for i in range(1500))
        resp = api.post("/api/v1/clients/import", content=f"phone,tag,time_zone\n{rows}".encode(),
                        headers={"Content-Type": "text/csv"})  # fmt: skip
        assert resp.status_code == 200, resp.text
        m = create_mailing(api, client_filter=tag)
        # Two rebuilds while the messages go out (15 s at 100 a second): live batches wait
        # for each swap, then carry on from the position it recorded.
        for _ in range(2):
            run_replay(system, "reporter")
            assert mailing(api, m["id"])["delivered_messages"] < 1500, "sent before the rebuild"
        eventually(lambda: assert_counter(api, m["id"], "delivered_messages", 1500), 90)
        assert mailing(api, m["id"])["scheduled_messages"] == 0
    live = settled_rows(system.env.database_url, REPORTER_TABLES)
    with psycopg.connect(system.env.database_url) as conn:
        # Counters equal a count of the rows they count: nothing applied twice or missed.
        diff = conn.execute(
            """
            SELECT m.mailing_id FROM reporter_mailings m
            LEFT JOIN (SELECT mailing_id, count(*) FILTER (WHERE status = 'DL') AS dl,
                              count(*) FILTER (WHERE status = 'SC') AS sc
                       FROM reporter_messages GROUP BY 1) c USING (mailing_id)
            WHERE m.deleted_at IS NULL
              AND (m.delivered_messages, m.scheduled_messages)
                  IS DISTINCT FROM (coalesce(c.dl, 0), coalesce(c.sc, 0))
            """
        ).fetchall()
        assert diff == []
        totals = dict(conn.execute("SELECT name, value FROM reporter_totals").fetchall())
        by_status = dict(
            conn.execute(
                "SELECT status, count(*) FROM reporter_messages r JOIN reporter_mailings m"
                " USING (mailing_id) WHERE m.deleted_at IS NULL GROUP BY 1"
            ).fetchall()
        )
        assert {k: totals[k] for k in by_status} == by_status
    run_replay(system, "reporter")
    assert_same_rows(live, table_rows(system.env.database_url, REPORTER_TABLES))


def test_scheduler_and_dispatcher_rebuilt_while_a_mailing_sends_lose_and_repeat_nothing(
    system: System, history: History
) -> None:
    tag = unique_tag()
    with system.api() as api:
        rows = "".join(f"7556{i:07d},{tag},Europe/Moscow\n" for i in range(1000))
        resp = api.post("/api/v1/clients/import", content=f"phone,tag,time_zone\n{rows}".encode(),
                        headers={"Content-Type": "text/csv"})  # fmt: skip
        assert resp.status_code == 200, resp.text
        m = create_mailing(api, client_filter=tag)
        # Swaps while the timer hands over, the dispatcher calls and records, and outcomes
        # come back to the scheduler (10 s at 100 a second).
        for name in ("scheduler", "dispatcher"):
            run_replay(system, name)
        assert mailing(api, m["id"])["delivered_messages"] < 1000, "sent before the rebuilds"
        eventually(lambda: assert_counter(api, m["id"], "delivered_messages", 1000), 90)
    url = system.env.database_url
    live = settled_rows(url, (*SCHEDULER_TABLES, *DISPATCHER_TABLES))
    with psycopg.connect(url) as conn:
        # One call delivered per message, and every message of the mailing delivered once.
        calls = conn.execute(
            "SELECT count(*), count(DISTINCT a.message_id) FROM dispatcher_attempts a"
            " JOIN scheduler_messages m USING (message_id)"
            " WHERE m.mailing_id = %s AND a.outcome = 'delivered'",
            (m["id"],),
        ).fetchone()
        assert calls == (1000, 1000)
    for name in ("scheduler", "dispatcher"):
        run_replay(system, name)
    assert_same_rows(live, table_rows(url, (*SCHEDULER_TABLES, *DISPATCHER_TABLES)))


def test_stats_as_of_a_past_moment_come_from_the_history(system: System, history: History) -> None:
    tag = unique_tag()
    with system.api() as api:
        for _ in range(3):
            create_client(api, tag=tag)
        before = now()
        time.sleep(1.1)  # as_of is taken to the second
        later = now() + timedelta(hours=1)
        m = create_mailing(api, client_filter=tag, datetime_start=iso(later),
                           datetime_end=iso(later + timedelta(hours=1)))  # fmt: skip
        eventually(lambda: assert_counter(api, m["id"], "scheduled_messages", 3))
        scheduled_stats = api.get(f"/api/v1/mailings/{m['id']}/stats/").json()
        scheduled_overall = api.get("/api/v1/stats/").json()
        time.sleep(1.1)
        scheduled = now()
        assert api.post(f"/api/v1/mailings/{m['id']}/cancel/").status_code == 200
        eventually(lambda: assert_counter(api, m["id"], "cancelled_messages", 3))
        time.sleep(1.1)
        live = table_rows(system.env.database_url, REPORTER_TABLES)

        def as_of(path: str, moment: datetime) -> dict[str, Any]:
            resp = api.get(path, params={"as_of": iso(moment)})
            assert resp.status_code == 200, resp.text
            return dict(resp.json())

        stats = f"/api/v1/mailings/{m['id']}/stats/"
        assert as_of(stats, before)["messages"] == {"SC": 0, "DL": 0, "ND": 0, "CA": 0}
        assert as_of(stats, scheduled) == scheduled_stats
        assert as_of(stats, scheduled) == scheduled_stats  # again (cached or not: the same)
        assert as_of(stats, now())["messages"] == {"SC": 0, "DL": 0, "ND": 0, "CA": 3}
        overall = as_of("/api/v1/stats/", scheduled)
        for key in ("clients", "mailings", "messages", "delivery_rate"):
            assert overall[key] == scheduled_overall[key], key
        assert (
            as_of("/api/v1/stats/", now())["messages"]
            == api.get("/api/v1/stats/").json()["messages"]
        )
        # Answered from the history: the live projections are as they were.
        assert table_rows(system.env.database_url, REPORTER_TABLES) == live

        for bad, reason in (
            ("yesterday", "ISO 8601"),
            ("2030-01-01T00:00:00", "time zone"),
            (iso(now() + timedelta(hours=1)), "future"),
        ):
            for path in (stats, "/api/v1/stats/"):
                resp = api.get(path, params={"as_of": bad})
                assert resp.status_code == 400, resp.text
                assert reason in resp.json()["as_of"][0], resp.text


def _api_answers(api: httpx.Client, mailing_ids: Iterable[int]) -> dict[str, Any]:
    """What the API answers about the whole history (sends per hour summed: the window moves)."""
    overall = api.get("/api/v1/stats/").json()
    overall["sends_per_hour"] = sum(h["delivered"] + h["failed"] for h in overall["sends_per_hour"])
    out: dict[str, Any] = {
        "clients": api.get("/api/v1/clients/", params={"page_size": 1000}).json(),
        "mailings": api.get("/api/v1/mailings/", params={"page_size": 1000}).json(),
        "stats": overall,
    }
    for mid in mailing_ids:
        out[f"mailing {mid}"] = api.get(f"/api/v1/mailings/{mid}/").json()
        out[f"stats {mid}"] = api.get(f"/api/v1/mailings/{mid}/stats/").json()
        out[f"messages {mid}"] = messages(api, mid)
    # Links name the gateway that answered: the same paths are what counts.
    text = json.dumps(out).replace(str(api.base_url).rstrip("/"), "<gateway>")
    return dict(json.loads(text))


def test_restoring_only_the_events_table_brings_the_api_back_as_it_was(
    system: System, history: History
) -> None:
    settled_rows(system.env.database_url, REPORTER_TABLES)
    # The services that act (scheduler, dispatcher) are not started on the restored database:
    # their tables are compared instead.
    acting = (*SCHEDULER_TABLES, *DISPATCHER_TABLES)
    tables = settled_rows(system.env.database_url, acting)
    with system.api() as api:
        mailing_ids = [m["id"] for m in api.get("/api/v1/mailings/").json()["results"]]
        before = _api_answers(api, mailing_ids)
    restored = TestEnvironment.create([s.module for s in SERVICES])  # migrated, empty
    try:
        restore_events(system.env.database_url, restored.database_url)
        env = {**system.service_env, **restored.env_vars()}
        out = run_replay(system, "all", "--after-restore", env=env)
        assert "history up to" in out and out.count("swapped in at position") == 4, out
        assert_same_rows(tables, table_rows(restored.database_url, acting))
        ports = {"api-gateway": free_port(), "reporter": free_port()}
        env |= {"GATEWAY_PORT": str(ports["api-gateway"]),
                "REPORTER_HTTP_PORT": str(ports["reporter"]),
                "REPORTER_URL": f"http://127.0.0.1:{ports['reporter']}"}  # fmt: skip
        for name, module in (("reporter", "reporter"), ("api-gateway", "gateway")):
            system.group.start(f"restored-{name}", [sys.executable, "-m", module], env)
            wait_http_ok(f"http://127.0.0.1:{ports[name]}/readyz", 60, system.group)
        url = f"http://127.0.0.1:{ports['api-gateway']}"
        with httpx.Client(base_url=url, headers=dict(system.api().headers), timeout=30) as api:
            after = _api_answers(api, mailing_ids)
            assert after == before, _differences(before, after)
    finally:
        for name in ("restored-api-gateway", "restored-reporter"):
            system.group.stop(name)
        restored.destroy()
