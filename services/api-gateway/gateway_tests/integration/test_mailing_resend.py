"""POST /api/v1/mailings/{id}/resend/: a follow-up mailing linked both ways, with the
original's text, window and duration unless given; the same 400s as a create; 404 for an
unknown original."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from gateway.mailings.rules import STATUSES_MESSAGE
from sms_events.contracts import MailingScheduled

from ..reporter_support import ReporterDouble
from .gateway_support import Snapshot
from .mailing_support import URL, create, from_now, iso, stream


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_follow_up_keeps_the_originals_text_window_and_duration(
    client: httpx.AsyncClient, pool: asyncpg.Pool, reporter: ReporterDouble
) -> None:
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    original = await create(
        client, datetime_start=iso(began), datetime_end=iso(began + timedelta(hours=4)),
        send_interval_time_start="22:00", send_interval_time_end="06:00", client_filter="vip",
        text="Sale",
    )  # fmt: skip
    before = datetime.now(UTC)
    response = await client.post(f"{URL}{original['id']}/resend/")
    assert response.status_code == 201, response.text
    follow_up = response.json()
    assert follow_up["source_mailing_id"] == original["id"]
    assert follow_up["source_statuses"] == ["ND"]
    assert (follow_up["text"], follow_up["client_filter"]) == ("Sale", None)
    assert (follow_up["send_interval_time_start"], follow_up["send_interval_time_end"]) == (
        "22:00:00", "06:00:00"
    )  # fmt: skip
    start = _utc(follow_up["datetime_start"])
    assert before <= start <= datetime.now(UTC)
    assert _utc(follow_up["datetime_end"]) - start == timedelta(hours=4)
    assert original["source_mailing_id"] is None
    (event,) = await stream(pool, follow_up["id"])
    assert event["type"] == MailingScheduled.event_type
    assert (event["data"]["source_mailing_id"], event["data"]["source_statuses"]) == (
        original["id"], ["ND"]
    )  # fmt: skip

    # Given fields win; CA may be added (the answer lists statuses in one order).
    second = (
        await client.post(
            f"{URL}{original['id']}/resend/",
            json={"statuses": ["CA", "ND"], "text": "Last chance",
                  "send_interval_time_start": None, "send_interval_time_end": None,
                  "datetime_start": from_now(hours=1), "client_filter": "ignored"},
        )
    ).json()  # fmt: skip
    assert second["source_statuses"] == ["ND", "CA"]
    assert (second["text"], second["send_interval_time_start"], second["client_filter"]) == (
        "Last chance", None, None
    )  # fmt: skip
    assert _utc(second["datetime_end"]) - _utc(second["datetime_start"]) == timedelta(hours=4)

    # The original's detail lists its follow-ups with their own counters.
    reporter.set_counters(follow_up["id"], clients_count=5, created_messages=5,
                          delivered_messages=4, undelivered_messages=1)  # fmt: skip
    detail = (await client.get(f"{URL}{original['id']}/")).json()
    assert [f["id"] for f in detail["follow_ups"]] == [follow_up["id"], second["id"]]
    first = detail["follow_ups"][0]
    assert (first["delivered_messages"], first["undelivered_messages"], first["state"]) == (
        4, 1, "finished"
    )  # fmt: skip
    assert detail["delivered_messages"] == 0  # the original's counters are its own
    assert (await client.get(f"{URL}{follow_up['id']}/")).json()["follow_ups"] == []


async def test_bad_requests_and_unknown_originals(
    client: httpx.AsyncClient, unchanged: Callable[[], Snapshot]
) -> None:
    original = await create(client)
    url = f"{URL}{original['id']}/resend/"
    async with unchanged():
        for statuses in ([], ["DL"], "ND", [None]):
            bad = await client.post(url, json={"statuses": statuses})
            assert (bad.status_code, bad.json()) == (400, {"statuses": [STATUSES_MESSAGE]})
        past = await client.post(url, json={"datetime_end": from_now(hours=-1)})
        assert past.status_code == 400
        assert set(past.json()) == {"datetime_end"}
        long = await client.post(url, json={"text": "", "statuses": ["ND"]})
        assert (long.status_code, list(long.json())) == (400, ["text"])
        assert (await client.post(f"{URL}999999999/resend/")).status_code == 404
        assert (await client.post(f"{URL}abc/resend/")).status_code == 404
        assert (await client.post(url, json=[1])).status_code == 400
