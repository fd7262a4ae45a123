"""Rate limits over HTTP: past a key's or an address's rate the answer is 429 with
Retry-After, naming which limit; other keys and addresses go on; the admin login too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app

KEY_A = "a:read:" + "a" * 40
KEY_B = "b:read:" + "b" * 40


@pytest.fixture
async def limited(make_settings: Callable[..., Settings]) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        api_keys=[KEY_A, KEY_B],
        api_rate_limit_per_key=1,  # a burst of 2, then one a second
        api_rate_limit_per_address=3,  # a burst of 6
        login_rate_limit_per_minute=2,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def _client(app: FastAPI, key: str | None = None, address: str = "10.0.0.1") -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key.rpartition(':')[2]}"} if key else {}
    transport = httpx.ASGITransport(app=app, client=(address, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


async def test_a_key_past_its_rate_gets_429_and_another_key_does_not(limited: FastAPI) -> None:
    async with _client(limited, KEY_A) as a, _client(limited, KEY_B, "10.0.0.2") as b:
        codes = [(await a.get("/api/v1/clients/")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        refused = await a.get("/api/v1/clients/")
        assert refused.headers["Retry-After"] == "1"
        assert "'a'" in refused.json()["detail"]
        assert (await b.get("/api/v1/clients/")).status_code == 200


async def test_an_address_past_its_rate_gets_429_before_any_key_is_checked(
    limited: FastAPI,
) -> None:
    async with _client(limited, address="10.0.0.3") as guesser:
        codes = [(await guesser.get("/api/v1/clients/")).status_code for _ in range(8)]
        assert codes[:6] == [401] * 6 and set(codes[6:]) == {429}
    async with _client(limited, address="10.0.0.4") as other:
        assert (await other.get("/api/v1/clients/")).status_code == 401
    async with _client(limited, address="10.0.0.3") as guesser:
        assert (await guesser.get("/healthz")).status_code == 200  # not a credentials path


async def test_the_admin_login_is_limited_per_address(limited: FastAPI) -> None:
    async with _client(limited, address="10.0.0.5") as browser:
        codes = [(await browser.post("/admin/auth/dev-login")).status_code for _ in range(3)]
        assert codes[2] == 429 and 429 not in codes[:2]
