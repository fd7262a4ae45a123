"""A hand-over recovered after its window closed is not sent late: the dispatcher is frozen
(SIGSTOP) while its due messages wait in the queue, the scheduler takes them back once their
lease is over, the window closes, and when the dispatcher thaws it finds each message outside
its slot. Every message then waits for its client's next window. Real clock, its own system
(a short hand-over lease would disturb the other tests)."""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest

from tests.e2e.e2e_support import eventually
from tests.e2e.system_support import System
from tests.e2e.window_support import (
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

pytestmark = pytest.mark.service_env({"SCHEDULER_LEASE_S": "2"})


def test_a_stale_hand_over_recovered_after_the_close_waits_for_the_next_window(
    system: System,
) -> None:
    n = 30
    with system.api() as api, system.provider() as provider:
        tag = import_in_zone(api, n, 815)
        opens, closes, start_local, end_local = window(2, 3)
        system.group.signal("dispatcher", signal.SIGSTOP)
        try:
            m = windowed_mailing(api, tag, start_local, end_local)
            sleep_until(closes + timedelta(seconds=4))  # handed over, then recovered
        finally:
            system.group.signal("dispatcher", signal.SIGCONT)
        time.sleep(3)  # the thawed dispatcher works through the due events it had
        msgs = eventually(lambda: settled_for_now(api, m["id"], n), timeout=60)
        seen = provider_receipts(provider, [x["id"] for x in msgs])
        late = latest_after_close(seen, closes)
        assert late <= 0, late  # nothing was sent at all: the only window passed frozen
        assert assert_unsent_wait_for_tomorrow(msgs, opens) == n
        report("stale hand-over recovered after the close", late, 0, n)
