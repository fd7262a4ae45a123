"""The reporter's HTTP API, served for the tests that call it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sms_events.broker import Broker
from sms_events.settings import ServiceSettings

from .reporter_support import Client, reporter_app


@pytest.fixture
async def client(
    pool: asyncpg.Pool, broker: Broker, settings: ServiceSettings
) -> AsyncIterator[Client]:
    async with TestClient(TestServer(reporter_app(settings, pool, broker))) as client:
        yield client
