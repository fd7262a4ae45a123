"""Import caps: bytes and lines per import (413 naming the setting) and imports at once (429
with Retry-After), for requests and background jobs alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app

URL = "/api/v1/clients/import"
CSV = {"Content-Type": "text/csv"}


@pytest.fixture(scope="module")
async def capped_app(make_settings: Callable[..., Settings]) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(import_max_bytes=2000, import_max_rows=20,
                                   import_max_concurrent=1))  # fmt: skip
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(capped_app: FastAPI, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=capped_app), base_url="http://testserver",
        headers={"Authorization": f"Bearer {api_key}"},
    ) as client:  # fmt: skip
        yield client


def _csv(phone: Callable[..., str], rows: int) -> bytes:
    return "".join(f"{phone()},capped\n" for _ in range(rows)).encode()


async def test_over_the_byte_cap_is_413_and_nothing_is_imported(
    api: httpx.AsyncClient, phone: Callable[..., str], unchanged: Callable[[], object]
) -> None:
    body = _csv(phone, 19) + b"#" * 2000  # few lines, many bytes
    async with unchanged():  # type: ignore[attr-defined]
        for headers in (CSV, CSV | {"Prefer": "respond-async"}):
            answer = await api.post(URL, content=body, headers=headers)
            assert answer.status_code == 413
            assert answer.json() == {
                "detail": "The import is larger than 2,000 bytes (IMPORT_MAX_BYTES)."
            }


async def test_over_the_line_cap_is_413_naming_it(
    api: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    answer = await api.post(URL, content=_csv(phone, 21), headers=CSV)
    assert answer.status_code == 413
    assert "IMPORT_MAX_ROWS" in answer.json()["detail"]
    assert (await api.post(URL, content=_csv(phone, 20), headers=CSV)).json()["created"] == 20


async def test_past_the_imports_at_once_is_429_with_retry_after(
    api: httpx.AsyncClient, capped_app: FastAPI, phone: Callable[..., str]
) -> None:
    slots = capped_app.state.import_jobs.slots
    slots.take()  # an import already running
    try:
        for headers in (CSV, CSV | {"Prefer": "respond-async"}):
            busy = await api.post(URL, content=_csv(phone, 2), headers=headers)
            assert busy.status_code == 429
            assert busy.headers["Retry-After"] == "10"
            assert "IMPORT_MAX_CONCURRENT" in busy.json()["detail"]
    finally:
        slots.give_back()
    assert slots.taken == 0
    assert (await api.post(URL, content=_csv(phone, 2), headers=CSV)).status_code == 200
    assert slots.taken == 0  # given back when the import ended
