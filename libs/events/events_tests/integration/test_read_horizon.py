"""Who holds back the readers of all events: announced appenders only, never a write open in
another database of the cluster or one in this database that appends nothing; and an event
store that refuses appends from a transaction that did not announce itself."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import pytest

from sms_events.contracts import ClientDeleted
from sms_events.store import (
    Checkpoint,
    EventStore,
    NewEvent,
    RecordedEvent,
    append_new_streams,
    appending,
)
from sms_events.testing.environment import TestEnvironment
from sms_events.testing.held import scratch_database, write_held_open

from .eventlib_support import eventually


class _RollBack(Exception):
    """Raised inside ``appending`` to roll its transaction back."""


def _event(n: int = 1) -> ClientDeleted:
    return ClientDeleted(client_id=n, deleted_at=datetime(2025, 1, 15, 9, 30, tzinfo=UTC))


async def _drain(store: EventStore, after: Checkpoint, limit: int = 500) -> list[RecordedEvent]:
    out: list[RecordedEvent] = []
    while page := await store.read_all(after, limit=limit):
        out.extend(page)
        after = page[-1].checkpoint
    return out


async def _head(store: EventStore) -> Checkpoint:
    events = await _drain(store, Checkpoint())
    return events[-1].checkpoint if events else Checkpoint()


async def _cluster_xmin(pool: asyncpg.Pool) -> int:
    """The horizon readers used to have: the oldest transaction running anywhere."""
    return int(await pool.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text"))


@pytest.fixture
async def probe_table(pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A read-model-like table of this database that is not an event table."""
    name = f"probe_{uuid4().hex[:10]}"
    await pool.execute(f"CREATE TABLE {name} (n int)")
    yield name
    await pool.execute(f"DROP TABLE {name}")


async def test_writes_open_in_another_database_or_on_other_tables_do_not_hold_readers_back(
    store: EventStore, pool: asyncpg.Pool, test_env: TestEnvironment
) -> None:
    head = await _head(store)
    with (
        scratch_database(test_env.admin_url) as elsewhere,
        write_held_open(elsewhere) as other_db_xid,
        write_held_open(test_env.database_url) as same_db_xid,
    ):
        # The old horizon (the cluster's oldest running transaction) would stop here.
        assert await _cluster_xmin(pool) <= min(other_db_xid, same_db_xid)
        stream = f"test-{uuid4().hex}"
        await store.append(stream, [_event(1)])

        # Read at once (no eventually): nothing of ours may be in the way.
        assert [e.stream_id for e in await _drain(store, head)] == [stream]


async def test_an_announced_appender_that_wrote_holds_readers_back_until_it_ends(
    store: EventStore, pool: asyncpg.Pool, probe_table: str
) -> None:
    head = await _head(store)
    early, late = f"test-{uuid4().hex}", f"test-{uuid4().hex}"
    async with pool.acquire() as conn:
        held = contextlib.AsyncExitStack()
        await held.enter_async_context(appending(conn))
        # Announced, but nothing written yet: no transaction id, nothing to wait for.
        await store.append(f"test-{uuid4().hex}", [_event(0)])
        assert len(await _drain(store, head)) == 1
        head = await _head(store)

        # A command writes its read model first (its transaction id comes now), then appends:
        # an event committed meanwhile by a younger transaction must wait for it.
        await conn.execute(f"INSERT INTO {probe_table} VALUES (1)")
        await store.append(late, [_event(2)])
        assert await _drain(store, head) == []
        await store.append(early, [_event(1)], conn=conn)
        await held.aclose()  # commits

    assert [e.stream_id for e in await _drain(store, head)] == [early, late]


async def test_an_insert_into_events_without_announcing_fails(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    stream = f"test-{uuid4().hex}"
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="appending"):
            async with conn.transaction():
                await append_new_streams(conn, [_event()])
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError):
            await conn.execute(
                "INSERT INTO events (event_id, stream_id, stream_version, type, data)"
                " VALUES ($1, $2, 1, 'client.deleted', '{}')",
                uuid4(),
                stream,
            )
        # Announcing after the transaction began would be too late: refused as well.
        async with conn.transaction():
            with pytest.raises(RuntimeError, match="must open the transaction"):
                async with appending(conn):
                    pass

    assert await store.read_stream(stream) == []


async def test_readers_refuse_a_connection_inside_a_transaction(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(RuntimeError, match="outside a transaction"):
            await store.read_all(conn=conn)


_ROUNDS = [11, 22, 33]  # seeds: each round is one reproducible plan of appenders
_APPENDERS = 60
_AT_ONCE = 12  # below the test pool's size, leaving the reader a connection


@pytest.mark.parametrize("seed", _ROUNDS)
async def test_many_appenders_committing_in_random_order_are_each_read_once_in_order(
    store: EventStore, pool: asyncpg.Pool, probe_table: str, seed: int
) -> None:
    rng = random.Random(seed)
    head = await _head(store)
    committed: set[UUID] = set()
    rolled_back: set[UUID] = set()
    slots = asyncio.Semaphore(_AT_ONCE)

    async def appender(i: int) -> None:
        # Drawn up front, so the plan depends on the seed only, not on the interleaving.
        writes_first = rng.random() < 0.5
        pauses = [rng.uniform(0, 0.03) for _ in range(3)]
        events = [NewEvent(_event(i)) for _ in range(rng.randint(1, 3))]
        rolls_back = rng.random() < 0.15
        ids = {e.event_id for e in events}
        async with slots, pool.acquire() as conn:
            try:
                async with appending(conn):
                    await asyncio.sleep(pauses[0])
                    if writes_first:  # takes its transaction id long before it appends
                        await conn.execute(f"INSERT INTO {probe_table} VALUES ($1)", i)
                    await asyncio.sleep(pauses[1])
                    await store.append(f"test-{seed}-{i}-{uuid4().hex}", events, conn=conn)
                    await asyncio.sleep(pauses[2])
                    if rolls_back:
                        raise _RollBack
            except _RollBack:
                rolled_back.update(ids)
                return
        committed.update(ids)

    done = asyncio.Event()

    async def reader() -> list[RecordedEvent]:
        seen: list[RecordedEvent] = []
        after = head
        while True:
            finished = done.is_set()  # read once more after the last commit
            page = await store.read_all(after, limit=7)
            seen.extend(page)
            if page:
                after = page[-1].checkpoint
            elif finished:
                return seen
            else:
                await asyncio.sleep(0.001)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(appender(i) for i in range(_APPENDERS)))
    done.set()
    seen = await asyncio.wait_for(reading, 30)

    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids)), "an event was read twice"
    assert set(ids) == committed, "an event committed late was skipped (or a stranger read)"
    assert not rolled_back & set(ids)
    checkpoints = [e.checkpoint for e in seen]
    assert checkpoints == sorted(checkpoints) and len(set(checkpoints)) == len(checkpoints)


async def test_a_reader_catches_up_once_an_announced_appender_commits(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    # The horizon moves on by itself when the appender ends: no other commit is needed.
    head = await _head(store)
    stream = f"test-{uuid4().hex}"
    async with pool.acquire() as conn, appending(conn):
        await store.append(stream, [_event()], conn=conn)
    events = await eventually(lambda: _drain(store, head), within=5, what="the event")
    assert [e.stream_id for e in events] == [stream]
