"""Shared by the gateway's integration tests: the API key and base URL the test clients use,
unique phones, and a snapshot of row and event counts (conftest.py builds its fixtures on these)."""

from __future__ import annotations

import itertools
import random
from uuid import uuid4

import asyncpg

API_KEY = f"gw-test-{uuid4().hex}"
BASE_URL = "http://testserver"

_serial = itertools.count(random.randrange(10**6))


def new_phone(operator: str | None = None) -> str:
    """A phone no other test uses: 7, an operator code, then a 7-digit serial."""
    code = operator or f"{random.randrange(900, 1000)}"
    return f"7{code}{next(_serial) % 10**7:07d}"


class Snapshot:
    """Row and event counts, to prove a refused request stored nothing."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.before: tuple[int, ...] = ()

    async def counts(self) -> tuple[int, ...]:
        # The read models' rows, their versions (an UPDATE bumps one), and the events.
        row = await self._pool.fetchrow(
            """
            SELECT (SELECT count(*) FROM gateway_clients),
                   (SELECT count(*) FROM gateway_mailings),
                   (SELECT coalesce(sum(version), 0) FROM gateway_mailings),
                   (SELECT count(*) FROM events)
            """
        )
        assert row is not None
        return tuple(int(v) for v in row.values())

    async def __aenter__(self) -> Snapshot:
        self.before = await self.counts()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is None:
            assert await self.counts() == self.before, "a refused request stored something"
