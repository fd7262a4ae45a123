"""kill -9 in the middle of a mailing: nothing lost; the dispatcher repeats at most the calls
it had on the wire (DISPATCH_CONCURRENCY)."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from tests.e2e.e2e_support import (
    create_mailing,
    eventually,
    import_clients,
    mailing,
    messages,
    unique_tag,
)
from tests.e2e.system_support import System

N = 10_000
CONCURRENCY = 50  # DISPATCH_CONCURRENCY: also the bound on duplicates after a kill -9

pytestmark = pytest.mark.service_env(
    {
        "DISPATCH_PREFETCH": "4",
        "DISPATCH_CONCURRENCY": str(CONCURRENCY),
        # Twenty chunks for the scheduler's kill to land in the middle of.
        "SCHEDULER_RESOLVE_CHUNK": "500",
    }
)


def test_dispatcher_killed_mid_mailing_loses_nothing(system: System) -> None:
    tag = unique_tag()
    with system.api() as api, system.provider() as provider:
        import_clients(api, tag, N, 901)
        provider.post("/_reset")
        provider.post("/_control", json={"latency_ms": 5})
        m = create_mailing(api, client_filter=tag)

        def some_sent() -> None:
            assert provider.get("/_inspect").json()["unique_ids"] >= N // 4

        eventually(some_sent, timeout=120, every=0.05)
        system.group.kill9("dispatcher")
        killed = time.time()
        seen_at_kill = provider.get("/_inspect").json()["unique_ids"]
        assert seen_at_kill < N, "the mailing finished before the kill: make it slower"
        system.start("dispatcher")
        restarted = time.time()

        def all_delivered() -> None:
            got = mailing(api, m["id"])
            assert got["delivered_messages"] == N, got

        eventually(all_delivered, timeout=240, every=0.5)
        completed = time.time()
        info = provider.get("/_inspect").json()
        journal = provider.get("/_inspect/messages").json()
        after = [t for entry in journal.values() for t in entry["times"] if t >= restarted]
        figures = {
            "sent_before_kill": seen_at_kill,
            "restart_s": round(restarted - killed, 2),  # kill -> the new process is healthy
            "provider_after_restart_s": round(min(after) - restarted, 2) if after else None,
            "completed_after_restart_s": round(completed - restarted, 2),
            "duplicates": info["duplicates"],
            "duplicate_ids": info["duplicate_ids"],
        }
        print(f"\nkill9_figures {json.dumps(figures)}")
        assert info["unique_ids"] == N  # every msgId reached the provider
        ids = [x["id"] for x in messages(api, m["id"])]
        assert len(ids) == len(set(ids)) == N
        provider.post("/_control", json={"latency_ms": 0})
        # A duplicate is a call on the wire when the dispatcher died: its outcome was never
        # recorded, so it is made again once the dead process's claims expire. A call keeps its
        # concurrency slot until its outcome is recorded: at most DISPATCH_CONCURRENCY of them.
        assert info["duplicates"] <= CONCURRENCY, figures


def test_scheduler_killed_while_resolving_gives_each_recipient_one_message(
    system: System,
) -> None:
    tag = unique_tag()
    with system.api() as api:
        import_clients(api, tag, N, 902)
        # Let the scheduler project the imported clients first, then kill it mid-resolution.
        time.sleep(3)
        m = create_mailing(api, client_filter=tag, datetime_start="2099-01-01T00:00:00Z",
                           datetime_end="2099-01-02T00:00:00Z")  # fmt: skip
        # Killed between two chunks of the resolution, or in one: some committed, not all.
        cursor = eventually(lambda: _resolution_cursor(system), timeout=60, every=0.01)
        system.group.kill9("scheduler")
        system.start("scheduler")
        print(f"\nscheduler killed with the resolution's cursor at client {cursor}")

        def resolved() -> None:
            got = mailing(api, m["id"])
            assert got["clients_count"] == N, got
            assert got["scheduled_messages"] == N

        eventually(resolved, timeout=120, every=0.5)
        msgs = messages(api, m["id"])
        assert len(msgs) == N
        assert len({x["client_id"] for x in msgs}) == N
        assert len({x["id"] for x in msgs}) == N


def _resolution_cursor(system: System) -> int:
    with psycopg.connect(system.env.database_url) as conn:
        row = conn.execute("SELECT after_client FROM scheduler_resolutions").fetchone()
    assert row is not None and row[0] is not None, "no chunk committed yet"
    return int(row[0])
