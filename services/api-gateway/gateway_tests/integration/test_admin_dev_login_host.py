"""The dev login answers only a loopback Host: a page of another site whose name resolves to
127.0.0.1 (DNS rebinding) reaches the port, but names its own host and gets the closed page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app


@pytest.fixture(scope="module")
async def dev_app(make_settings: Callable[..., Settings]) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(admin_dev_login=True))
    async with app.router.lifespan_context(app):
        yield app


@pytest.mark.parametrize("host", ["rebound.example", "192.168.1.20"])
async def test_a_foreign_host_gets_the_closed_page(dev_app: FastAPI, host: str) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=dev_app), base_url=f"http://{host}"
    ) as browser:
        answer = await browser.post("/admin/auth/dev-login", data={"csrf_token": "x"})
    assert answer.status_code == 403 and "The admin is closed" in answer.text


async def test_loopback_gets_past_the_host_check(dev_app: FastAPI) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=dev_app), base_url="http://127.0.0.1:8000"
    ) as browser:
        answer = await browser.post("/admin/auth/dev-login", data={"csrf_token": "x"})
    # Refused still (no session, so no valid token), but by the CSRF check, not as closed.
    assert "The admin is closed" not in answer.text
