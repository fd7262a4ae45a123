"""The seed README's mailing example, end to end through every service."""

from __future__ import annotations

import httpx

from tests.e2e.e2e_support import counters, create_client, create_mailing, eventually, mailing
from tests.e2e.system_support import System


def test_three_clients_and_a_started_mailing_end_with_three_delivered(system: System) -> None:
    with system.api() as api, system.provider() as provider:
        clients = [create_client(api, phone=f"7123000000{i}") for i in (1, 2, 3)]
        created = create_mailing(api, text="Some text")
        assert set(created) >= {
            "id", "datetime_start", "datetime_end", "send_interval_time_start",
            "send_interval_time_end", "text", "client_filter", "clients_count",
            "scheduled_messages", "created_messages", "delivered_messages",
            "undelivered_messages", "cancelled_messages", "created_at", "updated_at", "state",
            "encoding", "characters", "segments",
        }  # fmt: skip

        def delivered() -> dict[str, object]:
            m = mailing(api, created["id"])
            assert counters(m) == {
                "clients_count": 3, "scheduled_messages": 0, "created_messages": 3,
                "delivered_messages": 3, "undelivered_messages": 0, "cancelled_messages": 0,
            }  # fmt: skip
            # The counters and the messages are two reads of the reporter: a batch it commits
            # between them shows the counters ahead, so both are awaited.
            assert {msg["status"] for msg in m["mailing_messages"]} == {"DL"}  # type: ignore[union-attr]
            return m

        detail = eventually(delivered, timeout=30)
        assert detail["state"] == "finished"
        msgs = detail["mailing_messages"]
        assert {m["client_id"] for m in msgs} == {c["id"] for c in clients}
        assert {m["status"] for m in msgs} == {"DL"}
        assert set(msgs[0]) >= {"id", "datetime_send", "status", "mailing_id", "client_id",
                                "attempts", "last_error", "created_at", "updated_at"}  # fmt: skip
        assert detail["messages_url"].endswith(f"/api/v1/mailings/{created['id']}/messages/")
        received = provider.get("/_inspect/messages", params={
            "ids": ",".join(str(m["id"]) for m in msgs)}).json()  # fmt: skip
        assert {k: v["count"] for k, v in received.items()} == {str(m["id"]): 1 for m in msgs}


def test_list_shows_the_mailing_with_its_counters(system: System) -> None:
    with system.api() as api:
        resp = api.get("/api/v1/mailings/")
        assert resp.status_code == 200
        body = resp.json()
        assert set(body) == {"count", "next", "previous", "results"}
        assert body["count"] >= 1
        assert "mailing_messages" not in body["results"][0]


def test_mailing_api_needs_a_key(system: System) -> None:
    with httpx.Client(base_url=system.gateway_url) as anonymous:
        assert anonymous.get("/api/v1/mailings/").status_code == 401


def test_statistics_overall_and_per_mailing(system: System) -> None:
    with system.api() as api:
        mailing_id = api.get("/api/v1/mailings/").json()["results"][-1]["id"]

        def per_mailing() -> dict[str, object]:
            resp = api.get(f"/api/v1/mailings/{mailing_id}/stats/")
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["messages"] == {"SC": 0, "DL": 3, "ND": 0, "CA": 0}
            return dict(body)

        body = eventually(per_mailing, timeout=30)
        assert body["delivery_rate"] == 1.0
        assert body["attempts_total"] == 3
        assert body["failures"] == []
        assert sum(m["delivered"] for m in body["sends_per_minute"]) == 3  # type: ignore[attr-defined]
        assert body["time_to_complete_s"] is not None
        assert (body["segments_per_message"], body["segments_sent"]) == (1, 3)  # "Some text"

        overall = api.get("/api/v1/stats/").json()
        assert overall["clients"] >= 3
        assert overall["messages"]["DL"] >= 3
        assert overall["mailings"]["finished"] >= 1
        assert len(overall["sends_per_hour"]) == 24
        assert sum(h["delivered"] for h in overall["sends_per_hour"]) >= 3
        assert len(overall["segments_per_day"]) == 7
        assert overall["segments_per_day"][-1]["segments"] >= 3
        assert api.get("/api/v1/mailings/999999999/stats/").status_code == 404
