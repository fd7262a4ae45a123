"""The PostgreSQL event store: optimistic concurrency, idempotent and atomic appends, and a
reader of all events that never skips one committed late."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY

from sms_events.contracts import ClientDeleted, MailingPaused
from sms_events.store import (
    ANY_VERSION,
    NO_STREAM,
    Checkpoint,
    EventStore,
    NewEvent,
    PageLimit,
    RecordedEvent,
    WrongExpectedVersion,
    append_new_streams,
    appending,
)
from sms_events.tracing import traced

from .eventlib_support import eventually


def _stream() -> str:
    return f"test-{uuid4().hex}"


def _event(n: int = 1) -> ClientDeleted:
    return ClientDeleted(client_id=n, deleted_at=datetime(2025, 1, 15, 9, 30, tzinfo=UTC))


class _RollBack(Exception):
    """Raised inside ``appending`` to roll its transaction back."""


async def _read_all_after(store: EventStore, after: Checkpoint) -> list[RecordedEvent]:
    """Page through read_all until it returns nothing, as a reader resuming from ``after``."""
    out: list[RecordedEvent] = []
    while page := await store.read_all(after, limit=500):
        out.extend(page)
        after = page[-1].checkpoint
    return out


async def _head(store: EventStore) -> Checkpoint:
    events = await _read_all_after(store, Checkpoint())
    return events[-1].checkpoint if events else Checkpoint()


async def _wait_until_blocked(pool: asyncpg.Pool, pid: int) -> None:
    async def blocked() -> bool:
        wait = await pool.fetchval(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
        )
        return bool(wait == "Lock")

    await eventually(blocked, within=10, what=f"backend {pid} to wait on a lock")


async def test_appends_to_a_new_stream_and_reads_it_back(store: EventStore) -> None:
    stream = _stream()
    events = [NewEvent(_event(n)) for n in (1, 2, 3)]

    version = await store.append(stream, events, expected_version=NO_STREAM)

    assert version == 3
    assert await store.stream_version(stream) == 3
    recorded = await store.read_stream(stream)
    assert [r.stream_version for r in recorded] == [1, 2, 3]
    assert [r.event_id for r in recorded] == [e.event_id for e in events]
    assert [r.payload() for r in recorded] == [_event(1), _event(2), _event(3)]
    assert [r.stream_version for r in await store.read_stream(stream, from_version=2)] == [2, 3]
    assert all(r.type == "client.deleted" and r.schema_version == 1 for r in recorded)


async def test_an_unknown_stream_has_version_zero_and_no_events(store: EventStore) -> None:
    stream = _stream()

    assert await store.stream_version(stream) == NO_STREAM
    assert await store.read_stream(stream) == []


async def test_wrong_expected_version_raises_and_writes_nothing(store: EventStore) -> None:
    stream = _stream()
    await store.append(stream, [_event()], expected_version=NO_STREAM)

    with pytest.raises(WrongExpectedVersion) as raised:
        await store.append(stream, [_event(2)], expected_version=NO_STREAM)

    assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (stream, 0, 1)
    assert await store.stream_version(stream) == 1
    # The caller reloads and retries with the version it now sees.
    assert await store.append(stream, [_event(2)], expected_version=1) == 2


async def test_appending_the_same_event_id_twice_is_a_no_op(store: EventStore) -> None:
    stream = _stream()
    event = NewEvent(_event())
    await store.append(stream, [event], expected_version=NO_STREAM)

    # A retried command: same event id, now-stale expected version. Nothing changes.
    version = await store.append(stream, [event], expected_version=NO_STREAM)

    assert version == 1
    assert [r.event_id for r in await store.read_stream(stream)] == [event.event_id]


async def test_a_batch_with_some_ids_already_stored_appends_only_the_new_ones(
    store: EventStore,
) -> None:
    stream = _stream()
    first, second = NewEvent(_event(1)), NewEvent(_event(2))
    await store.append(stream, [first], expected_version=NO_STREAM)

    assert await store.append(stream, [first, second], expected_version=1) == 2
    assert [r.event_id for r in await store.read_stream(stream)] == [
        first.event_id,
        second.event_id,
    ]


async def test_events_carry_the_trace_metadata(store: EventStore) -> None:
    stream = _stream()
    with traced("corr-store", "cause-store"):
        await store.append(stream, [_event()])

    (recorded,) = await store.read_stream(stream)
    assert recorded.metadata == {"correlation_id": "corr-store", "causation_id": "cause-store"}


async def test_several_events_append_atomically(store: EventStore, pool: asyncpg.Pool) -> None:
    stream = _stream()
    # The third item takes a version the first already took: the whole batch must fail.
    items = [
        (stream, 1, NewEvent(_event(1))),
        (stream, 2, NewEvent(_event(2))),
        (stream, 2, NewEvent(_event(3))),
    ]

    async with pool.acquire() as conn:
        with pytest.raises(WrongExpectedVersion):
            async with appending(conn):
                await store.append_versioned(items, conn=conn)

    assert await store.read_stream(stream) == []


async def test_append_versioned_appends_a_batch_across_streams(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    a, b = _stream(), _stream()
    items = [(a, 1, NewEvent(_event(1))), (a, 2, NewEvent(_event(2))), (b, 1, NewEvent(_event()))]

    async with pool.acquire() as conn, appending(conn):
        await store.append_versioned(items, conn=conn)

    assert [r.stream_version for r in await store.read_stream(a)] == [1, 2]
    assert await store.stream_version(b) == 1


async def test_append_versioned_taken_version_raises_and_stored_id_is_skipped(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    stream = _stream()
    stored = NewEvent(_event(1))
    await store.append(stream, [stored], expected_version=NO_STREAM)

    async with pool.acquire() as conn:
        with pytest.raises(WrongExpectedVersion):
            async with appending(conn):
                await store.append_versioned([(stream, 1, NewEvent(_event(2)))], conn=conn)
        async with appending(conn):
            # The same event again (a redelivered command) is skipped, whatever its version.
            await store.append_versioned([(stream, 1, stored)], conn=conn)

    assert [r.event_id for r in await store.read_stream(stream)] == [stored.event_id]


async def test_a_rolled_back_append_leaves_nothing(store: EventStore, pool: asyncpg.Pool) -> None:
    stream = _stream()
    head = await _head(store)

    async with pool.acquire() as conn:
        with pytest.raises(_RollBack):
            async with appending(conn):
                await store.append(
                    stream, [_event(1), _event(2)], expected_version=NO_STREAM, conn=conn
                )
                raise _RollBack

    assert await store.stream_version(stream) == 0
    assert [e for e in await _read_all_after(store, head) if e.stream_id == stream] == []


async def test_append_in_the_callers_transaction_commits_with_it(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    stream = _stream()
    async with pool.acquire() as conn, appending(conn):
        await store.append(stream, [_event()], expected_version=NO_STREAM, conn=conn)
        # A conflict inside the caller's transaction rolls back only its savepoint.
        with pytest.raises(WrongExpectedVersion):
            await store.append(stream, [_event(2)], expected_version=NO_STREAM, conn=conn)
        await store.append(stream, [_event(3)], expected_version=1, conn=conn)

    assert [r.payload() for r in await store.read_stream(stream)] == [_event(), _event(3)]


async def test_concurrent_appenders_with_the_same_expected_version_exactly_one_wins(
    store: EventStore,
) -> None:
    stream = _stream()
    await store.append(stream, [_event()], expected_version=NO_STREAM)

    results = await asyncio.gather(
        *(store.append(stream, [_event(n)], expected_version=1) for n in range(10)),
        return_exceptions=True,
    )

    assert sum(1 for r in results if r == 2) == 1
    assert sum(1 for r in results if isinstance(r, WrongExpectedVersion)) == 9
    assert await store.stream_version(stream) == 2


async def test_an_appender_racing_an_uncommitted_one_gets_wrong_expected_version(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    stream = _stream()
    async with pool.acquire() as first, pool.acquire() as second:
        tx = contextlib.AsyncExitStack()
        await tx.enter_async_context(appending(first))
        await store.append(stream, [_event(1)], expected_version=NO_STREAM, conn=first)
        # The second appender cannot see the first's uncommitted event, so its version check
        # passes; its insert then waits on the unique (stream, version) index.
        loser = asyncio.create_task(
            store.append(stream, [_event(2)], expected_version=NO_STREAM, conn=second)
        )
        await _wait_until_blocked(pool, second.get_server_pid())
        await tx.aclose()  # commits

        with pytest.raises(WrongExpectedVersion):
            await loser

    assert [r.payload() for r in await store.read_stream(stream)] == [_event(1)]


async def test_concurrent_appends_with_any_version_all_land(store: EventStore) -> None:
    stream = _stream()

    await asyncio.gather(*(store.append(stream, [_event(n)]) for n in range(8)))

    recorded = await store.read_stream(stream)
    assert [r.stream_version for r in recorded] == list(range(1, 9))
    assert sorted(r.payload().client_id for r in recorded) == list(range(8))  # type: ignore[attr-defined]


async def test_read_all_never_skips_an_event_committed_late(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    head = await _head(store)
    stream_a, stream_b = _stream(), _stream()
    ours = {stream_a, stream_b}

    async with pool.acquire() as conn_a, pool.acquire() as conn_b:
        tx_a = contextlib.AsyncExitStack()
        await tx_a.enter_async_context(appending(conn_a))
        await store.append(stream_a, [_event(1)], conn=conn_a)  # A takes the lower position
        async with appending(conn_b):
            await store.append(stream_b, [_event(2)], conn=conn_b)  # B commits first

        (b_event,) = await store.read_stream(stream_b)
        (a_position,) = [
            r["global_position"]
            for r in await conn_a.fetch(
                "SELECT global_position FROM events WHERE stream_id = $1", stream_a
            )
        ]
        assert a_position < b_event.global_position

        # While A is open, read_all holds B back: handing it out would let a reader's
        # checkpoint move past A's position before A is visible.
        while_open = await _read_all_after(store, head)
        assert [e for e in while_open if e.stream_id in ours] == []

        await tx_a.aclose()  # commits

    async def both() -> list[RecordedEvent]:
        return [e for e in await _read_all_after(store, head) if e.stream_id in ours]

    # Other appenders of this test run can hold the horizon back for a moment.
    after_commit = await eventually(both, within=10, what="both events")
    assert [e.stream_id for e in after_commit] == [stream_a, stream_b]


async def test_a_reader_resuming_from_its_checkpoint_sees_the_late_event(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    head = await _head(store)
    stream_a, stream_b, stream_c = _stream(), _stream(), _stream()

    async with pool.acquire() as conn_a:
        tx_a = contextlib.AsyncExitStack()
        await tx_a.enter_async_context(appending(conn_a))
        await store.append(stream_a, [_event(1)], conn=conn_a)
        await store.append(stream_b, [_event(2)])
        seen_while_open = await _read_all_after(store, head)
        checkpoint = seen_while_open[-1].checkpoint if seen_while_open else head
        await tx_a.aclose()  # commits
    await store.append(stream_c, [_event(3)])

    async def resumed() -> list[str]:
        streams = [e.stream_id for e in await _read_all_after(store, checkpoint)]
        return [s for s in streams if s in {stream_a, stream_b, stream_c}]

    async def all_three() -> bool:
        return len(await resumed()) == 3

    await eventually(all_three, within=10, what="all three events")
    assert await resumed() == [stream_a, stream_b, stream_c]


async def test_read_all_returns_events_in_order_and_pages_by_checkpoint(
    store: EventStore,
) -> None:
    head = await _head(store)
    stream = _stream()
    await store.append(stream, [_event(n) for n in range(5)])

    async def ours() -> list[RecordedEvent]:
        return [e for e in await _read_all_after(store, head) if e.stream_id == stream]

    events = await eventually(ours, what="the appended events")
    assert [e.stream_version for e in events] == [1, 2, 3, 4, 5]
    checkpoints = [e.checkpoint for e in events]
    assert checkpoints == sorted(checkpoints)
    page = await store.read_all(events[1].checkpoint, limit=2)
    assert [e.event_id for e in page] == [e.event_id for e in events[2:4]]
    # Bounded by bytes too: at least one event, and no more than fit (each is ~200 bytes).
    one = await store.read_all(events[1].checkpoint, limit=10, max_bytes=1)
    assert [e.event_id for e in one] == [events[2].event_id]
    sizes = [len(orjson.dumps(e.data)) + len(orjson.dumps(e.metadata)) for e in events]
    two = await store.read_all(events[1].checkpoint, limit=10, max_bytes=sizes[2] + sizes[3] + 1)
    assert [e.event_id for e in two][:2] == [e.event_id for e in events[2:4]]
    assert len(two) <= 3
    # A reader that keeps a PageLimit gets the same pages, asking for fewer once cut by bytes.
    sizing = PageLimit(10)
    one_again = await store.read_all(events[1].checkpoint, limit=10, max_bytes=1, sizing=sizing)
    assert [e.event_id for e in one_again] == [events[2].event_id]
    assert sizing.value == 2
    next_one = await store.read_all(events[2].checkpoint, limit=10, max_bytes=1, sizing=sizing)
    assert [e.event_id for e in next_one] == [events[3].event_id]


async def test_checkpoints_are_saved_and_loaded_per_reader(store: EventStore) -> None:
    reader = f"test-reader-{uuid4().hex}"
    assert await store.load_checkpoint(reader) == Checkpoint()

    await store.save_checkpoint(reader, Checkpoint(10, 20))
    await store.save_checkpoint(reader, Checkpoint(11, 25))

    assert await store.load_checkpoint(reader) == Checkpoint(11, 25)


@pytest.mark.parametrize("expected", [ANY_VERSION, NO_STREAM])
async def test_an_empty_append_changes_nothing(store: EventStore, expected: int | None) -> None:
    stream = _stream()

    assert await store.append(stream, [], expected_version=expected) == 0
    assert await store.stream_version(stream) == 0


async def test_read_all_keeps_each_streams_order_when_a_writer_began_before_a_later_version(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    # read_all orders by transaction id, which a transaction gets at its first write, not at
    # commit. Y writes first (lower id), X then appends version 1 of S and commits, and only
    # then does Y append to S: Y's version 2 would sort before X's version 1.
    head = await _head(store)
    stream, other = _stream(), _stream()
    async with pool.acquire() as y:
        try:
            async with appending(y):
                await store.append(other, [_event(1)], conn=y)  # Y takes its transaction id
                await store.append(stream, [_event(2)])  # X: version 1, committed
                await store.append(stream, [_event(3)], conn=y)
        except WrongExpectedVersion:
            # Y rolled back; the command is retried in a new transaction.
            await store.append(stream, [_event(3)])

    async def ours() -> list[RecordedEvent]:
        return [e for e in await _read_all_after(store, head) if e.stream_id == stream]

    async def both() -> bool:
        return len(await ours()) == 2

    await eventually(both, what="both events of the stream")
    assert [e.stream_version for e in await ours()] == [1, 2]


def _appended(event_type: str) -> float:
    return REGISTRY.get_sample_value("sms_events_appended_total", {"type": event_type}) or 0.0


async def test_appended_events_are_counted_once_per_event_by_type(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    paused = MailingPaused(
        mailing_id=uuid4().int % 10**15, paused_at=datetime(2025, 1, 15, tzinfo=UTC)
    )
    deleted_before, paused_before = _appended(_event().event_type), _appended(paused.event_type)
    stream = _stream()
    first, second, third = NewEvent(_event(1)), NewEvent(_event(2)), NewEvent(paused)
    await store.append(stream, [first, second, third], expected_version=NO_STREAM)
    # Ids already stored are skipped, and a version conflict appends (and counts) nothing.
    await store.append(stream, [first, second], expected_version=NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.append(stream, [NewEvent(_event(4))], expected_version=1)
    async with pool.acquire() as conn, appending(conn):
        await append_new_streams(conn, [paused])

    assert _appended(_event().event_type) - deleted_before == 2
    assert _appended(paused.event_type) - paused_before == 2
