"""The old README's mailing examples: same statuses and shapes, plus state and the messages."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from ..reporter_support import ReporterDouble
from .mailing_support import (
    DETAIL_KEYS,
    URL,
    assert_mailing_shape,
    assert_message_shape,
    body,
    create,
    from_now,
    started,
)


async def test_create_mailing_answers_like_the_seed(client: httpx.AsyncClient) -> None:
    start, end = from_now(minutes=-5), from_now(days=20)
    response = await client.post(
        URL, json={"datetime_start": start, "datetime_end": end, "text": "Some text"}
    )
    assert response.status_code == 201
    created = response.json()
    assert_mailing_shape(created)
    assert created | {"id": 0, "created_at": "", "updated_at": ""} == {
        "id": 0, "datetime_start": start, "datetime_end": end, "send_interval_time_start": None,
        "send_interval_time_end": None, "text": "Some text", "client_filter": None,
        "clients_count": 0, "scheduled_messages": 0, "created_messages": 0,
        "delivered_messages": 0, "undelivered_messages": 0, "cancelled_messages": 0,
        "created_at": "", "updated_at": "", "state": "running",
        "encoding": "GSM-7", "characters": 9, "segments": 1, "source_mailing_id": None,
        "source_statuses": None,
    }  # fmt: skip


async def test_all_fields_are_stored_and_rendered_like_drf(client: httpx.AsyncClient) -> None:
    created = await create(
        client,
        datetime_start="2099-03-12T12:14:00+03:00",
        datetime_end="2099-03-12T20:15:00.5",  # no zone: UTC
        send_interval_time_start="22:00",
        send_interval_time_end="06:00:30",
        text="  Text  ",
        client_filter=" 123, tag ",
    )
    assert_mailing_shape(created)
    assert (created["datetime_start"], created["datetime_end"]) == (
        "2099-03-12T09:14:00Z", "2099-03-12T20:15:00.500000Z"
    )  # fmt: skip
    assert (created["send_interval_time_start"], created["send_interval_time_end"]) == (
        "22:00:00", "06:00:30"
    )  # fmt: skip
    assert (created["text"], created["client_filter"], created["state"]) == (
        "Text", "123, tag", "scheduled"
    )  # fmt: skip
    fetched = (await client.get(f"{URL}{created['id']}/")).json()
    assert {k: fetched[k] for k in created} == created


async def test_detail_shows_the_reporters_counters_and_newest_100_messages(
    client: httpx.AsyncClient, reporter: ReporterDouble
) -> None:
    created = await create(client, **started())
    mid = created["id"]
    reporter.set_counters(mid, clients_count=150, created_messages=150, delivered_messages=149,
                          undelivered_messages=1)  # fmt: skip
    messages = reporter.set_messages(mid, ["DL"] * 149 + ["ND"])
    response = await client.get(f"{URL}{mid}/")
    assert response.status_code == 200
    detail = response.json()
    assert_mailing_shape(detail, DETAIL_KEYS)
    assert {k: detail[k] for k in ("clients_count", "created_messages", "delivered_messages",
                                   "undelivered_messages", "scheduled_messages")} == {
        "clients_count": 150, "created_messages": 150, "delivered_messages": 149,
        "undelivered_messages": 1, "scheduled_messages": 0,
    }  # fmt: skip
    assert detail["state"] == "finished"  # started, audience resolved, nothing left to send
    assert len(detail["mailing_messages"]) == 100
    assert [m["id"] for m in detail["mailing_messages"]] == [m["id"] for m in messages[:100]]
    for message in detail["mailing_messages"]:
        assert_message_shape(message)
    assert detail["mailing_messages"][0]["status"] == "ND"
    assert detail["messages_url"] == f"http://testserver/api/v1/mailings/{mid}/messages/"
    for key in ("id", "datetime_start", "datetime_end", "text", "created_at", "updated_at"):
        assert detail[key] == created[key]


async def test_a_mailing_the_reporter_has_not_seen_yet_has_zero_counters(
    client: httpx.AsyncClient,
) -> None:
    created = await create(client)
    detail = (await client.get(f"{URL}{created['id']}/")).json()
    assert detail["state"] == "scheduled"
    assert detail["mailing_messages"] == []
    assert {k: detail[k] for k in created} == created


async def test_a_started_mailing_is_running_until_every_message_is_final(
    client: httpx.AsyncClient, reporter: ReporterDouble
) -> None:
    mid = (await create(client, **started()))["id"]
    reporter.set_counters(mid, resolved=False)  # audience not resolved yet
    assert (await client.get(f"{URL}{mid}/")).json()["state"] == "running"
    reporter.set_counters(mid, clients_count=2, created_messages=2, scheduled_messages=1,
                          delivered_messages=1)  # fmt: skip
    assert (await client.get(f"{URL}{mid}/")).json()["state"] == "running"
    reporter.set_counters(mid, clients_count=2, created_messages=2, delivered_messages=1,
                          cancelled_messages=1)  # fmt: skip
    assert (await client.get(f"{URL}{mid}/")).json()["state"] == "finished"


async def test_list_is_newest_first_in_pages_with_one_counters_call_per_page(
    client: httpx.AsyncClient, reporter: ReporterDouble
) -> None:
    ids = [(await create(client, text=f"m{i}"))["id"] for i in range(30)]
    reporter.set_counters(ids[-1], clients_count=7, created_messages=7, scheduled_messages=7)
    calls = len(reporter.calls)
    first = (await client.get(URL)).json()
    assert list(first) == ["count", "next", "previous", "results"]
    assert first["count"] >= 30
    assert first["previous"] is None
    assert first["next"] == "http://testserver/api/v1/mailings/?page=2"
    assert [m["id"] for m in first["results"]] == list(reversed(ids))[:25]
    for mailing in first["results"]:
        assert_mailing_shape(mailing)
    assert first["results"][0]["scheduled_messages"] == 7
    assert first["results"][1]["scheduled_messages"] == 0
    (call,) = reporter.calls[calls:]
    assert call.path == "/internal/v1/mailings/counters"
    assert sorted(map(int, call.query["ids"].split(","))) == sorted(ids[-25:])

    second = (await client.get(first["next"])).json()
    assert [m["id"] for m in second["results"]][:5] == list(reversed(ids))[25:]
    assert second["previous"] == "http://testserver/api/v1/mailings/"

    small = (await client.get(URL, params={"page_size": 3, "page": 2})).json()
    assert [m["id"] for m in small["results"]] == list(reversed(ids))[3:6]
    capped = await client.get(URL, params={"page_size": 5000})
    assert len(capped.json()["results"]) == min(1000, capped.json()["count"])
    last = (await client.get(URL, params={"page": "last", "page_size": 1})).json()
    assert last["next"] is None and len(last["results"]) == 1
    for page in ("0", "x", "100000"):
        missing = await client.get(URL, params={"page": page})
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Invalid page."}


async def test_messages_are_paginated_and_filtered_by_status(
    client: httpx.AsyncClient, reporter: ReporterDouble
) -> None:
    mid = (await create(client, **started()))["id"]
    messages = reporter.set_messages(mid, ["DL", "ND", "SC", "CA", "DL", "DL", "SC"])
    url = f"{URL}{mid}/messages/"
    everything = (await client.get(url)).json()
    assert list(everything) == ["count", "next", "previous", "results"]
    assert everything["count"] == 7 and everything["next"] is None
    assert [m["id"] for m in everything["results"]] == [m["id"] for m in messages]
    for message in everything["results"]:
        assert_message_shape(message)

    delivered = (await client.get(url, params={"status": "DL", "page_size": 2})).json()
    assert delivered["count"] == 3
    assert [m["status"] for m in delivered["results"]] == ["DL", "DL"]
    following = parse_qs(urlsplit(delivered["next"]).query)  # filters kept, a cursor added
    assert following.keys() == {"status", "page_size", "cursor"}
    assert (following["status"], following["page_size"]) == (["DL"], ["2"])
    rest = (await client.get(delivered["next"])).json()
    assert len(rest["results"]) == 1 and rest["next"] is None and rest["previous"]
    last = (await client.get(url, params={"status": "DL", "page_size": 2, "page": "last"})).json()
    assert last["results"] == rest["results"]
    assert (await client.get(url, params={"status": ""})).json()["count"] == 7
    for status, count in (("SC", 2), ("ND", 1), ("CA", 1)):
        assert (await client.get(url, params={"status": status})).json()["count"] == count
    beyond = await client.get(url, params={"page": 5})
    assert (beyond.status_code, beyond.json()) == (404, {"detail": "Invalid page."})


async def test_an_unknown_status_is_400_naming_status(client: httpx.AsyncClient) -> None:
    mid = (await create(client))["id"]
    for bad in ("XX", "dl", "WD"):
        response = await client.get(f"{URL}{mid}/messages/", params={"status": bad})
        assert response.status_code == 400
        assert response.json() == {
            "status": [f'"{bad}" is not a valid choice; use one of SC, DL, ND, CA.']
        }


async def test_paths_without_trailing_slash_work_without_redirect(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(URL.rstrip("/"), json=body())
    assert response.status_code == 201
    mid = response.json()["id"]
    requests: list[tuple[str, str, Any]] = [
        ("GET", f"{URL}{mid}", None), ("GET", f"{URL}{mid}/messages", None),
        ("PATCH", f"{URL}{mid}", {"text": "x"}), ("PUT", f"{URL}{mid}", body()),
        ("POST", f"{URL}{mid}/pause", None), ("POST", f"{URL}{mid}/resume", None),
        ("POST", f"{URL}{mid}/cancel", None), ("GET", URL.rstrip("/"), None),
    ]  # fmt: skip
    for method, url, payload in requests:
        answer = await client.request(method, url, json=payload)
        assert answer.status_code == 200, (method, url, answer.text)
    assert (await client.delete(f"{URL}{mid}")).status_code == 204
