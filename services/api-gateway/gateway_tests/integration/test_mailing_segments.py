"""Every mailing answer says its text's encoding, length and SMS segments; a configured cap
refuses longer texts with a 400 naming ``text`` and stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app

from .gateway_support import API_KEY, BASE_URL, Snapshot
from .mailing_support import URL, body, create


async def test_answers_carry_the_encoding_characters_and_segments(
    client: httpx.AsyncClient,
) -> None:
    text = "Скидка 20% на всё до пятницы! " * 3  # Cyrillic: UCS-2, 90 units, 2 parts
    created = await create(client, text=text)
    expected = {"encoding": "UCS-2", "characters": len(text.strip()), "segments": 2}
    assert {k: created[k] for k in expected} == expected
    detail = (await client.get(f"{URL}{created['id']}/")).json()
    assert {k: detail[k] for k in expected} == expected
    listed = (await client.get(URL, params={"page_size": 1000})).json()["results"]
    assert [{k: m[k] for k in expected} for m in listed if m["id"] == created["id"]] == [expected]
    patched = await client.patch(f"{URL}{created['id']}/", json={"text": "Sale {today}"})
    assert {k: patched.json()[k] for k in expected} == {
        "encoding": "GSM-7", "characters": 14, "segments": 1
    }  # fmt: skip


async def test_without_a_cap_any_text_is_accepted(client: httpx.AsyncClient) -> None:
    created = await create(client, text="ж" * 1000)
    assert (created["segments"], created["characters"]) == (15, 1000)


@pytest.fixture
async def capped(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(make_settings(mailing_max_segments=2))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=BASE_URL,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as client,
    ):
        yield client


async def test_a_cap_refuses_longer_texts_naming_text(
    capped: httpx.AsyncClient, unchanged: Callable[[], Snapshot]
) -> None:
    fits: dict[str, Any] = body(text="a" * 306)  # exactly two parts of 153
    created = await capped.post(URL, json=fits)
    assert (created.status_code, created.json()["segments"]) == (201, 2)
    async with unchanged():
        refused = await capped.post(URL, json=body(text="a" * 307))
        assert refused.status_code == 400
        assert refused.json() == {
            "text": ["Ensure this text fits in 2 SMS segments; it needs 3 (GSM-7, 307 "
                     "characters)."]
        }  # fmt: skip
        patched = await capped.patch(f"{URL}{created.json()['id']}/", json={"text": "€" * 154})
        assert patched.status_code == 400
        assert list(patched.json()) == ["text"]
        assert "it needs 3 (GSM-7, 308 characters)" in patched.json()["text"][0]
