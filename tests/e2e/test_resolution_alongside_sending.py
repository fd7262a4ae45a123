"""A large audience is resolved in chunks, each in a short transaction of its own, so another
mailing keeps sending meanwhile: its messages never stall for more than a second. Figures
(the longest gap between two of its provider receipts while the large one resolved, and how
long the resolution took) are printed."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import psycopg
import pytest

from tests.e2e.e2e_support import (
    create_mailing,
    eventually,
    import_clients,
    iso,
    mailing,
    now,
    unique_tag,
)
from tests.e2e.system_support import System

BIG = 60_000
SMALL = 400
RATE = 50  # the small mailing takes eight seconds at this rate
STALL_S = 1.0

pytestmark = pytest.mark.service_env(
    {"DISPATCH_RATE_LIMIT": str(RATE), "SCHEDULER_RESOLVE_CHUNK": "2000"}
)


def _projected(database_url: str, n: int) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM scheduler_clients").fetchone()
    assert row is not None and row[0] >= n, row


def _receipts(provider: httpx.Client) -> list[float]:
    journal = provider.get("/_inspect/messages").json()
    return sorted(t for entry in journal.values() for t in entry["times"])


def test_a_large_resolution_does_not_stall_a_mailing_that_is_sending(system: System) -> None:
    big_tag, small_tag = unique_tag(), unique_tag()
    with system.api() as api, system.provider() as provider:
        import_clients(api, big_tag, BIG, 904)
        import_clients(api, small_tag, SMALL, 905)
        eventually(lambda: _projected(system.env.database_url, BIG + SMALL), timeout=240)
        provider.post("/_reset")
        small = create_mailing(api, client_filter=small_tag)
        eventually(lambda: _at_least(provider, RATE), timeout=30, every=0.05)

        started = time.time()
        # Starts tomorrow: resolving it is all the work it makes today.
        big = create_mailing(
            api, client_filter=big_tag, datetime_start=iso(now() + timedelta(days=1)),
            datetime_end=iso(now() + timedelta(days=2)),
        )  # fmt: skip

        def resolved() -> None:
            assert mailing(api, big["id"])["scheduled_messages"] == BIG

        eventually(resolved, timeout=120, every=0.2)
        resolved_at = time.time()
        eventually(lambda: _at_least(provider, SMALL), timeout=60)

        def small_delivered() -> None:
            assert mailing(api, small["id"])["delivered_messages"] == SMALL

        eventually(small_delivered, timeout=30)

        receipts = _receipts(provider)
        # While both ran: from the large one's POST until it was resolved or the small one
        # had sent its last.
        until = min(resolved_at, receipts[-1])
        during = [t for t in receipts if started <= t <= until]
        gaps = [b - a for a, b in zip([started, *during], [*during, until], strict=True)]
        figures = {
            "resolution_s": round(resolved_at - started, 2),
            "overlap_s": round(until - started, 2),
            "small_sent_during": len(during),
            "longest_gap_s": round(max(gaps), 3),
        }
        print(f"\nresolution_figures {json.dumps(figures)}")
        assert len(during) >= RATE, figures  # they did run side by side for a while
        assert max(gaps) <= STALL_S, figures


def _at_least(provider: httpx.Client, n: int) -> None:
    assert provider.get("/_inspect").json()["unique_ids"] >= n
