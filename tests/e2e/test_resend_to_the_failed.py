"""Resend to the recipients a mailing failed, through every service: the follow-up's audience
is exactly the original's recipients in the chosen statuses (clients deleted since left out),
each mailing keeps its own counters, and the two are linked both ways."""

from __future__ import annotations

from datetime import timedelta

import httpx

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
from tests.e2e.system_support import System


def test_a_follow_up_retries_exactly_the_failed_recipients(
    system: System, provider: httpx.Client
) -> None:
    tag = unique_tag()
    with system.api() as api:
        clients = [create_client(api, tag=tag) for _ in range(6)]
        bystander = create_client(api, tag=tag + "x")  # same base, not a recipient
        provider.post("/_control", json={"reject_rate": 1.0})
        original = create_mailing(api, client_filter=f"{tag}, {tag}x", text="First try")
        eventually(lambda: assert_counter(api, original["id"], "undelivered_messages", 7), 30)
        provider.post("/_control", json={"reject_rate": 0})
        assert api.delete(f"/api/v1/clients/{clients[0]['id']}/").status_code == 204
        assert api.delete(f"/api/v1/clients/{bystander['id']}/").status_code == 204

        created = api.post(
            f"/api/v1/mailings/{original['id']}/resend/", json={"text": "Second try"}
        )
        assert created.status_code == 201, created.text
        follow_up = created.json()
        assert (follow_up["source_mailing_id"], follow_up["source_statuses"]) == (
            original["id"], ["ND"]
        )  # fmt: skip
        assert follow_up["client_filter"] is None and follow_up["text"] == "Second try"
        done = eventually(lambda: assert_counter(api, follow_up["id"], "delivered_messages", 5), 30)
        assert done["clients_count"] == 5
        retried = {m["client_id"] for m in messages(api, follow_up["id"])}
        assert retried == {c["id"] for c in clients[1:]}
        sent = provider.get(
            "/_inspect/messages", params={"ids": ",".join(str(m["id"]) for m in
                                                           messages(api, follow_up["id"]))}
        ).json()  # fmt: skip
        assert sorted(v["count"] for v in sent.values()) == [1] * 5

        # Each keeps its own counters; the original shows its follow-up's outcome.
        detail = mailing(api, original["id"])
        assert (detail["undelivered_messages"], detail["delivered_messages"]) == (7, 0)
        (shown,) = detail["follow_ups"]
        assert shown["id"] == follow_up["id"]
        assert (shown["delivered_messages"], shown["state"]) == (5, "finished")
        stats = api.get(f"/api/v1/mailings/{original['id']}/stats/").json()
        assert stats["messages"]["ND"] == 7 and stats["messages"]["DL"] == 0


def test_cancelled_recipients_only_when_asked(system: System) -> None:
    tag = unique_tag()
    with system.api() as api:
        for _ in range(3):
            create_client(api, tag=tag)
        start = now() + timedelta(hours=1)
        original = create_mailing(api, client_filter=tag, datetime_start=iso(start),
                                  datetime_end=iso(start + timedelta(hours=3)))  # fmt: skip
        eventually(lambda: assert_counter(api, original["id"], "clients_count", 3), 30)
        assert api.post(f"/api/v1/mailings/{original['id']}/cancel/").status_code == 200
        eventually(lambda: assert_counter(api, original["id"], "cancelled_messages", 3), 30)

        only_nd = api.post(f"/api/v1/mailings/{original['id']}/resend/")
        assert only_nd.status_code == 201, only_nd.text
        with_ca = api.post(
            f"/api/v1/mailings/{original['id']}/resend/", json={"statuses": ["CA", "ND"]}
        ).json()
        assert with_ca["source_statuses"] == ["ND", "CA"]
        # The original's window and text, a start now, the original's three hours of duration.
        assert with_ca["text"] == original["text"]
        eventually(lambda: assert_counter(api, with_ca["id"], "delivered_messages", 3), 30)
        resolved = eventually(lambda: _resolved(api, only_nd.json()["id"]), timeout=30)
        assert resolved["clients_count"] == 0


def _resolved(api: httpx.Client, mailing_id: int) -> dict[str, object]:
    m = mailing(api, mailing_id)
    assert m["state"] == "finished", m  # no recipient: finished as soon as resolved
    return m
