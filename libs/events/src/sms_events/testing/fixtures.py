"""pytest fixtures for tests against the real PostgreSQL and RabbitMQ (a pytest plugin)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from importlib.util import find_spec

import asyncpg
import pytest

from sms_events.broker import Broker
from sms_events.db import create_pool
from sms_events.settings import ServiceSettings
from sms_events.store import EventStore
from sms_events.testing.environment import TEST_SIGNING_KEY, TestEnvironment

# Every package that owns migrations; those not installed are skipped.
_PACKAGES = ["sms_events", "gateway", "scheduler", "dispatcher", "reporter"]


def _packages_with_migrations() -> list[str]:
    found = []
    for name in _PACKAGES:
        spec = find_spec(name)
        if spec and spec.submodule_search_locations:
            path = os.path.join(next(iter(spec.submodule_search_locations)), "migrations")
            if os.path.isdir(path):
                found.append(name)
    return found


@pytest.fixture(scope="session")
def test_env() -> Iterator[TestEnvironment]:
    env = TestEnvironment.create(_packages_with_migrations())
    try:
        yield env
    finally:
        env.destroy()


@pytest.fixture(scope="session")
def settings(test_env: TestEnvironment) -> ServiceSettings:
    return ServiceSettings(
        database_url=test_env.database_url,
        amqp_url=test_env.amqp_url,
        amqp_exchange=test_env.amqp_exchange,
        amqp_queue_prefix=test_env.amqp_queue_prefix,
        event_signing_key=TEST_SIGNING_KEY,
        _env_file=None,
    )


@pytest.fixture(scope="session")
async def pool(settings: ServiceSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url, min_size=2, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def broker(settings: ServiceSettings) -> AsyncIterator[Broker]:
    broker = Broker(settings)
    await broker.connect()
    yield broker
    await broker.close()


@pytest.fixture
def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool)
