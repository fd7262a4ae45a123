"""``sms-replay reporter`` in process: a rebuild cut off half-way resumes from the position its
last page saved (not from the start) and ends with the tables the live consumer built."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from reporter.handlers import handle_batch
from reporter.projection import PROJECTION
from sms_events.broker import envelope_of
from sms_events.db import create_pool
from sms_events.replay import Progress, position, replay
from sms_events.store import EventStore, append_new_streams, appending
from sms_events.testing.environment import TestEnvironment

from .reporter_support import delivered, failed, ids, new_id, scheduled, undelivered


class _Crash(Exception):
    pass


@pytest.fixture
async def own_pool() -> AsyncIterator[asyncpg.Pool]:
    """A database of its own: every row of its projection comes from its events."""
    env = TestEnvironment.create(["reporter"])
    pool = await create_pool(env.database_url, min_size=2, max_size=3)
    try:
        yield pool
    finally:
        await pool.close()
        env.destroy()


async def _rows(pool: asyncpg.Pool) -> dict[str, list[asyncpg.Record]]:
    out = {}
    for table in PROJECTION.tables:
        cols = [
            r["column_name"]
            for r in await pool.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1"
                " AND table_schema = 'public' AND column_name <> 'updated_at'"
                " ORDER BY ordinal_position",
                table,
            )
        ]
        listed = ", ".join(cols)
        out[table] = [
            tuple(r) for r in await pool.fetch(f"SELECT {listed} FROM {table} ORDER BY {listed}")
        ]
    return out


async def test_an_interrupted_rebuild_resumes_where_it_stopped(own_pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(40)
    history = [
        [scheduled(mailing, msgs[:20])],
        [scheduled(mailing, msgs[20:]), failed(mailing, msgs[:10])],
        [delivered(mailing, msgs[:30], attempt=2)],
        [undelivered(mailing, msgs[30:35])],
    ]
    for group in history:  # a transaction per group, as the services append them
        async with own_pool.acquire() as conn, appending(conn):
            await append_new_streams(conn, group)
    recorded = await EventStore(own_pool).read_all()
    async with own_pool.acquire() as conn, conn.transaction():  # the live consumer's work
        await handle_batch(conn, [envelope_of(e, "/test") for e in recorded])
    live = await _rows(own_pool)

    def crash_after_two_pages(progress: Progress) -> None:
        if progress.events >= 2:
            raise _Crash

    with pytest.raises(_Crash):
        await replay(own_pool, PROJECTION, page=1, on_progress=crash_after_two_pages)
    assert await _rows(own_pool) == live  # nothing swapped in

    seen: list[Progress] = []
    at = await replay(own_pool, PROJECTION, page=1, resume=True, on_progress=seen.append)
    assert seen[-1].events == len(recorded) - 2  # the first two pages were not folded again
    assert at == recorded[-1].checkpoint
    async with own_pool.acquire() as conn:
        assert await position(conn, PROJECTION.name) == at
    assert await _rows(own_pool) == live
