"""Rebuild a service's projections from the event store, then swap them in atomically.

How a rebuild stays invisible to the live service
-------------------------------------------------
The fold runs into *shadow tables*: copies of the live tables' shape (columns, defaults, checks,
keys, indexes, storage options) in a schema of their own, ``replay_<projection>``, on a
connection whose ``search_path`` names that schema first. So the service's own fold, the very
code its consumer runs, writes the shadow tables with unqualified names while the live ones keep
serving. Pages of events are read in the store's commit order (``EventStore.read_all``: keyset
pages below the read horizon, bounded in count and bytes) and each page is folded in a
transaction of its own that also saves how far the rebuild got, so an interrupted rebuild
resumes (``resume=True``) instead of starting over.

The swap is one transaction. It takes the projection's lock exclusively (``LOCK_NAMESPACE``;
every live writer of the projection takes it shared first: ``BatchConsumer(projection=...)``, or
``writing`` for commands), so no live write is half-way; folds what was appended since the last
page; moves the live tables out and the shadow tables in (``ALTER TABLE ... SET SCHEMA``: a
catalogue change, milliseconds whatever the size; the old tables are dropped); and records the
position of the last event folded as the projection's checkpoint (``event_checkpoints``,
reader ``projection:<name>``).

Why no event is missed or applied twice: every event ordered at or before that position that
will ever commit was folded (the read horizon's guarantee, see ``store.py``), and every event
after it was not. Live consumers skip, by position, the events at or before it (``unfolded``)
and apply the others. An event they had handled before the swap was published by the relay, so
it was below the horizon then, hence at or before the position: what the old tables held of it
is in the new ones.

A fold must be a fold: it reads what the events carry (their payload and recorded time), never
the clock, appends nothing and allocates no ids. Operational state (claims, rate-limit buckets,
leases) is not a projection and is never listed in ``Projection.tables``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from typing import Final, TextIO, TypeVar
from uuid import UUID

import asyncpg

from sms_events.broker import envelope_of
from sms_events.db import Connection, create_pool
from sms_events.envelope import Envelope
from sms_events.logs import configure_logging
from sms_events.relay import RELAY_READER
from sms_events.runtime import run_on_fast_loop
from sms_events.settings import PostgresSettings
from sms_events.store import Checkpoint, EventStore, PageLimit

__all__ = [
    "ENTRY_POINT_GROUP",
    "LOCK_NAMESPACE",
    "STRAGGLER",
    "Progress",
    "Projection",
    "at_moment",
    "first_position",
    "folded",
    "main",
    "mark_published",
    "parse_moment",
    "position",
    "replay",
    "unfolded",
    "writing",
]

ENTRY_POINT_GROUP: Final = "sms_events.projections"
"""Each service registers its ``Projection`` under this entry-point group, by service name."""

LOCK_NAMESPACE: Final = 0x5E5_0004
"""First key of the two-key advisory lock of a projection (the second: a hash of its name)."""

_SOURCE: Final = "/replay"

T = TypeVar("T")

Fold = Callable[[Connection, Sequence[Envelope]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Projection:
    """One service's projections: the tables a rebuild replaces and the fold that fills them.

    ``fold`` gets pages of events (as the consumer gets batches) inside a transaction whose
    ``search_path`` finds the shadow tables first; ``types`` are the event types it folds.
    ``seed`` fills a fresh set of tables with the rows the migrations start them with."""

    name: str
    tables: Sequence[str]
    fold: Fold
    types: Collection[str]
    seed: Callable[[Connection], Awaitable[None]] | None = None
    carry: Sequence[str] = ()
    """Tables (among ``tables``) that also hold operational rows, written by the service's
    own writers under ``writing``: at the swap, live rows the fold did not produce (by key)
    are kept."""


@dataclass(slots=True)
class Progress:
    """What a rebuild has done so far, handed to the progress callback after each page."""

    events: int = 0
    position: Checkpoint = field(default_factory=Checkpoint)
    first_global_position: int = 0
    last_global_position: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        """Events folded per second."""
        return self.events / max(time.monotonic() - self.started, 1e-9)

    def eta_s(self) -> float | None:
        """Seconds left, from the store's last position when the rebuild started (positions
        are dense enough for an estimate; events of other types count as covered ground)."""
        done = self.position.global_position
        if not self.events or done >= self.last_global_position:
            return None
        covered = max(done - self.first_global_position, 1)
        return (self.last_global_position - done) * (time.monotonic() - self.started) / covered


def _lock_key(name: str) -> int:
    # Signed int4, as pg_advisory_xact_lock(int, int) takes it.
    return zlib.crc32(name.encode()) - (1 << 31)


def checkpoint_reader(name: str) -> str:
    """The ``event_checkpoints`` reader holding the position a projection was swapped in at."""
    return f"projection:{name}"


def _progress_reader(name: str) -> str:
    return f"replay:{name}"


async def position(conn: Connection, projection: str) -> Checkpoint | None:
    """Where the live tables of ``projection`` were last rebuilt up to (None: never)."""
    row = await conn.fetchrow(
        "SELECT transaction_id, global_position FROM event_checkpoints WHERE reader = $1",
        checkpoint_reader(projection),
    )
    return Checkpoint(row["transaction_id"], row["global_position"]) if row else None


async def writing(conn: Connection, projection: str) -> None:
    """Announce, in the caller's transaction and before its first write to ``projection``'s
    tables, that it writes them: a rebuild's swap waits for it, and it for the swap."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock_shared($1, $2)", LOCK_NAMESPACE, _lock_key(projection)
    )


async def unfolded(
    conn: Connection, projection: str, envelopes: Sequence[Envelope]
) -> list[Envelope]:
    """The envelopes a live writer of ``projection`` must still apply: those after the position
    its tables were rebuilt up to. Call it inside the writer's transaction, before its writes:
    it first takes the projection's lock (shared), so a swap is either wholly before this
    transaction (and its position is read here) or waits for it to end."""
    done = await folded(conn, projection, envelopes)
    return [e for e in envelopes if e.id not in done]


async def folded(conn: Connection, projection: str, envelopes: Sequence[Envelope]) -> set[UUID]:
    """The ids of those of ``envelopes`` that a rebuild of ``projection`` already folded (at or
    before the position its tables were swapped in at), after taking its lock as ``unfolded``
    does. For a writer that must still react to them (a process manager), not skip them."""
    await writing(conn, projection)
    at = await position(conn, projection)
    if at is None or not envelopes:
        return set()
    return {
        r["event_id"]
        for r in await conn.fetch(
            """
            SELECT event_id FROM events
            WHERE event_id = ANY($1::uuid[])
              AND (transaction_id, global_position) <= ($2::text::xid8, $3)
            """,
            [e.id for e in envelopes],
            str(at.transaction_id),
            at.global_position,
        )
    }


# --- shadow tables --------------------------------------------------------------------------


def _shadow_schema(name: str) -> str:
    return f"replay_{name.replace('-', '_')}"


async def _live_schema(conn: Connection) -> str:
    return str(await conn.fetchval("SELECT current_schema()"))


async def _create_shadow(conn: Connection, p: Projection, live: str, shadow: str) -> None:
    """Empty copies of the live tables in ``shadow``: columns, defaults, identity, generated
    columns, checks, primary and unique keys under their own names and the storage options.
    Plain indexes come later (``_create_indexes``): building them once after the bulk of the
    fold is faster than keeping them up to date row by row."""
    await conn.execute(f"DROP SCHEMA IF EXISTS {shadow} CASCADE")
    await conn.execute(f"CREATE SCHEMA {shadow}")
    for table in p.tables:
        await conn.execute(
            f"CREATE TABLE {shadow}.{table} (LIKE {live}.{table} INCLUDING DEFAULTS"
            " INCLUDING IDENTITY INCLUDING GENERATED INCLUDING CONSTRAINTS"
            " INCLUDING STORAGE INCLUDING COMMENTS)"
        )
        await _own_sequences(conn, live, shadow, table)
        options = await conn.fetchval(
            "SELECT reloptions FROM pg_class WHERE oid = $1::regclass", f"{live}.{table}"
        )
        if options:
            await conn.execute(f"ALTER TABLE {shadow}.{table} SET ({', '.join(options)})")
        for row in await conn.fetch(
            """
            SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
            WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x') ORDER BY conname
            """,
            f"{live}.{table}",
        ):
            await conn.execute(
                f'ALTER TABLE {shadow}.{table} ADD CONSTRAINT "{row["conname"]}" {row["def"]}'
            )
    if p.seed is not None:
        await conn.execute(f"SET LOCAL search_path = {shadow}, {live}")
        await p.seed(conn)


async def _own_sequences(conn: Connection, live: str, shadow: str, table: str) -> None:
    """A serial column copied by LIKE still draws from the live table's sequence: give it a
    sequence of its own, of the same name in the shadow schema, that moves with it."""
    for row in await conn.fetch(
        """
        SELECT a.attname, s.relname AS seq FROM pg_depend d
        JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.refobjid = $1::regclass AND d.deptype = 'a'
        """,
        f"{live}.{table}",
    ):
        column, seq = row["attname"], row["seq"]
        await conn.execute(f"CREATE SEQUENCE {shadow}.{seq} OWNED BY {shadow}.{table}.{column}")
        await conn.execute(
            f"ALTER TABLE {shadow}.{table} ALTER COLUMN {column}"
            f" SET DEFAULT nextval('{shadow}.{seq}'::regclass)"
        )


async def _create_indexes(conn: Connection, p: Projection, live: str, shadow: str) -> None:
    """The live tables' other indexes, with their names, on the shadow tables (index names are
    per schema, so the same names are free there and move with their tables at the swap)."""
    for table in p.tables:
        for row in await conn.fetch(
            """
            SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
            WHERE i.indrelid = $1::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """,
            f"{live}.{table}",
        ):
            ddl = str(row["def"]).replace(f" ON {live}.{table} ", f" ON {shadow}.{table} ", 1)
            await conn.execute(ddl.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1))


async def _fix_sequences(conn: Connection, p: Projection, live: str, shadow: str) -> None:
    """Move each shadow id sequence on to where the live one is (or past the highest id the
    rebuild saw, or a fold moved it to), so the next id is one never given before."""
    for table in p.tables:
        for row in await conn.fetch(
            """
            SELECT a.attname, pg_get_serial_sequence($1, a.attname) AS live_seq,
                   pg_get_serial_sequence($2, a.attname) AS shadow_seq
            FROM pg_attribute a
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
              AND pg_get_serial_sequence($1, a.attname) IS NOT NULL
            """,
            f"{live}.{table}",
            f"{shadow}.{table}",
        ):
            await conn.execute(
                f"""
                SELECT setval($1::regclass, greatest(
                    coalesce(pg_sequence_last_value($1::regclass), 1),
                    coalesce(pg_sequence_last_value($2::regclass), 1),
                    (SELECT coalesce(max({row["attname"]}), 1) FROM {shadow}.{table})))
                """,
                row["shadow_seq"],
                row["live_seq"],
            )


# --- the rebuild ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Pages:
    """Pages of the events a projection folds, read on a connection kept outside transactions
    (the read horizon needs statements of their own) and folded on another.

    The next page is read while the current one folds (``prefetch``): reading and decoding a
    page and writing the last one's rows overlap, on the database's side and on ours."""

    p: Projection
    store: EventStore
    reader: Connection
    page: int
    max_bytes: int
    sizing: PageLimit
    _ahead: asyncio.Task[tuple[list[Envelope], Checkpoint]] | None = None
    _ahead_of: Checkpoint | None = None

    async def _read(self, after: Checkpoint) -> tuple[list[Envelope], Checkpoint]:
        """The page after ``after``, its events parsed, and the position of its last one: read
        ahead, the parsing runs while the fold of the page before waits for the database."""
        events = await self.store.read_all(
            after,
            limit=self.page,
            max_bytes=self.max_bytes,
            types=self.p.types,
            conn=self.reader,
            sizing=self.sizing,
        )
        envelopes = [envelope_of(e, _SOURCE) for e in events]
        for n, env in enumerate(envelopes):
            with contextlib.suppress(Exception):  # a bad event fails in the fold, as live
                env.payload()
            if n % 8 == 7:
                await asyncio.sleep(0)  # let the fold go on as soon as its answer is in
        return envelopes, events[-1].checkpoint if events else after

    async def fold_next(
        self, writer: Connection, after: Checkpoint, *, prefetch: bool = False
    ) -> tuple[Checkpoint, int]:
        """Fold the page after ``after`` on ``writer``; the new position and its size. With
        ``prefetch``, the page after it is being read meanwhile (call ``close`` when done)."""
        if self._ahead is not None and self._ahead_of == after:
            envelopes, reached = await self._ahead
        else:
            await self.close()
            envelopes, reached = await self._read(after)
        self._ahead = None
        if not envelopes:
            return after, 0
        if prefetch:
            self._ahead, self._ahead_of = asyncio.ensure_future(self._read(reached)), reached
        await self.p.fold(writer, envelopes)
        return reached, len(envelopes)

    async def close(self) -> None:
        """Wait out a read ahead (its connection must be idle before it is used again)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            with contextlib.suppress(Exception):
                await ahead


async def replay(
    pool: asyncpg.Pool,
    p: Projection,
    *,
    resume: bool = False,
    page: int = 500,
    max_bytes: int = 8 << 20,
    on_progress: Callable[[Progress], None] | None = None,
) -> Checkpoint:
    """Rebuild ``p``'s tables from the event store and swap them in; returns the position the
    live tables now stand at. ``resume`` carries on an interrupted rebuild from where it got
    (its shadow tables and their saved position); otherwise it starts from the first event.
    ``pool`` needs two connections: one reads (outside transactions), one writes. Memory and
    transactions are bounded by a page (``page`` events, ``max_bytes`` of their JSON)."""
    shadow = _shadow_schema(p.name)
    async with pool.acquire() as reader, pool.acquire() as writer:
        store = EventStore(pool)
        pages = _Pages(p, store, reader, page, max_bytes, PageLimit(page))
        live = await _live_schema(writer)
        after = await _resume_point(writer, p.name, shadow) if resume else None
        if after is None:
            async with writer.transaction():
                await _create_shadow(writer, p, live, shadow)
                await store.save_checkpoint(_progress_reader(p.name), Checkpoint(), conn=writer)
            after = Checkpoint()
        last = await writer.fetchval("SELECT coalesce(max(global_position), 0) FROM events")
        progress = Progress(
            position=after,
            first_global_position=after.global_position,
            last_global_position=int(last),
        )
        try:
            while True:  # the bulk: each page committed with the position it reached
                async with writer.transaction():
                    # A crash loses at most the last pages' commits, and their saved position
                    # with them: a resumed rebuild folds them again. No need to wait for disk.
                    await writer.execute(
                        f"SET LOCAL search_path = {shadow}, {live};"
                        " SET LOCAL synchronous_commit = off"
                    )
                    after, n = await pages.fold_next(writer, after, prefetch=True)
                    if n:
                        await store.save_checkpoint(_progress_reader(p.name), after, conn=writer)
                if not n:
                    break
                progress.events += n
                progress.position = after
                if on_progress is not None:
                    on_progress(progress)
        finally:
            await pages.close()
        async with writer.transaction():
            await _create_indexes(writer, p, live, shadow)
        async with writer.transaction():
            await writer.execute(
                "SELECT pg_advisory_xact_lock($1, $2)", LOCK_NAMESPACE, _lock_key(p.name)
            )
            # Live writers wait from here on: fold what came meanwhile, then swap.
            await writer.execute(f"SET LOCAL search_path = {shadow}, {live}")
            while True:
                after, n = await pages.fold_next(writer, after)
                if not n:
                    break
                progress.events += n
                progress.position = after
            await writer.execute(f"SET LOCAL search_path = {live}")
            for table in p.carry:
                await writer.execute(
                    f"INSERT INTO {shadow}.{table} SELECT * FROM {live}.{table}"
                    " ON CONFLICT DO NOTHING"
                )
            await _fix_sequences(writer, p, live, shadow)
            await _swap(writer, p, live, shadow)
            await store.save_checkpoint(checkpoint_reader(p.name), after, conn=writer)
            await writer.execute(
                "DELETE FROM event_checkpoints WHERE reader = $1", _progress_reader(p.name)
            )
        if on_progress is not None:
            on_progress(progress)
        return after


async def _resume_point(conn: Connection, name: str, shadow: str) -> Checkpoint | None:
    """Where an interrupted rebuild got to, if its shadow tables are still there."""
    if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", shadow):
        return None
    row = await conn.fetchrow(
        "SELECT transaction_id, global_position FROM event_checkpoints WHERE reader = $1",
        _progress_reader(name),
    )
    return Checkpoint(row["transaction_id"], row["global_position"]) if row else None


async def _swap(conn: Connection, p: Projection, live: str, shadow: str) -> None:
    """Live tables out (dropped), shadow tables in: catalogue changes only, in the caller's
    transaction. Live statements prepared against the old tables are planned again against
    the new ones (PostgreSQL invalidates plans of a table that changes schema)."""
    for table in p.tables:
        await conn.execute(f"DROP TABLE {live}.{table}")
        await conn.execute(f"ALTER TABLE {shadow}.{table} SET SCHEMA {live}")
    await conn.execute(f"DROP SCHEMA {shadow} CASCADE")


# --- history: the tables as of a moment --------------------------------------------------------

STRAGGLER: Final = timedelta(minutes=10)
"""Longer than any appending transaction lasts. Events are read in commit order (by transaction
id), not by the time they were recorded: an event ordered after another was recorded at most
this long before it (its transaction got its id after the other's began), so once an event
recorded this long after the moment asked about is seen, none that follows was recorded
before that moment."""


def parse_moment(text: str, now: datetime) -> datetime:
    """An ``as_of`` moment: ISO 8601 with a time zone offset, not after ``now``. Raises
    ``ValueError`` saying what is wrong with it (for a 400 naming the parameter)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("must be an ISO 8601 date and time, e.g. 2030-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError("must have a time zone offset (Z or +hh:mm)")
    if moment > now:
        raise ValueError("must not be in the future")
    return moment


async def at_moment(
    pool: asyncpg.Pool,
    p: Projection,
    moment: datetime,
    read: Callable[[Connection], Awaitable[T]],
    *,
    keep: Callable[[Envelope], bool] | None = None,
    start: Checkpoint = Checkpoint(),
    page: int = 500,
    max_bytes: int = 8 << 20,
) -> T:
    """What ``read`` finds in ``p``'s tables as they were at ``moment``: the events the store
    recorded at or before it (``keep`` may narrow them, ``start`` skip a prefix known to hold
    none of them) folded into temporary copies of the tables, on a connection of its own, one
    page per transaction; the live tables are never touched. The copies go when it returns."""
    store = EventStore(pool)
    async with pool.acquire() as reader, pool.acquire() as conn:
        live = await _live_schema(conn)
        try:
            async with conn.transaction():
                for table in p.tables:
                    await conn.execute(
                        f"CREATE TEMP TABLE {table} (LIKE {live}.{table} INCLUDING ALL)"
                    )
                if p.seed is not None:
                    await conn.execute(f"SET LOCAL search_path = pg_temp, {live}")
                    await p.seed(conn)
            after, done, sizing = start, False, PageLimit(page)
            while not done:
                events = await store.read_all(
                    after,
                    limit=page,
                    max_bytes=max_bytes,
                    types=p.types,
                    conn=reader,
                    sizing=sizing,
                )
                if not events:
                    break
                after = events[-1].checkpoint
                done = any(e.recorded_at > moment + STRAGGLER for e in events)
                wanted = [
                    env
                    for env in (envelope_of(e, _SOURCE) for e in events if e.recorded_at <= moment)
                    if keep is None or keep(env)
                ]
                if wanted:
                    async with conn.transaction():
                        await conn.execute(f"SET LOCAL search_path = pg_temp, {live}")
                        await p.fold(conn, wanted)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                await conn.execute(f"SET LOCAL search_path = pg_temp, {live}")
                return await read(conn)
        finally:
            await conn.execute("DISCARD TEMP")


async def first_position(pool: asyncpg.Pool, stream_id: str) -> Checkpoint:
    """The position just before a stream's first event (the store's start if it has none): a
    reader of everything about that stream's subject starts there."""
    row = await pool.fetchrow(
        "SELECT transaction_id::text::bigint AS t, global_position AS g FROM events"
        " WHERE stream_id = $1 AND stream_version = 1",
        stream_id,
    )
    if row is None:
        return Checkpoint()
    return Checkpoint(row["t"], row["g"] - 1)


# --- the command ----------------------------------------------------------------------------


def projections() -> dict[str, Projection]:
    """Every projection the installed services register, by name."""
    found: dict[str, Projection] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        projection = ep.load()
        assert isinstance(projection, Projection), f"{ep.value} is not a Projection"
        found[ep.name] = projection
    return found


def _printer(name: str, out: TextIO) -> Callable[[Progress], None]:
    """A progress line at most every half second (and the last one)."""
    shown = 0.0

    def show(progress: Progress) -> None:
        nonlocal shown
        now = time.monotonic()
        if now - shown < 0.5 and progress.eta_s() is not None:
            return
        shown = now
        eta = progress.eta_s()
        out.write(
            f"replay {name}: {progress.events} events, {progress.rate:,.0f} events/s,"
            f" position ({progress.position.transaction_id}, {progress.position.global_position})"
            f" of {progress.last_global_position}, ETA "
            + (f"{eta:.0f} s" if eta is not None else "-")
            + "\n"
        )
        out.flush()

    return show


async def mark_published(pool: asyncpg.Pool) -> Checkpoint:
    """After a restore: the relay's checkpoint at the store's last event, so that history the
    consumers already had before the disaster is not published to them again (the scheduler
    and the dispatcher would act on it anew). Only with every service stopped."""
    row = await pool.fetchrow(
        "SELECT transaction_id::text::bigint AS t, global_position AS g FROM events"
        " ORDER BY transaction_id DESC, global_position DESC LIMIT 1"
    )
    at = Checkpoint(row["t"], row["g"]) if row else Checkpoint()
    # Readers order events by transaction id: new ones must sort after the restored ones.
    current = int(await pool.fetchval("SELECT pg_current_xact_id()::text"))
    if current <= at.transaction_id:
        raise SystemExit(
            f"this cluster's transaction ids ({current}) are behind the restored events'"
            f" ({at.transaction_id}): new events would sort before them. Advance the epoch of"
            " this (stopped) cluster first: pg_resetwal -e <a higher epoch> (see README)."
        )
    await EventStore(pool).save_checkpoint(RELAY_READER, at)
    return at


async def _run(names: Sequence[str], resume: bool, page: int, after_restore: bool) -> None:
    found = projections()
    settings = PostgresSettings()
    # The folds' per-batch lines would drown the progress (and slow it): warnings only.
    configure_logging("sms-replay", "WARNING")
    pool = await create_pool(
        settings.database_url,
        min_size=2,
        max_size=2,
        command_timeout=max(settings.database_command_timeout_s, 600),
    )
    try:
        if after_restore:
            at = await mark_published(pool)
            sys.stderr.write(
                f"relay: history up to ({at.transaction_id}, {at.global_position}) counts as"
                " published\n"
            )
        for name in names:
            started = time.monotonic()
            at = await replay(
                pool, found[name], resume=resume, page=page, on_progress=_printer(name, sys.stderr)
            )
            sys.stderr.write(
                f"replay {name}: swapped in at position ({at.transaction_id},"
                f" {at.global_position}) after {time.monotonic() - started:.1f} s\n"
            )
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> None:
    """``sms-replay <projection>|all``: rebuild projections from the event store."""
    found = sorted(projections())
    parser = argparse.ArgumentParser(
        prog="sms-replay",
        description="Rebuild a service's projections from the event store and swap them in.",
    )
    parser.add_argument(
        "projection", choices=[*found, "all"], help="the service whose tables to rebuild"
    )
    parser.add_argument(
        "--resume", action="store_true", help="carry on an interrupted rebuild from where it got"
    )
    parser.add_argument("--page", type=int, default=500, help="events per page (transaction)")
    parser.add_argument(
        "--after-restore",
        action="store_true",
        help="the events table was just restored (services stopped): first mark every event"
        " as published, so the relay does not send the history to the consumers again",
    )
    args = parser.parse_args(argv)
    names = found if args.projection == "all" else [args.projection]
    # As the services run: on uvloop, with the collector tuned for batches of many objects.
    run_on_fast_loop(_run(names, args.resume, args.page, args.after_restore))
