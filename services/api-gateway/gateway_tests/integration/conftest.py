"""Gateway fixtures: the app with its lifespan running, an authenticated client, unique phones,
and a stand-in reporter (a real HTTP server) for mailing counters and messages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gateway import Settings, create_app
from sms_events.settings import ServiceSettings

from ..reporter_support import ReporterDouble
from .gateway_support import API_KEY, BASE_URL, Snapshot, new_phone


def gateway_settings_from(settings: ServiceSettings, **overrides: object) -> Settings:
    # Tests race several imports on purpose (the cap itself is tested on its own app).
    values = (
        settings.model_dump()
        | {"api_keys": [API_KEY], "relay_enabled": False, "import_max_concurrent": 32}
        # Tests call the API as fast as they can; the limits have their own tests.
        | {"api_rate_limit_per_key": 10_000, "api_rate_limit_per_address": 10_000}
        | overrides
    )
    return Settings(**values, _env_file=None)


@pytest.fixture(scope="session")
async def fake_reporter() -> AsyncIterator[ReporterDouble]:
    reporter = ReporterDouble()
    await reporter.start()
    yield reporter
    await reporter.stop()


@pytest.fixture
def reporter(fake_reporter: ReporterDouble) -> Iterator[ReporterDouble]:
    """The stand-in reporter, answering normally again after the test."""
    yield fake_reporter
    fake_reporter.fail_with, fake_reporter.delay_s = None, 0.0


@pytest.fixture(scope="session")
def make_settings(
    settings: ServiceSettings, fake_reporter: ReporterDouble
) -> Callable[..., Settings]:
    """Gateway settings for this run's database, broker and reporter, with ``overrides``."""
    return lambda **overrides: gateway_settings_from(
        settings, **({"reporter_url": fake_reporter.url} | overrides)
    )


@pytest.fixture(scope="session")
def gateway_settings(make_settings: Callable[..., Settings]) -> Settings:
    # The relay runs only in the test that needs it (with its own database), so the other
    # tests, the 100k import above all, measure the gateway and not the publishing.
    return make_settings()


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


@pytest.fixture
def phone() -> Callable[..., str]:
    return new_phone


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY


@pytest.fixture
def unchanged(pool: asyncpg.Pool) -> Callable[[], Snapshot]:
    """``async with unchanged(): ...`` fails if the block added or removed rows or events."""
    return lambda: Snapshot(pool)
