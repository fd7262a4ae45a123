"""Opt-outs through every service: a listed phone is left out of the audience (and the forecast
counts it apart); a phone that opts out after the start, here by answering STOP through the
provider's inbound callback, has its unsent message cancelled (CA, reason opted_out) and is
never called, even when its message is already with the dispatcher; coming off the list after
the start brings nothing back."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.e2e.e2e_support import (
    assert_counter,
    create_client,
    create_mailing,
    eventually,
    iso,
    messages,
    now,
    unique_tag,
)
from tests.e2e.system_support import System

INBOUND_TOKEN = "inbound-e2e-token-0123456789abcdef0123"

# Two calls a second: a due batch waits at the dispatcher long enough to opt out mid-batch.
pytestmark = pytest.mark.service_env({"INBOUND_TOKEN": INBOUND_TOKEN, "DISPATCH_RATE_LIMIT": "2"})


def test_a_listed_phone_gets_no_message_and_the_forecast_says_so(
    system: System, provider: httpx.Client
) -> None:
    tag = unique_tag()
    with system.api() as api:
        clients = [create_client(api, tag=tag) for _ in range(3)]
        listed = clients[1]
        added = api.post("/api/v1/opt-outs/", json={"phone": listed["phone"], "reason": "asked"})
        assert added.status_code == 201, added.text

        body = {
            "text": "Hello",
            "datetime_start": iso(now()),
            "datetime_end": iso(now() + timedelta(hours=1)),
            "client_filter": tag,
        }
        forecast = api.post("/api/v1/mailings/preview/", json=body).json()
        assert (forecast["audience"]["total"], forecast["audience"]["opted_out"]) == (2, 1)

        sent = create_mailing(api, client_filter=tag)
        done = eventually(lambda: assert_counter(api, sent["id"], "delivered_messages", 2), 30)
        assert done["clients_count"] == 2
        assert {m["client_id"] for m in messages(api, sent["id"])} == {
            c["id"] for c in clients if c is not listed
        }


def test_stop_after_the_start_cancels_the_unsent_message(system: System) -> None:
    tag = unique_tag()
    # The clients' window opens two hours from now: their messages wait, scheduled.
    opens = (now() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    closes = opens + timedelta(hours=1)
    with (
        system.api() as api,
        httpx.Client(
            base_url=system.gateway_url, headers={"Authorization": f"Bearer {INBOUND_TOKEN}"}
        ) as inbound,
    ):
        clients = [create_client(api, tag=tag, time_zone="UTC") for _ in range(3)]
        stopper = clients[0]
        started = create_mailing(
            api,
            client_filter=tag,
            datetime_start=iso(now() - timedelta(minutes=1)),
            datetime_end=iso(now() + timedelta(days=1)),
            send_interval_time_start=opens.strftime("%H:%M"),
            send_interval_time_end=closes.strftime("%H:%M"),
        )
        eventually(lambda: assert_counter(api, started["id"], "clients_count", 3), 30)

        answer = inbound.post(
            "/api/v1/inbound/", json={"phone": int(stopper["phone"]), "text": "Stop"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"opted_out": True, "stop_word": "stop"}
        eventually(lambda: assert_counter(api, started["id"], "cancelled_messages", 1), 30)
        by_client = {m["client_id"]: m for m in messages(api, started["id"])}
        assert by_client[stopper["id"]]["status"] == "CA"
        assert by_client[stopper["id"]]["last_error"] == "opted_out"
        assert {by_client[c["id"]]["status"] for c in clients[1:]} == {"SC"}
        listed = api.get(f"/api/v1/opt-outs/{stopper['phone']}/").json()
        assert (listed["source"], listed["reason"]) == ("inbound", "Stop")

        # Off the list again after the start: the audience is fixed, the message stays CA.
        assert api.delete(f"/api/v1/opt-outs/{stopper['phone']}/").status_code == 204
        unchanged = assert_counter(api, started["id"], "cancelled_messages", 1)
        assert unchanged["clients_count"] == 3


def test_an_opt_out_stops_calls_already_with_the_dispatcher(
    system: System, provider: httpx.Client
) -> None:
    tag = unique_tag()
    with system.api() as api:
        clients = [create_client(api, tag=tag) for _ in range(10)]
        sending = create_mailing(api, client_filter=tag)
        # One due batch of ten, sent at two a second: once the first is delivered the rest
        # are with the dispatcher, waiting for the rate. Then every phone opts out (in bulk).
        eventually(lambda: _at_least(api, sending["id"], "delivered_messages", 1), 30)
        body = "phone,reason\n" + "".join(f"{c['phone']},bulk\n" for c in clients)
        imported = api.post(
            "/api/v1/opt-outs/import", content=body, headers={"Content-Type": "text/csv"}
        )
        assert imported.status_code == 200 and imported.json()["created"] == 10, imported.text

        def settled() -> dict[str, object]:
            m = api.get(f"/api/v1/mailings/{sending['id']}/").json()
            assert m["delivered_messages"] + m["cancelled_messages"] == 10, m
            return dict(m)

        done = eventually(settled, 30)
        assert int(done["cancelled_messages"]) >= 3, done  # type: ignore[call-overload]
        cancelled = [m["id"] for m in messages(api, sending["id"]) if m["status"] == "CA"]
        calls = provider.get(
            "/_inspect/messages", params={"ids": ",".join(map(str, cancelled))}
        ).json()
        assert all(calls.get(str(i), {}).get("count", 0) == 0 for i in cancelled), calls


def _at_least(api: httpx.Client, mailing_id: int, key: str, n: int) -> None:
    m = api.get(f"/api/v1/mailings/{mailing_id}/").json()
    assert m[key] >= n, m
