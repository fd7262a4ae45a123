"""Every bad input gets an answer the caller can act on (400/401/404/413/415), never a 500,
and stores nothing: no read-model row and no event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway.clients.rules import PHONE_MESSAGE, TIME_ZONE_MESSAGE

Unchanged = Callable[[], Any]

NOT_STRING = "Not a valid string."


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"phone": ["This field is required."]}),
        ({"phone": None}, {"phone": ["This field may not be null."]}),
        ({"phone": ""}, {"phone": [PHONE_MESSAGE]}),
        ({"phone": "89991234567"}, {"phone": [PHONE_MESSAGE]}),
        ({"phone": "7999123456"}, {"phone": [PHONE_MESSAGE]}),
        ({"phone": "799912345678"}, {"phone": [PHONE_MESSAGE]}),
        ({"phone": "7999-123-45-6"}, {"phone": [PHONE_MESSAGE]}),
        ({"phone": "++79991234567"}, {"phone": [PHONE_MESSAGE]}),
        ({"phone": "7٩٩٩1234567"}, {"phone": [PHONE_MESSAGE]}),  # Arabic-Indic digits
        ({"phone": True}, {"phone": [NOT_STRING]}),
        ({"phone": ["79991234567"]}, {"phone": [NOT_STRING]}),
        ({"phone": {"n": 1}}, {"phone": [NOT_STRING]}),
        ({"phone": 7.5}, {"phone": [NOT_STRING]}),
        ({"phone": "79991234567", "tag": "x" * 21},
         {"tag": ["Ensure this field has no more than 20 characters."]}),
        ({"phone": "79991234567", "tag": 5.5}, {"tag": [NOT_STRING]}),
        ({"phone": "79991234567", "tag": "a\x00b"}, {"tag": ["Null characters are not allowed."]}),
        ({"phone": "79991234567", "time_zone": "Mars/Olympus"}, {"time_zone": [TIME_ZONE_MESSAGE]}),
        ({"phone": "79991234567", "time_zone": "europe/moscow"},
         {"time_zone": [TIME_ZONE_MESSAGE]}),
        ({"phone": "79991234567", "time_zone": "../../etc/passwd"},
         {"time_zone": [TIME_ZONE_MESSAGE]}),
        ({"phone": "79991234567", "time_zone": "localtime"}, {"time_zone": [TIME_ZONE_MESSAGE]}),
        ({"phone": "79991234567", "time_zone": ""}, {"time_zone": [TIME_ZONE_MESSAGE]}),
        ({"phone": "79991234567", "time_zone": None},
         {"time_zone": ["This field may not be null."]}),
        ({"phone": "79991234567", "time_zone": 3}, {"time_zone": [NOT_STRING]}),
        ({"phone": "1", "tag": "x" * 30, "time_zone": "Nowhere"},
         {"phone": [PHONE_MESSAGE], "tag": ["Ensure this field has no more than 20 characters."],
          "time_zone": [TIME_ZONE_MESSAGE]}),
        ([{"phone": "79991234567"}],
         {"non_field_errors": ["Invalid data. Expected a JSON object with the client's fields."]}),
        ("79991234567",
         {"non_field_errors": ["Invalid data. Expected a JSON object with the client's fields."]}),
    ],
)  # fmt: skip
async def test_create_rejects_invalid_fields(
    client: httpx.AsyncClient, unchanged: Unchanged, body: Any, errors: dict[str, list[str]]
) -> None:
    async with unchanged():
        response = await client.post("/api/v1/clients/", json=body)
    assert response.status_code == 400
    assert response.json() == errors


@pytest.mark.parametrize(
    "raw", [b"{bad", b'{"phone": "79991234567"', b"[1,]", b'{"phone": 1e999999}', b"\xff\xfe"]
)
async def test_malformed_json_is_400_with_detail(
    client: httpx.AsyncClient, unchanged: Unchanged, raw: bytes
) -> None:
    async with unchanged():
        response = await client.post(
            "/api/v1/clients/", content=raw, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error - ")


async def test_duplicate_phone_is_400_naming_phone(
    client: httpx.AsyncClient, unchanged: Unchanged, phone: Callable[..., str]
) -> None:
    number = phone()
    assert (await client.post("/api/v1/clients/", json={"phone": number})).status_code == 201
    async with unchanged():
        again = await client.post("/api/v1/clients/", json={"phone": f"+{number}", "tag": "x"})
    assert again.status_code == 400
    assert again.json() == {"phone": ["A client with this phone already exists."]}


async def test_changing_phone_to_a_taken_one_is_400_and_changes_nothing(
    client: httpx.AsyncClient, unchanged: Unchanged, phone: Callable[..., str]
) -> None:
    taken = phone()
    await client.post("/api/v1/clients/", json={"phone": taken})
    mine = (await client.post("/api/v1/clients/", json={"phone": phone(), "tag": "t"})).json()
    async with unchanged():
        for method in ("PATCH", "PUT"):
            response = await client.request(
                method, f"/api/v1/clients/{mine['id']}/", json={"phone": taken, "tag": "new"}
            )
            assert response.status_code == 400
            assert response.json() == {"phone": ["A client with this phone already exists."]}
    assert (await client.get(f"/api/v1/clients/{mine['id']}/")).json() == mine


async def test_invalid_patch_changes_nothing(
    client: httpx.AsyncClient, unchanged: Unchanged, phone: Callable[..., str]
) -> None:
    mine = (await client.post("/api/v1/clients/", json={"phone": phone()})).json()
    url = f"/api/v1/clients/{mine['id']}/"
    async with unchanged():
        # One good field and one bad: neither is written.
        response = await client.patch(url, json={"tag": "fine", "time_zone": "Nowhere/Land"})
        assert response.status_code == 400
        assert response.json() == {"time_zone": [TIME_ZONE_MESSAGE]}
        response = await client.patch(
            url, content=b"{", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
    assert (await client.get(url)).json() == mine


@pytest.mark.parametrize(
    "client_id",
    ["999999999999", "abc", "1.5", "-1", "0", "99999999999999999999999", "%20", "\u0661"],
)
async def test_unknown_or_non_integer_ids_are_404(
    client: httpx.AsyncClient, unchanged: Unchanged, client_id: str
) -> None:
    async with unchanged():
        for method, body in [("GET", None), ("PATCH", {"tag": "x"}),
                             ("PUT", {"phone": "79991234567"}), ("DELETE", None)]:  # fmt: skip
            response = await client.request(method, f"/api/v1/clients/{client_id}/", json=body)
            assert response.status_code == 404, (method, client_id, response.text)
            assert response.json() == {"detail": "Not found."}


async def test_non_json_content_type_is_415(
    client: httpx.AsyncClient, unchanged: Unchanged
) -> None:
    async with unchanged():
        response = await client.post(
            "/api/v1/clients/",
            content=b"phone=79991234567",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


async def test_oversized_body_is_413(client: httpx.AsyncClient, unchanged: Unchanged) -> None:
    async with unchanged():
        response = await client.post(
            "/api/v1/clients/", json={"phone": "79991234567", "padding": "x" * 70_000}
        )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong",
        "Bearer {key}x",
        "Bearer {key_but_last}",
        "Bearer  {key} extra",
        "Basic {key}",
        "{key}",
        "Bearer ",
    ],
)
async def test_every_client_endpoint_needs_the_api_key(
    anonymous: httpx.AsyncClient, unchanged: Unchanged, api_key: str, authorization: str | None
) -> None:
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(key=api_key, key_but_last=api_key[:-1])
    async with unchanged():
        for method, url, body in [
            ("GET", "/api/v1/clients/", None),
            ("POST", "/api/v1/clients/", {"phone": "79991234567"}),
            ("GET", "/api/v1/clients/1/", None),
            ("PATCH", "/api/v1/clients/1/", {"tag": "x"}),
            ("PUT", "/api/v1/clients/1/", {"phone": "79991234567"}),
            ("DELETE", "/api/v1/clients/1/", None),
            ("POST", "/api/v1/clients/import", None),
        ]:
            response = await anonymous.request(method, url, json=body, headers=headers)
            assert response.status_code == 401, (method, url)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert set(response.json()) == {"detail"}
