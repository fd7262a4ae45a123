"""An unreliable provider: retries until delivered, ND when it stays down or rejects."""

from __future__ import annotations

from datetime import timedelta

import httpx

from tests.e2e.e2e_support import (
    create_client,
    create_mailing,
    eventually,
    iso,
    mailing,
    messages,
    now,
    unique_tag,
)
from tests.e2e.system_support import System


def test_provider_failing_30_percent_still_delivers_every_message(
    system: System, provider: httpx.Client
) -> None:
    provider.post("/_control", json={"failure_rate": 0.3, "429_rate": 0.05})
    tag = unique_tag()
    with system.api() as api:
        for _ in range(60):
            create_client(api, tag=tag)
        m = create_mailing(api, client_filter=tag)

        def all_delivered() -> None:
            got = mailing(api, m["id"])
            assert got["delivered_messages"] == 60, got
            assert got["scheduled_messages"] == 0

        eventually(all_delivered, timeout=90)
        msgs = messages(api, m["id"])
        assert {x["status"] for x in msgs} == {"DL"}
        assert any(x["attempts"] > 1 for x in msgs)  # some needed retries
        ids = ",".join(str(x["id"]) for x in msgs)
        seen = provider.get("/_inspect/messages", params={"ids": ids}).json()
        # The same msgId on every retry, and never sent again once delivered.
        assert all(v["statuses"].count(200) == 1 for v in seen.values())


def test_provider_down_until_the_end_leaves_messages_undelivered_with_the_error(
    system: System, provider: httpx.Client
) -> None:
    provider.post("/_control", json={"down": True})
    tag = unique_tag()
    with system.api() as api:
        for _ in range(3):
            create_client(api, tag=tag)
        m = create_mailing(api, client_filter=tag, datetime_end=iso(now() + timedelta(seconds=6)))

        def settled() -> None:
            got = mailing(api, m["id"])
            assert got["undelivered_messages"] == 3, got

        eventually(settled, timeout=60)
        msgs = messages(api, m["id"])
        assert {x["status"] for x in msgs} == {"ND"}
        assert all(x["attempts"] >= 1 and "503" in (x["last_error"] or "") for x in msgs), msgs
        assert mailing(api, m["id"])["state"] == "finished"


def test_a_400_from_the_provider_is_final_without_retries(
    system: System, provider: httpx.Client
) -> None:
    provider.post("/_control", json={"reject_rate": 1.0})
    tag = unique_tag()
    with system.api() as api:
        create_client(api, tag=tag)
        m = create_mailing(api, client_filter=tag)

        def rejected() -> list[dict[str, object]]:
            msgs = messages(api, m["id"])
            assert [x["status"] for x in msgs] == ["ND"]
            return msgs

        (msg,) = eventually(rejected, timeout=30)
        assert msg["attempts"] == 1
        assert "400" in str(msg["last_error"])
        seen = provider.get("/_inspect/messages", params={"ids": msg["id"]}).json()
        assert seen[str(msg["id"])]["count"] == 1
