"""No call starts outside the client's local window, whatever happens between scheduling and
sending: a creation after today's window, a backlog at the close, a pause across the close, a
retry whose backoff crosses it. Real clock, windows a few seconds long, clients in a zone with
an odd offset (+05:45), and the fake provider's journal as the witness of when calls arrived.

Each test prints the longest time a call reached the provider after its window's close: it
must be no more than a call in flight (the check is at the start of the call)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import httpx
import pytest

from tests.e2e.e2e_support import eventually, iso, messages, now
from tests.e2e.system_support import System
from tests.e2e.window_support import (
    all_messages,
    assert_unsent_wait_for_tomorrow,
    import_in_zone,
    latest_after_close,
    provider_receipts,
    report,
    settled_for_now,
    sleep_until,
    window,
    windowed_mailing,
)

RATE = 20  # messages per second, for every dispatcher replica together
# A call that starts just before the close reaches the provider a moment later (loopback).
IN_FLIGHT_S = 0.5

pytestmark = pytest.mark.service_env({"DISPATCH_RATE_LIMIT": str(RATE)})


def test_created_after_todays_window_sends_nothing_until_tomorrow(system: System) -> None:
    with system.api() as api, system.provider() as provider:
        tag = import_in_zone(api, 20, 811)
        opens, _, start_local, end_local = window(-40, 20)  # closed 20 s ago
        m = windowed_mailing(
            api, tag, start_local, end_local, datetime_start=iso(now() - timedelta(hours=1))
        )
        msgs = eventually(lambda: all_messages(api, m["id"], 20))
        time.sleep(3)  # had the due time been taken from the start, they would be gone now
        ids = [x["id"] for x in msgs]
        assert all(not ts for ts in provider_receipts(provider, ids).values())
        msgs = messages(api, m["id"])
        assert assert_unsent_wait_for_tomorrow(msgs, opens) == 20
        report("created after the close", float("-inf"), 0, 20)


def test_a_backlog_at_the_close_waits_for_the_next_window(system: System) -> None:
    n = 200  # ten seconds of sending at RATE, in a five-second window
    with system.api() as api, system.provider() as provider:
        tag = import_in_zone(api, n, 812)
        opens, closes, start_local, end_local = window(3, 5)
        m = windowed_mailing(api, tag, start_local, end_local)
        sleep_until(closes + timedelta(seconds=3))
        _some_sent_in_the_window_the_rest_wait(
            api, provider, m["id"], n, (opens, closes), "backlog at the close (rate limit)"
        )


def test_a_pause_across_the_close_resumes_in_the_next_window(system: System) -> None:
    n = 200
    with system.api() as api, system.provider() as provider:
        tag = import_in_zone(api, n, 813)
        opens, closes, start_local, end_local = window(3, 5)
        m = windowed_mailing(api, tag, start_local, end_local)
        sleep_until(opens + timedelta(seconds=2))
        assert api.post(f"/api/v1/mailings/{m['id']}/pause/").status_code == 200
        sleep_until(closes + timedelta(seconds=2))
        assert api.post(f"/api/v1/mailings/{m['id']}/resume/").status_code == 200
        time.sleep(3)
        _some_sent_in_the_window_the_rest_wait(
            api, provider, m["id"], n, (opens, closes), "paused in the window, resumed after it"
        )


def test_a_retry_whose_backoff_crosses_the_close_waits_for_the_next_window(
    system: System,
) -> None:
    n = 5
    with system.api() as api, system.provider() as provider:
        tag = import_in_zone(api, n, 814)
        provider.post("/_control", json={"failure_rate": 1.0})
        try:
            opens, closes, start_local, end_local = window(3, 3)
            m = windowed_mailing(api, tag, start_local, end_local)
            sleep_until(closes + timedelta(seconds=3))
        finally:
            provider.post("/_control", json={"failure_rate": 0.0})
        time.sleep(1)
        msgs = eventually(lambda: settled_for_now(api, m["id"], n), timeout=30)
        seen = provider_receipts(provider, [x["id"] for x in msgs])
        late = latest_after_close(seen, closes)
        assert late <= IN_FLIGHT_S, late
        assert all(len(ts) >= 2 for ts in seen.values())  # retried inside the window
        assert assert_unsent_wait_for_tomorrow(msgs, opens) == n
        report("retries crossing the close", late, 0, n)


def _some_sent_in_the_window_the_rest_wait(
    api: httpx.Client,
    provider: httpx.Client,
    mailing_id: int,
    n: int,
    slot: tuple[datetime, datetime],
    name: str,
) -> None:
    """Some messages went inside the window, none started after its close, the rest wait for
    tomorrow's window."""
    opens, closes = slot
    msgs = eventually(lambda: settled_for_now(api, mailing_id, n), timeout=30)
    seen = provider_receipts(provider, [x["id"] for x in msgs])
    late = latest_after_close(seen, closes)
    sent = sum(1 for ts in seen.values() if ts)
    assert late <= IN_FLIGHT_S, late
    assert all(min(ts) >= opens.timestamp() - 0.05 for ts in seen.values() if ts)
    assert 0 < sent < n
    waiting = assert_unsent_wait_for_tomorrow(msgs, opens)
    assert sent + waiting == n
    report(name, late, sent, waiting)
