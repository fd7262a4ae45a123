"""A base just imported is targetable at once: a mailing POSTed right after the import answers
reaches all of it, one message per client.

The import appends its clients in batch events (clients.imported, 500 clients each), so the
scheduler has projected the whole base by the time it reaches the mailing's event behind them.
"""

from __future__ import annotations

import time

from tests.e2e.e2e_support import create_mailing, eventually, mailing, messages, unique_tag
from tests.e2e.system_support import System

N = 20_000
ZONES = ("Europe/Moscow", "Asia/Vladivostok", "UTC", "America/New_York")


def test_a_mailing_posted_right_after_an_import_reaches_all_of_it(system: System) -> None:
    tag = unique_tag()
    rows = "".join(f"7958{i:07d},{tag},{ZONES[i % len(ZONES)]}\n" for i in range(N))
    with system.api() as api, system.provider() as provider:
        started = time.monotonic()
        resp = api.post(
            "/api/v1/clients/import",
            content=("phone,tag,time_zone\n" + rows).encode(),
            headers={"Content-Type": "text/csv"},
            timeout=300,
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["created"] == N
        imported_s = time.monotonic() - started
        m = create_mailing(api, client_filter=tag)  # at once: no waiting for the projections
        posted = time.time()

        def all_delivered() -> dict[str, int]:
            got = mailing(api, m["id"])
            assert got["delivered_messages"] == N, {k: v for k, v in got.items() if "_" in k}
            return got

        got = eventually(all_delivered, timeout=300, every=0.5)
        assert (got["clients_count"], got["created_messages"]) == (N, N)
        assert got["undelivered_messages"] == got["cancelled_messages"] == 0
        msgs = messages(api, m["id"])
        assert len(msgs) == N
        assert len({x["client_id"] for x in msgs}) == N  # one message per client
        assert {x["status"] for x in msgs} == {"DL"}
        seen = provider.get("/_inspect").json()
        assert (seen["unique_ids"], seen["duplicates"]) == (N, 0)
        print(
            f"\nimport of {N:,} clients: {imported_s:.1f} s; first receipt "
            f"{seen['first_at'] - posted:.1f} s after the mailing's POST, last "
            f"{seen['last_at'] - posted:.1f} s"
        )
