"""The old README's client examples, request for request: same statuses and response shapes."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import httpx

CLIENT_KEYS = ["id", "phone", "operator_code", "tag", "time_zone", "created_at", "updated_at"]
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def assert_client_shape(body: dict[str, object]) -> None:
    assert list(body) == CLIENT_KEYS  # the same keys, in the same order
    assert isinstance(body["id"], int)
    assert isinstance(body["phone"], str)
    assert isinstance(body["operator_code"], str)
    assert body["tag"] is None or isinstance(body["tag"], str)
    assert isinstance(body["time_zone"], str)
    for stamp in ("created_at", "updated_at"):
        value = body[stamp]
        assert isinstance(value, str)
        assert ISO_Z.match(value), value


async def test_create_client_answers_like_the_seed(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    number = phone("123")
    response = await client.post(
        "/api/v1/clients/", json={"phone": number}, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201
    body = response.json()
    assert_client_shape(body)
    assert body["phone"] == number
    assert body["operator_code"] == "123"
    assert body["tag"] is None
    assert body["time_zone"] == "UTC"


async def test_seed_walkthrough_create_patch_get_list_delete(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    tag = f"seed{id(client) % 10**6}"
    created = []
    for _ in range(3):
        response = await client.post("/api/v1/clients/", json={"phone": phone("123"), "tag": tag})
        assert response.status_code == 201
        created.append(response.json())
    first = created[0]

    patched = await client.patch(
        f"/api/v1/clients/{first['id']}/", json={"time_zone": "Europe/Moscow"}
    )
    assert patched.status_code == 200
    body = patched.json()
    assert_client_shape(body)
    assert body["time_zone"] == "Europe/Moscow"
    assert body["created_at"] == first["created_at"]
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(first["updated_at"])

    fetched = await client.get(f"/api/v1/clients/{first['id']}/")
    assert fetched.status_code == 200
    assert fetched.json() == body

    listed = await client.get("/api/v1/clients/", params={"tag": tag})
    assert listed.status_code == 200
    page = listed.json()
    assert list(page) == ["count", "next", "previous", "results"]
    assert page["count"] == 3
    assert page["next"] is None and page["previous"] is None
    for item in page["results"]:
        assert_client_shape(item)
    assert [c["id"] for c in page["results"]] == [c["id"] for c in reversed(created)]

    deleted = await client.delete(f"/api/v1/clients/{first['id']}/")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(f"/api/v1/clients/{first['id']}/")).status_code == 404


async def test_paths_without_trailing_slash_work_without_redirect(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    response = await client.post("/api/v1/clients", json={"phone": phone()})
    assert response.status_code == 201
    cid = response.json()["id"]
    for method, url in [("GET", f"/api/v1/clients/{cid}"), ("GET", "/api/v1/clients")]:
        answer = await client.request(method, url)
        assert answer.status_code == 200, (method, url)
    assert (await client.patch(f"/api/v1/clients/{cid}", json={"tag": "x"})).json()["tag"] == "x"
    assert (await client.put(f"/api/v1/clients/{cid}", json={"phone": phone()})).status_code == 200
    assert (await client.delete(f"/api/v1/clients/{cid}")).status_code == 204


async def test_phone_with_plus_is_stored_without_it(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    number = phone()
    response = await client.post("/api/v1/clients/", json={"phone": f"+{number}"})
    assert response.status_code == 201
    assert response.json()["phone"] == number


async def test_put_requires_phone_and_keeps_fields_left_out(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    created = (
        await client.post(
            "/api/v1/clients/", json={"phone": phone(), "tag": "keep", "time_zone": "Asia/Omsk"}
        )
    ).json()
    missing = await client.put(f"/api/v1/clients/{created['id']}/", json={"tag": "new"})
    assert missing.status_code == 400
    assert missing.json() == {"phone": ["This field is required."]}
    new_phone = phone("921")
    replaced = await client.put(f"/api/v1/clients/{created['id']}/", json={"phone": new_phone})
    assert replaced.status_code == 200
    body = replaced.json()
    assert body["phone"] == new_phone
    assert body["operator_code"] == "921"
    assert (body["tag"], body["time_zone"]) == ("keep", "Asia/Omsk")


async def test_tag_can_be_cleared_with_null_or_blank(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    created = (await client.post("/api/v1/clients/", json={"phone": phone(), "tag": "a"})).json()
    url = f"/api/v1/clients/{created['id']}/"
    assert (await client.patch(url, json={"tag": None})).json()["tag"] is None
    assert (await client.patch(url, json={"tag": "b"})).json()["tag"] == "b"
    assert (await client.patch(url, json={"tag": "  "})).json()["tag"] is None


async def test_unknown_fields_are_ignored(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    response = await client.post(
        "/api/v1/clients/", json={"phone": phone(), "id": 1, "operator_code": "000", "x": [1]}
    )
    assert response.status_code == 201
    assert response.json()["operator_code"] != "000"
