"""Gateway fixtures: the app with its lifespan running, an authenticated client, unique phones."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app
from sms_events.settings import ServiceSettings

API_KEY = f"gw-test-{uuid4().hex}"
BASE_URL = "http://testserver"

_serial = itertools.count(random.randrange(10**6))


def gateway_settings_from(settings: ServiceSettings, **overrides: object) -> Settings:
    values = settings.model_dump() | {"api_keys": [API_KEY], "relay_enabled": False} | overrides
    return Settings(**values, _env_file=None)


@pytest.fixture(scope="session")
def make_settings(settings: ServiceSettings) -> Callable[..., Settings]:
    """Gateway settings for this run's database and broker, with ``overrides``."""
    return lambda **overrides: gateway_settings_from(settings, **overrides)


@pytest.fixture(scope="session")
def gateway_settings(settings: ServiceSettings) -> Settings:
    # The relay runs only in the test that needs it (with its own database), so the other
    # tests, the 100k import above all, measure the gateway and not the publishing.
    return gateway_settings_from(settings)


@pytest.fixture(scope="session")
async def app(gateway_settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(gateway_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        yield c


def new_phone(operator: str | None = None) -> str:
    """A phone no other test uses: 7, an operator code, then a 7-digit serial."""
    code = operator or f"{random.randrange(900, 1000)}"
    return f"7{code}{next(_serial) % 10**7:07d}"


@pytest.fixture
def phone() -> Callable[..., str]:
    return new_phone


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY


class Snapshot:
    """Row and event counts, to prove a refused request stored nothing."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.before: tuple[int, int] = (0, 0)

    async def counts(self) -> tuple[int, int]:
        clients = await self._pool.fetchval("SELECT count(*) FROM gateway_clients")
        events = await self._pool.fetchval("SELECT count(*) FROM events")
        return int(clients), int(events)

    async def __aenter__(self) -> Snapshot:
        self.before = await self.counts()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is None:
            assert await self.counts() == self.before, "a refused request stored something"


@pytest.fixture
def unchanged(pool: asyncpg.Pool) -> Callable[[], Snapshot]:
    """``async with unchanged(): ...`` fails if the block added or removed rows or events."""
    return lambda: Snapshot(pool)
