"""Fixtures of the dispatcher's integration tests (helpers in ``dispatch_support.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fake_provider import RunningProvider, Settings, running

from .dispatch_support import TOKEN, cleaning_up


@pytest.fixture
async def provider() -> AsyncIterator[RunningProvider]:
    async with running(Settings(port=0, token=TOKEN)) as fake:
        yield fake


@pytest.fixture(autouse=True)
async def _clean_up() -> AsyncIterator[None]:
    async with cleaning_up():
        yield
