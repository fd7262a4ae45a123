"""asyncpg pool with the jsonb codec set once for every connection, a bounded wait for a
connection, and the line between "the database is unwell" and "this work is bad".

Acquiring a connection waits at most ``acquire_timeout`` seconds, for a free connection or for
a new one to connect, then raises ``PoolTimeout``. Without the bound, work waiting on a
database that is down, or on a pool whose every connection hangs in a dead network, would
wait forever, deaf to its retry policy; with it, the work fails fast, and whoever runs it
waits and retries (``is_transient``).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from typing import Any, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy

from sms_events.settings import PostgresSettings

__all__ = [
    "Connection",
    "PoolTimeout",
    "create_pool",
    "error_label",
    "init_connection",
    "is_transient",
    "pool_for",
    "stage",
]

# What callers hold: a plain connection, or one acquired from the pool (a proxy to one).
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

# Errors that say "the database or network is unwell", not "this work is bad".
# PostgresConnectionError covers a connection lost mid-query, the shutdown errors a database
# restart: without them a restart would dead-letter every event in flight.
_TRANSIENT = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
              asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
              asyncpg.CrashShutdownError, asyncpg.TooManyConnectionsError,
              asyncpg.DeadlockDetectedError, asyncpg.SerializationError)  # fmt: skip


class PoolTimeout(TimeoutError):
    """The pool could not hand out a connection within its acquire timeout (the database is
    unreachable, or every connection is busy), or could not take one back (its reset did not
    answer: the connection is dropped). Transient; a ``TimeoutError``, so code that answers
    "unavailable" to timeouts (the gateway's 503) does so for this one too."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database or the network is unwell (wait and retry, however
    long it takes) rather than that the work itself failed (count it; give up after a few).

    A statement cut off by a timeout is the work's failure, though it comes as a
    ``TimeoutError`` (asyncpg's command timeout) or a ``QueryCanceledError`` (the server's
    ``statement_timeout``): the same statement will most likely take as long again, so
    retrying it forever would block everything queued behind it. A ``PoolTimeout`` is not:
    it never ran.
    """
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, TimeoutError | asyncpg.QueryCanceledError):
        return False
    return isinstance(exc, _TRANSIENT)


def error_label(exc: BaseException) -> str:
    """What a log line says of an error: a database error by its class and SQLSTATE, never its
    message or detail (they quote the rows: 'invalid input syntax for type bigint: "7999..."');
    any other error as its repr (phones in it are masked by the log scrubber)."""
    if isinstance(exc, asyncpg.PostgresError):
        return f"{type(exc).__name__} (SQLSTATE {exc.sqlstate})"
    return repr(exc)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    """Encode and decode json/jsonb with orjson on this connection."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog", format="text"
        )


class _BoundedAcquire(PoolAcquireContext):
    """``pool.acquire()``, in ``async with`` or ``await``, raising ``PoolTimeout`` when its
    timeout passes (asyncpg raises a plain TimeoutError, which would read as a statement
    timeout). asyncpg bounds the reset on release by the same timeout."""

    async def __aenter__(self) -> PoolConnectionProxy:
        try:
            return await super().__aenter__()
        except TimeoutError as exc:
            raise PoolTimeout(f"no database connection within {self.timeout}s") from exc

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await super().__aexit__(*exc_info)
        except TimeoutError as exc:
            raise PoolTimeout(f"database connection not released within {self.timeout}s") from exc

    def __await__(self) -> Generator[Any, None, PoolConnectionProxy]:
        try:
            return (yield from super().__await__())
        except TimeoutError as exc:
            raise PoolTimeout(f"no database connection within {self.timeout}s") from exc


class _Pool(asyncpg.Pool):
    """A pool whose ``acquire()`` (and so ``fetch``, ``execute``... on the pool) waits at most
    ``acquire_timeout`` seconds unless the caller gives its own timeout."""

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        return _BoundedAcquire(self, self.acquire_timeout if timeout is None else timeout)


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    acquire_timeout: float = 10.0,
    command_timeout: float = 60.0,
    idle_in_transaction_timeout: float = 60.0,
) -> asyncpg.Pool:
    """The process's single connection pool: a connection within ``acquire_timeout`` seconds
    or ``PoolTimeout``; a statement that runs past ``command_timeout`` seconds is cancelled
    and raises ``TimeoutError`` (see ``is_transient``)."""
    pool = _Pool(
        dsn,
        acquire_timeout=acquire_timeout,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        command_timeout=command_timeout,
        # Server-side backstops of the same bounds: they hold even when this process is hung
        # or gone (asyncpg's command_timeout is enforced by the client alone).
        server_settings={
            "statement_timeout": str(int((command_timeout + 5) * 1000)),
            "idle_in_transaction_session_timeout": str(int(idle_in_transaction_timeout * 1000)),
            # Plan every execution with its parameters. The hot statements take their rows as
            # arrays (``unnest($1::bigint[])``); the generic plan PostgreSQL switches to after
            # five runs of a prepared statement guesses 10 rows per array and keeps the table
            # sizes of the moment it was made, so a table that grew since (a mailing's messages
            # while it resolves) was read whole on every batch: the scheduler's "delivered"
            # update took 15 ms a batch by sequential scan at 100,000 messages. Planning each
            # run costs a fraction of a millisecond a batch.
            "plan_cache_mode": "force_custom_plan",
        },
        # The rest as asyncpg.create_pool() passes them (it cannot build a subclass).
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
    )
    return await pool


async def pool_for(settings: PostgresSettings) -> asyncpg.Pool:
    """The pool a service's settings describe (DATABASE_URL, DATABASE_POOL_*,
    DATABASE_*_TIMEOUT_S)."""
    return await create_pool(
        settings.database_url,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
        acquire_timeout=settings.database_acquire_timeout_s,
        command_timeout=settings.database_command_timeout_s,
        idle_in_transaction_timeout=settings.database_idle_in_transaction_timeout_s,
    )


async def stage(
    conn: Connection,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterable[Sequence[object]],
) -> None:
    """Put ``rows`` (and only them) into ``table``, a temporary table of the connection created
    on first use with ``columns`` ((name, SQL type) pairs) and emptied at every commit, for one
    set-based statement to join. Tens of thousands of rows go in by COPY in about half the time
    they take as ``unnest()`` array parameters, whose encoding checks every element (seen: a
    million-message rebuild)."""
    spec = ", ".join(f"{name} {sql_type}" for name, sql_type in columns)
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {table} ({spec}) ON COMMIT DELETE ROWS;"
        f" DELETE FROM {table}"  # what an earlier use in this transaction left
    )
    await conn.copy_records_to_table(table, records=rows, columns=[name for name, _ in columns])
