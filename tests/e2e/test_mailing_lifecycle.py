"""Editing, deleting, cancelling, pausing and resuming mailings; the end reached mid-way."""

from __future__ import annotations

import time
from datetime import timedelta

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


def test_edit_and_delete_before_start(system: System) -> None:
    tag, other = unique_tag(), unique_tag()
    with system.api() as api:
        a = create_client(api, tag=tag)
        b = create_client(api, tag=other)
        start = now() + timedelta(hours=1)
        m = create_mailing(api, client_filter=tag, datetime_start=iso(start),
                           datetime_end=iso(start + timedelta(hours=1)))  # fmt: skip
        assert m["state"] == "scheduled"
        eventually(lambda: _assert_recipients(api, m["id"], {a["id"]}))
        resp = api.patch(f"/api/v1/mailings/{m['id']}/", json={"client_filter": other})
        assert resp.status_code == 200, resp.text
        assert resp.json()["client_filter"] == other
        eventually(lambda: _assert_recipients(api, m["id"], {b["id"]}))
        assert api.delete(f"/api/v1/mailings/{m['id']}/").status_code == 204
        assert api.get(f"/api/v1/mailings/{m['id']}/").status_code == 404


def _assert_recipients(api: object, mailing_id: int, clients: set[int]) -> None:
    msgs = messages(api, mailing_id)  # type: ignore[arg-type]
    assert {x["client_id"] for x in msgs} == clients
    assert {x["status"] for x in msgs} == {"SC"}


def test_started_mailing_refuses_edits_except_its_end(system: System) -> None:
    tag = unique_tag()
    with system.api() as api:
        create_client(api, tag=tag, time_zone="UTC")
        # Started, but its only recipient's window opens in two hours: it stays running.
        later = now() + timedelta(hours=2)
        m = create_mailing(
            api,
            client_filter=tag,
            send_interval_time_start=later.strftime("%H:00"),
            send_interval_time_end=(later + timedelta(hours=1)).strftime("%H:00"),
        )
        resp = api.patch(f"/api/v1/mailings/{m['id']}/", json={"text": "changed"})
        assert resp.status_code == 400
        assert "text" in resp.json() or "detail" in resp.json()
        assert api.delete(f"/api/v1/mailings/{m['id']}/").status_code == 400
        new_end = iso(now() + timedelta(hours=3))
        resp = api.patch(f"/api/v1/mailings/{m['id']}/", json={"datetime_end": new_end})
        assert resp.status_code == 200, resp.text


def test_pause_holds_sending_resume_releases_cancel_stops(system: System) -> None:
    tag = unique_tag()
    with system.api() as api:
        for _ in range(5):
            create_client(api, tag=tag)
        start = now() + timedelta(seconds=3)
        m = create_mailing(api, client_filter=tag, datetime_start=iso(start))
        resp = api.post(f"/api/v1/mailings/{m['id']}/pause/")
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"] == "paused"
        assert api.post(f"/api/v1/mailings/{m['id']}/pause/").status_code == 400
        time.sleep(max(0.0, (start - now()).total_seconds()) + 1.5)
        paused = mailing(api, m["id"])
        assert paused["delivered_messages"] == 0 and paused["scheduled_messages"] == 5
        resp = api.post(f"/api/v1/mailings/{m['id']}/resume/")
        assert resp.status_code == 200, resp.text
        eventually(lambda: assert_counter(api, m["id"], "delivered_messages", 5), timeout=30)

        # Cancel another one while it is held: its unsent messages become CA.
        m2 = create_mailing(api, client_filter=tag, datetime_start=iso(now() + timedelta(hours=1)))
        eventually(lambda: assert_counter(api, m2["id"], "scheduled_messages", 5))
        resp = api.post(f"/api/v1/mailings/{m2['id']}/cancel/")
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"] == "cancelled"
        eventually(lambda: assert_counter(api, m2["id"], "cancelled_messages", 5))
        assert {x["status"] for x in messages(api, m2["id"])} == {"CA"}
        assert api.post(f"/api/v1/mailings/{m2['id']}/resume/").status_code == 400


def test_end_reached_mid_way_cancels_what_is_unsent(system: System) -> None:
    tag = unique_tag()
    with system.api() as api:
        for _ in range(4):
            create_client(api, tag=tag)
        # Held (paused) from before its start until after its end: nothing may be sent.
        m = create_mailing(api, client_filter=tag,
                           datetime_start=iso(now() + timedelta(seconds=2)),
                           datetime_end=iso(now() + timedelta(seconds=5)))  # fmt: skip
        assert api.post(f"/api/v1/mailings/{m['id']}/pause/").status_code == 200
        eventually(lambda: assert_counter(api, m["id"], "cancelled_messages", 4), timeout=30)
        final = mailing(api, m["id"])
        assert final["state"] == "finished"
        assert final["delivered_messages"] == 0
        assert {x["status"] for x in messages(api, m["id"])} == {"CA"}
