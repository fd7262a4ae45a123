"""Every bad mailing request gets an answer the caller can act on (400/401/404/413/415), never
a 500, and stores nothing: no read-model change and no event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway.mailings.rules import (
    DATETIME_MESSAGE,
    END_BEFORE_START,
    END_IN_THE_PAST,
    TIME_MESSAGE,
    WINDOW_EMPTY,
    WINDOW_HALF,
)

from .mailing_support import URL, body, create, from_now

Unchanged = Callable[[], Any]

REQUIRED = ["This field is required."]
NOT_NULL = ["This field may not be null."]
START, END = from_now(hours=1), from_now(hours=2)
VALID = {"datetime_start": START, "datetime_end": END, "text": "Some text"}


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({}, {"datetime_start": REQUIRED, "datetime_end": REQUIRED, "text": REQUIRED}),
        ({"datetime_start": None}, {"datetime_start": NOT_NULL}),
        ({"datetime_end": "next week"}, {"datetime_end": [DATETIME_MESSAGE]}),
        ({"datetime_start": "2030-01-01"}, {"datetime_start": [DATETIME_MESSAGE]}),
        ({"datetime_start": 1893456000}, {"datetime_start": [DATETIME_MESSAGE]}),
        ({"datetime_end": START}, {"datetime_end": [END_BEFORE_START]}),
        ({"datetime_start": from_now(hours=-3), "datetime_end": from_now(hours=-1)},
         {"datetime_end": [END_IN_THE_PAST]}),
        ({"text": ""}, {"text": ["This field may not be blank."]}),
        ({"text": " \n\t "}, {"text": ["This field may not be blank."]}),
        ({"text": None}, {"text": NOT_NULL}),
        ({"text": ["Some text"]}, {"text": ["Not a valid string."]}),
        ({"text": "x" * 1001}, {"text": ["Ensure this field has no more than 1000 characters."]}),
        ({"text": "a\x00b"}, {"text": ["Null characters are not allowed."]}),
        ({"client_filter": 956}, {"client_filter": ["Not a valid string."]}),
        ({"client_filter": "x" * 256},
         {"client_filter": ["Ensure this field has no more than 255 characters."]}),
        ({"send_interval_time_start": "09:00"}, {"send_interval_time_end": [WINDOW_HALF]}),
        ({"send_interval_time_end": "09:00"}, {"send_interval_time_start": [WINDOW_HALF]}),
        ({"send_interval_time_start": "09:00", "send_interval_time_end": "09:00:00"},
         {"send_interval_time_end": [WINDOW_EMPTY]}),
        ({"send_interval_time_start": "9am", "send_interval_time_end": "25:00"},
         {"send_interval_time_start": [TIME_MESSAGE], "send_interval_time_end": [TIME_MESSAGE]}),
        ({"send_interval_time_start": 900, "send_interval_time_end": "10:00"},
         {"send_interval_time_start": [TIME_MESSAGE]}),
    ],
)  # fmt: skip
async def test_create_rejects_invalid_fields(
    client: httpx.AsyncClient, unchanged: Unchanged, fields: dict[str, Any], errors: Any
) -> None:
    payload = {**VALID, **fields} if fields else {}
    async with unchanged():
        response = await client.post(URL, json=payload)
    assert response.status_code == 400
    assert response.json() == errors


@pytest.mark.parametrize("payload", [[VALID], "Some text", 5, True])
async def test_a_body_that_is_not_an_object_is_400(
    client: httpx.AsyncClient, unchanged: Unchanged, payload: Any
) -> None:
    async with unchanged():
        response = await client.post(URL, json=payload)
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": ["Invalid data. Expected a JSON object with the mailing's fields."]
    }


@pytest.mark.parametrize("raw", [b"{bad", b'{"text": "x"', b"[1,]", b"\xff\xfe"])
async def test_malformed_json_is_400_with_detail(
    client: httpx.AsyncClient, unchanged: Unchanged, raw: bytes
) -> None:
    mid = (await create(client))["id"]
    headers = {"Content-Type": "application/json"}
    async with unchanged():
        for method, url in (("POST", URL), ("PATCH", f"{URL}{mid}/"), ("PUT", f"{URL}{mid}/")):
            response = await client.request(method, url, content=raw, headers=headers)
            assert response.status_code == 400
            assert response.json()["detail"].startswith("JSON parse error - ")


async def test_other_media_types_are_415_and_huge_bodies_413(
    client: httpx.AsyncClient, unchanged: Unchanged
) -> None:
    async with unchanged():
        form = await client.post(
            URL, content=b"text=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert form.status_code == 415
        huge = await client.post(URL, json={**VALID, "text": "x" * 70_000})
        assert huge.status_code == 413


async def test_invalid_edits_change_nothing(
    client: httpx.AsyncClient, unchanged: Unchanged
) -> None:
    mine = await create(client)
    url = f"{URL}{mine['id']}/"
    async with unchanged():
        # One good field and one bad: neither is written.
        response = await client.patch(url, json={"text": "fine", "datetime_end": "soon"})
        assert (response.status_code, response.json()) == (
            400, {"datetime_end": [DATETIME_MESSAGE]}
        )  # fmt: skip
        response = await client.patch(url, json={"send_interval_time_start": "10:00"})
        assert response.json() == {"send_interval_time_end": [WINDOW_HALF]}
        response = await client.patch(url, json={"datetime_end": mine["datetime_start"]})
        assert response.json() == {"datetime_end": [END_BEFORE_START]}
        response = await client.put(url, json={"text": "only text"})
        assert response.json() == {"datetime_start": REQUIRED, "datetime_end": REQUIRED}
    after = (await client.get(url)).json()
    assert {key: after[key] for key in mine} == mine


@pytest.mark.parametrize(
    "mailing_id",
    ["999999999999", "abc", "1.5", "-1", "0", "99999999999999999999999", "%20", "\u0661"],
)
async def test_unknown_or_non_integer_ids_are_404(
    client: httpx.AsyncClient, unchanged: Unchanged, mailing_id: str
) -> None:
    base = f"{URL}{mailing_id}/"
    requests: list[tuple[str, str, Any]] = [
        ("GET", base, None), ("PATCH", base, {"text": "x"}), ("PUT", base, body()),
        ("DELETE", base, None), ("GET", f"{base}messages/", None),
        ("POST", f"{base}cancel/", None), ("POST", f"{base}pause/", None),
        ("POST", f"{base}resume/", None),
    ]  # fmt: skip
    async with unchanged():
        for method, url, payload in requests:
            response = await client.request(method, url, json=payload)
            assert response.status_code == 404, (method, url, response.text)
            assert response.json() == {"detail": "Not found."}


async def test_every_mailing_endpoint_needs_the_api_key(
    anonymous: httpx.AsyncClient, unchanged: Unchanged, api_key: str
) -> None:
    requests: list[tuple[str, str, Any]] = [
        ("GET", URL, None), ("POST", URL, VALID), ("GET", f"{URL}1/", None),
        ("PATCH", f"{URL}1/", {"text": "x"}), ("PUT", f"{URL}1/", VALID),
        ("DELETE", f"{URL}1/", None), ("GET", f"{URL}1/messages/", None),
        ("POST", f"{URL}1/cancel/", None), ("POST", f"{URL}1/pause/", None),
        ("POST", f"{URL}1/resume/", None),
    ]  # fmt: skip
    async with unchanged():
        for headers in ({}, {"Authorization": f"Bearer {api_key}x"}):
            for method, url, payload in requests:
                response = await anonymous.request(method, url, json=payload, headers=headers)
                assert response.status_code == 401, (method, url)
                assert response.headers["WWW-Authenticate"] == "Bearer"
