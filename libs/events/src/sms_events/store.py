"""PostgreSQL event store: append with optimistic concurrency, read a stream, read everything.

Reading everything in order without skipping
--------------------------------------------
``global_position`` comes from a sequence, and sequence values are handed out when a row is
inserted, not when its transaction commits. Transaction A can take position 10, transaction B
position 11, and B can commit first. A reader that remembers "I have read up to 11" after seeing
B would never see A's event 10 when it finally commits: the classic sequence-gap bug.

Two fixes are common. A table lock taken by every writer makes insert order equal commit
order, but serialises all writers, including bulk imports and the dispatcher's result batches.
Instead we record each event's transaction id (``pg_current_xact_id()``, a 64-bit ``xid8`` that
never wraps), order readers by ``(transaction_id, global_position)`` and let them read only
below a horizon H such that every transaction below H that can still commit events already
has. Resuming strictly after the last pair read then never skips an event.

Which horizon. ``pg_snapshot_xmin(pg_current_snapshot())``, the oldest transaction still
running, is correct but is the oldest of the whole *cluster*: an idle-in-transaction INSERT in
another database, or a long report in this one that never appends, stopped every event. So
only appenders may hold readers back, and they say so:

1. Every transaction that may append is opened by ``appending(conn)``, whose first statement
   takes a shared transaction-level advisory lock (``horizon.APPEND_LOCK_KEY``) and sets a
   transaction-local flag. That is before the transaction's first write, so before it has a
   transaction id. A trigger on ``events`` refuses an insert from a transaction without the
   flag: an appender that forgot to announce fails loudly instead of being skipped.
2. A reader first runs one statement (``horizon.read_horizon``): N1 = xmax of that statement's
   snapshot, taken as it starts, then the xids of the announced transactions of this database
   that have one (the holders of that lock, each with its backend's current xid as
   ``pg_stat_get_activity`` shows it; 32-bit, widened against N1). H = min(N1, those xids).
   Then a second statement, with a newer snapshot, reads ``transaction_id < H``. The reader
   must not be inside a transaction: it needs two snapshots, and fresh activity figures.

Why nothing is skipped: take an appender T with xid X < H. X < N1, so X was assigned before
step 1's snapshot (PostgreSQL publishes a backend's xid as it assigns it, before any later xid
can commit), and T announced before that. When step 1 looked, T was either still running,
holding the lock with X published, and then H <= X, a contradiction; or it had ended, and then
step 2's later snapshot sees it committed or aborted (a transaction ends, for new snapshots,
when it clears its published xid, before it releases its locks). A transaction that gets its
xid after step 1's snapshot has xid >= N1 >= H. Transactions that never announce cannot insert
events at all. The xid comes from the backend's activity, not from its ``transactionid`` lock:
a backend takes that lock an instant after its xid is assigned, and a reader looking in between
would miss it.

The price is one more statement per read (under a millisecond), one per appending transaction,
and latency: an appender that stays open holds readers back until it ends, so appenders keep
transactions short. Transactions that append nothing (the reporter's projections, anything in
another database) hold no reader back. Two-phase commit is not supported: a prepared
transaction has no backend to show its xid.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

import asyncpg

from sms_events.contracts import Event, upcast
from sms_events.db import Connection
from sms_events.horizon import appending, read_horizon
from sms_events.metrics import EVENTS_APPENDED
from sms_events.retrying import APPEND_RACES, RetryPolicy
from sms_events.tracing import current_metadata

__all__ = [
    "ANY_VERSION",
    "NO_STREAM",
    "Checkpoint",
    "EventStore",
    "NewEvent",
    "PageLimit",
    "RecordedEvent",
    "WrongExpectedVersion",
    "append_new_streams",
    "appending",
]

NO_STREAM: Final = 0
"""``expected_version`` meaning "the stream must not exist yet"."""
ANY_VERSION: Final = None
"""``expected_version`` meaning "append at the end, whatever the version"."""


class WrongExpectedVersion(Exception):
    """The stream moved on since the caller read it; reload and retry the command."""

    def __init__(self, stream_id: str, expected: int | None, actual: int | None) -> None:
        super().__init__(f"stream {stream_id}: expected version {expected}, found {actual}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended, with the id that makes a retried append a no-op."""

    event: Event
    event_id: UUID = field(default_factory=uuid4)
    metadata: Mapping[str, Any] = field(default_factory=current_metadata)


@dataclass(frozen=True, slots=True, order=True)
class Checkpoint:
    """Where a reader of all events stands: the last (transaction id, position) it handled."""

    transaction_id: int = 0
    global_position: int = 0


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored, with its place in its stream and in the whole store."""

    global_position: int
    transaction_id: int
    event_id: UUID
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.transaction_id, self.global_position)

    def payload(self) -> Event:
        """The typed event (older schema versions upcast on read)."""
        return upcast(self.type, self.schema_version, self.data)


_COLUMNS = (
    "global_position, transaction_id::text::bigint AS transaction_id, event_id, stream_id,"
    " stream_version, type, schema_version, data, metadata, recorded_at"
)

# Returns how many events of each type it inserted (ids already stored are skipped), for
# sms_events_appended_total: one small row per type, whatever the batch size.
_INSERT_FROM_ARRAYS = """
WITH inserted AS (
    INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data,
                        metadata)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::int[],
                         $6::jsonb[], $7::jsonb[])
    ON CONFLICT (event_id) DO NOTHING
    RETURNING type
)
SELECT type, count(*) AS n FROM inserted GROUP BY type
"""


# The stream's last version, and whether our transaction id sorts after the one that wrote it
# (pg_current_xact_id() gives this transaction its id now if it has none yet).
_STREAM_HEAD = """
SELECT stream_version, transaction_id <= pg_current_xact_id() AS in_order
FROM events WHERE stream_id = $1 ORDER BY stream_version DESC LIMIT 1
"""


# {types} is empty, or a filter on the event types (a replay reads only what it folds).
_READ_ALL = """
    SELECT {columns} FROM events
    WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
      AND transaction_id < $3::text::xid8{types}
    -- events.transaction_id: the bare name would be the output column (its text form), a
    -- sort of every event after the checkpoint instead of a walk of the index.
    ORDER BY events.transaction_id, events.global_position
    LIMIT $4
"""

# The same, cut where the running size of the events' JSON passes $5 bytes (the first event
# always comes, however large); ``fetched`` says how many the LIMIT let through before the cut.
_READ_ALL_BOUNDED = """
    SELECT {columns}, fetched FROM (
        SELECT e.*, sum(octet_length(data::text) + octet_length(metadata::text))
                    OVER (ORDER BY transaction_id, global_position) AS upto,
               octet_length(data::text) + octet_length(metadata::text) AS size,
               count(*) OVER () AS fetched
        FROM (SELECT * FROM events
              WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
                AND transaction_id < $3::text::xid8{types}
              ORDER BY transaction_id, global_position
              LIMIT $4) e
    ) sized
    WHERE upto - size < $5
    ORDER BY transaction_id, global_position
"""


def _read_all_query(bounded: bool, typed: bool) -> str:
    template = _READ_ALL_BOUNDED if bounded else _READ_ALL
    types = f" AND type = ANY(${6 if bounded else 5}::text[])" if typed else ""
    return template.format(columns=_COLUMNS, types=types)


class _OutOfOrder(WrongExpectedVersion):
    """The stream's last event was written by a transaction that started writing after ours.

    read_all orders by transaction id, taken at a transaction's first write, not at commit.
    A transaction that wrote something, then saw another's committed append to this stream
    and appended after it, would sort before the event it follows, and readers (the relay)
    would see the stream's versions out of order. Only a new transaction (with a new id) can
    append here; appends in a transaction of their own (no ``conn``) never hit this.
    """

    def __init__(self, stream_id: str, expected: int | None, actual: int | None) -> None:
        super().__init__(stream_id, expected, actual)
        self.args = (
            f"stream {stream_id}: version {actual} was appended by a transaction that began "
            "writing after this one; retry the command in a new transaction",
        )


_NO_RETRY: Final = RetryPolicy(attempts=1, base_s=0, cap_s=0)


def _lost_the_race(exc: BaseException) -> bool:
    # Not _OutOfOrder: retrying in the same transaction keeps the same transaction id.
    return isinstance(exc, WrongExpectedVersion) and not isinstance(exc, _OutOfOrder)


def _record(row: asyncpg.Record) -> RecordedEvent:
    fields = dict(row)
    fields.pop("fetched", None)
    return RecordedEvent(**fields)


class PageLimit:
    """How many events a reader bounded by bytes should ask for next.

    To cut a page by bytes the store sizes every event the count limit lets through (as JSON
    text: the costly part of the read), so asking for 2,000 events of which 90 fit (batch
    events of hundreds of messages are large) sizes twenty times what comes back. A reader
    that keeps one ``PageLimit`` asks for what fit last time and a quarter more, and doubles
    it again while pages come back full by count: pages of like events cost what they
    return."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.value = most

    def saw(self, asked: int, fetched: int, kept: int) -> None:
        if kept < fetched:  # cut by bytes
            self.value = max(1, min(self.most, kept + kept // 4 + 1))
        elif fetched >= asked:  # full by count: the bytes would have let more through
            self.value = min(self.most, asked * 2)
        # else: the end of what is committed; nothing learnt about sizes


class EventStore:
    """Appends and reads events. Every method takes an optional connection so that callers
    can append in the same transaction as their own read-model writes."""

    def __init__(self, pool: asyncpg.Pool, *, races: RetryPolicy = APPEND_RACES) -> None:
        self._pool = pool
        self._races = races

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent | Event],
        *,
        expected_version: int | None = ANY_VERSION,
        conn: Connection | None = None,
    ) -> int:
        """Append ``events`` atomically to one stream; returns the stream's new version.

        ``expected_version`` is the version the caller last saw (``NO_STREAM`` for a new
        stream, ``ANY_VERSION`` to skip the check). Events whose ids are already stored are
        skipped, so retrying a command that already went through changes nothing. Without
        ``conn`` it appends in a transaction of its own; a caller's ``conn`` must be in a
        transaction opened by ``appending(conn)``.
        """
        new = [e if isinstance(e, NewEvent) else NewEvent(e) for e in events]
        # With ANY_VERSION the caller asked for "at the end": losing the race for a version to
        # a concurrent writer is no conflict, so try again at the new end (the savepoint or
        # transaction of the lost try was rolled back). Any other expected version: no retry.
        races = self._races if expected_version is ANY_VERSION else _NO_RETRY
        async for attempt in races.retrying(
            event="append_version_taken", retry_if=_lost_the_race, level="debug", stream=stream_id
        ):
            with attempt:
                if conn is None:
                    async with self._pool.acquire() as own, appending(own):
                        return await self._append(own, stream_id, new, expected_version)
                # A savepoint in the caller's transaction; a transaction of its own when the
                # caller has none open.
                opened = conn.transaction() if conn.is_in_transaction() else appending(conn)
                async with opened:
                    return await self._append(conn, stream_id, new, expected_version)
        raise AssertionError("unreachable: the last try returns or raises")

    async def _append(
        self,
        conn: Connection,
        stream_id: str,
        events: list[NewEvent],
        expected_version: int | None,
    ) -> int:
        stored = await conn.fetch(
            "SELECT event_id FROM events WHERE event_id = ANY($1::uuid[])",
            [e.event_id for e in events],
        )
        seen = {r["event_id"] for r in stored}
        events = [e for e in events if e.event_id not in seen]
        if not events:
            return await self.stream_version(stream_id, conn=conn)
        head = await conn.fetchrow(_STREAM_HEAD, stream_id)
        current = head["stream_version"] if head else NO_STREAM
        if expected_version is not None and expected_version != current:
            raise WrongExpectedVersion(stream_id, expected_version, current)
        if head and not head["in_order"]:
            raise _OutOfOrder(stream_id, expected_version, current)
        try:
            await self._insert(conn, ((stream_id, current + i, e) for i, e in enumerate(events, 1)))
        except asyncpg.UniqueViolationError as exc:
            # A concurrent writer took the same stream version between our read and insert.
            raise WrongExpectedVersion(stream_id, expected_version, None) from exc
        return current + len(events)

    async def append_versioned(
        self, items: Iterable[tuple[str, int, NewEvent]], *, conn: Connection
    ) -> None:
        """Bulk append for hot paths where the caller already knows each stream's next version
        (from its own read model): one statement for the whole batch, in the caller's transaction
        (opened by ``appending``). A version already taken raises ``WrongExpectedVersion``; an
        event id already stored is skipped."""
        try:
            await self._insert(conn, items)
        except asyncpg.UniqueViolationError as exc:
            raise WrongExpectedVersion("<batch>", None, None) from exc

    @staticmethod
    async def _insert(conn: Connection, items: Iterable[tuple[str, int, NewEvent]]) -> None:
        cols: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
        for stream_id, version, new in items:
            cols[0].append(new.event_id)
            cols[1].append(stream_id)
            cols[2].append(version)
            cols[3].append(new.event.event_type)
            cols[4].append(new.event.schema_version)
            cols[5].append(new.event.model_dump(mode="json"))
            cols[6].append(dict(new.metadata))
        if not cols[0]:
            return
        inserted = await conn.fetch(_INSERT_FROM_ARRAYS, *cols)
        # Counted once the statement succeeded, so a version conflict (which raises) counts
        # nothing. The caller's transaction may still roll back (a retried command, a consumer
        # batch that fails): the counter is of events appended by statements, not commits.
        for row in inserted:
            EVENTS_APPENDED.labels(row["type"]).inc(row["n"])

    async def stream_version(self, stream_id: str, *, conn: Connection | None = None) -> int:
        """The version of the stream's last event, ``NO_STREAM`` (0) when it has none."""
        query = "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1"
        if conn is not None:
            return int(await conn.fetchval(query, stream_id))
        return int(await self._pool.fetchval(query, stream_id))

    async def read_stream(self, stream_id: str, *, from_version: int = 1) -> list[RecordedEvent]:
        """Every event of one stream from ``from_version``, oldest first."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2"
            " ORDER BY stream_version",
            stream_id,
            from_version,
        )
        return [_record(r) for r in rows]

    async def read_all(
        self,
        after: Checkpoint = Checkpoint(),
        *,
        limit: int = 1000,
        max_bytes: int | None = None,
        types: Collection[str] | None = None,
        conn: Connection | None = None,
        sizing: PageLimit | None = None,
    ) -> list[RecordedEvent]:
        """Up to ``limit`` committed events after ``after``, in an order that never skips an
        event committed late (see the module docstring). Resume from the last one's
        ``checkpoint``. With ``max_bytes``, the events stop where their data and metadata (as
        JSON text) would pass that many bytes, but at least one comes: a reader's memory is
        bounded by bytes, not only by count (batch events of hundreds of messages are large).
        With ``types``, only events of those types come (a replay reads what it folds). With
        ``sizing`` as well (a reader's own, kept across its reads), fewer than ``limit`` are
        asked for when the last pages showed that fewer fit in ``max_bytes``.
        ``conn`` must not be in a transaction: the horizon and the read need a snapshot
        each, the read's taken after the horizon's."""
        if conn is None:
            async with self._pool.acquire() as own:
                return await self.read_all(
                    after, limit=limit, max_bytes=max_bytes, types=types, conn=own, sizing=sizing
                )
        horizon = await read_horizon(conn)
        if sizing is not None and max_bytes is not None:
            limit = min(limit, sizing.value)
        args: list[Any] = [str(after.transaction_id), after.global_position, str(horizon), limit]
        if max_bytes is not None:
            args.append(max_bytes)
        if types is not None:
            args.append(list(types))
        rows = await conn.fetch(_read_all_query(max_bytes is not None, types is not None), *args)
        if sizing is not None and max_bytes is not None and rows:
            sizing.saw(limit, rows[0]["fetched"], len(rows))
        return [_record(r) for r in rows]

    async def load_checkpoint(self, reader: str) -> Checkpoint:
        row = await self._pool.fetchrow(
            "SELECT transaction_id, global_position FROM event_checkpoints WHERE reader = $1",
            reader,
        )
        return Checkpoint(row["transaction_id"], row["global_position"]) if row else Checkpoint()

    async def save_checkpoint(
        self, reader: str, checkpoint: Checkpoint, *, conn: Connection | None = None
    ) -> None:
        await (conn or self._pool).execute(
            """
            INSERT INTO event_checkpoints (reader, transaction_id, global_position)
            VALUES ($1, $2, $3)
            ON CONFLICT (reader) DO UPDATE
               SET transaction_id = excluded.transaction_id,
                   global_position = excluded.global_position, updated_at = now()
            """,
            reader,
            checkpoint.transaction_id,
            checkpoint.global_position,
        )


async def append_new_streams(conn: Connection, events: Sequence[Event]) -> None:
    """Append events that each open a stream of their own (the hot path's batch events, whose
    stream ids carry a fresh batch id), in the caller's transaction (opened by ``appending``),
    in one statement."""
    try:
        await EventStore._insert(conn, ((e.stream_id(), 1, NewEvent(e)) for e in events))
    except asyncpg.UniqueViolationError as exc:
        raise WrongExpectedVersion("<new streams>", NO_STREAM, None) from exc
