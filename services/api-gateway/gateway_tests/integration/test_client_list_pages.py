"""The client list: DRF page-number pagination, exact filters, newest first."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest


async def _make(
    client: httpx.AsyncClient, phone: Callable[..., str], n: int, **fields: str
) -> list[int]:
    ids = []
    for _ in range(n):
        response = await client.post("/api/v1/clients/", json={"phone": phone(), **fields})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    return ids


def _tag() -> str:
    return f"t{uuid4().hex[:12]}"


async def test_pages_of_25_newest_first_with_links(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    tag = _tag()
    ids = await _make(client, phone, 60, tag=tag)
    newest_first = list(reversed(ids))

    first = (await client.get("/api/v1/clients/", params={"tag": tag})).json()
    assert first["count"] == 60
    assert [c["id"] for c in first["results"]] == newest_first[:25]
    assert first["previous"] is None
    assert first["next"] == f"http://testserver/api/v1/clients/?tag={tag}&page=2"

    second = (await client.get(first["next"])).json()
    assert [c["id"] for c in second["results"]] == newest_first[25:50]
    # As in DRF, the link back to page 1 drops the page parameter.
    assert second["previous"] == f"http://testserver/api/v1/clients/?tag={tag}"

    third = (await client.get(second["next"])).json()
    assert [c["id"] for c in third["results"]] == newest_first[50:]
    assert third["next"] is None
    assert parse_qs(urlsplit(third["previous"]).query) == {"tag": [tag], "page": ["2"]}

    last = (await client.get("/api/v1/clients/", params={"tag": tag, "page": "last"})).json()
    assert last["results"] == third["results"]


async def test_page_size_is_honoured_and_capped_at_1000(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    tag = _tag()
    await _make(client, phone, 3, tag=tag)
    small = (await client.get("/api/v1/clients/", params={"tag": tag, "page_size": 2})).json()
    assert len(small["results"]) == 2
    assert "page_size=2" in small["next"]

    # Enough clients overall to tell a cap of 1000 from no cap at all.
    await client.post(
        "/api/v1/clients/import",
        content="".join(f"{phone()}\n" for _ in range(1100)).encode(),
        headers={"Content-Type": "text/csv"},
    )
    capped = (await client.get("/api/v1/clients/", params={"page_size": 5000})).json()
    assert capped["count"] >= 1100
    assert len(capped["results"]) == 1000


@pytest.mark.parametrize("size", ["0", "-3", "abc", ""])
async def test_bad_page_size_falls_back_to_25(
    client: httpx.AsyncClient, phone: Callable[..., str], size: str
) -> None:
    await _make(client, phone, 26)  # the list as a whole has more than 25
    page = (await client.get("/api/v1/clients/", params={"page_size": size})).json()
    assert len(page["results"]) == 25


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "999999"])
async def test_pages_that_cannot_exist_are_404_invalid_page(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get("/api/v1/clients/", params={"page": page, "tag": _tag()})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


async def test_an_empty_list_still_has_page_one(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/clients/", params={"tag": _tag(), "page": "1"})
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


async def test_filters_by_tag_operator_code_and_phone(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    tag = _tag()
    operator = f"{uuid4().int % 900 + 100}"
    both = await _make(client, phone, 2, tag=tag)
    only_tag = await _make(client, lambda: phone(operator), 1, tag=tag)
    only_operator = await _make(client, lambda: phone(operator), 1)
    target = (await client.get(f"/api/v1/clients/{both[0]}/")).json()

    async def ids(**params: str) -> set[int]:
        page = (await client.get("/api/v1/clients/", params={"page_size": "1000", **params})).json()
        return {c["id"] for c in page["results"]}

    assert await ids(tag=tag) == {*both, *only_tag}
    assert {*only_tag, *only_operator} <= await ids(operator_code=operator)
    assert await ids(tag=tag, operator_code=operator) == set(only_tag)
    assert await ids(phone=target["phone"]) == {target["id"]}
    assert await ids(phone=f"+{target['phone']}") == {target["id"]}
    assert await ids(phone="70000000000") == set()
    # An empty filter is no filter.
    assert len(await ids(tag="")) > len(await ids(tag=tag))


@pytest.mark.parametrize("param", ["tag", "operator_code", "phone"])
async def test_filters_no_client_can_match_are_empty_not_errors(
    client: httpx.AsyncClient, param: str
) -> None:
    for raw in ("%00", "a%00b", "%FF", "%ED%A0%80", "x" * 5000):
        response = await client.get(f"/api/v1/clients/?{param}={raw}")
        assert response.status_code == 200, (param, raw)
        assert response.json()["count"] == 0
    response = await client.get(f"/api/v1/clients/?{param}=%00&page=2")
    assert response.status_code == 404
