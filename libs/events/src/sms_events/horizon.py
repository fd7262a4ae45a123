"""Who may hold back the readers of all events: appenders announce themselves, readers wait only
for those (the argument is in ``sms_events.store``'s docstring)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Final

from sms_events.db import Connection

__all__ = ["APPEND_LOCK_KEY", "appending", "read_horizon", "widen_xid"]

APPEND_LOCK_KEY: Final = 0x5E5_0003
"""Advisory lock every appending transaction holds (shared) from its first statement on."""

# One statement: the lock says "I may append" to readers, the transaction-local flag says it to
# the trigger on ``events`` (migration events_0002), which refuses inserts without it.
_ANNOUNCE = "SELECT pg_advisory_xact_lock_shared($1), set_config('sms_events.appender', 'on', true)"

# The statement's snapshot is taken when it starts, before the lock table and the backends'
# transaction ids are read: its xmax bounds every xid that already existed then. An announced
# appender's xid comes from pg_stat_get_activity (the backend's PGPROC xid, published as the xid
# is assigned) rather than from its 'transactionid' lock, which the backend takes only an instant
# later. pg_stat_get_activity caches what it read until the transaction ends, so this statement
# must run in a transaction of its own (read_horizon checks).
_HORIZON = """
SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xmax,
       array(
           SELECT a.backend_xid::text::bigint
           FROM pg_locks l CROSS JOIN LATERAL pg_stat_get_activity(l.pid) a
           WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = $1 AND l.objsubid = 1
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND a.backend_xid IS NOT NULL
       ) AS xids
"""

_XID_SPAN: Final = 1 << 32
_HALF_SPAN: Final = 1 << 31


@contextlib.asynccontextmanager
async def appending(conn: Connection) -> AsyncIterator[None]:
    """Open a transaction that may append events: ``async with appending(conn): ...`` in place
    of ``async with conn.transaction(): ...``. Its first statement announces it, before the
    transaction writes anything (and so before it has a transaction id)."""
    if conn.is_in_transaction():
        raise RuntimeError(
            "appending() must open the transaction: a transaction that already began may "
            "already have a transaction id, and then announcing it comes too late"
        )
    async with conn.transaction():
        await conn.execute(_ANNOUNCE, APPEND_LOCK_KEY)
        yield


def widen_xid(xid: int, xmax: int) -> int:
    """The 64-bit id of the 32-bit ``xid`` of a running transaction, given a 64-bit ``xmax``
    of a recent snapshot. Running transaction ids lie within 2^31 of each other (PostgreSQL's
    wraparound protection), so the nearest 64-bit value with those low 32 bits is the one.
    Unlike "the epoch of xmax, minus one when xid > low32(xmax)" this also holds for an xid
    assigned after the snapshot (xid >= xmax)."""
    delta = (xid - xmax + _HALF_SPAN) % _XID_SPAN - _HALF_SPAN
    return xmax + delta


async def read_horizon(conn: Connection) -> int:
    """A transaction id below which every event that will ever commit already has, and is
    visible to any snapshot taken after this returns. ``conn`` must not be in a transaction."""
    if conn.is_in_transaction():
        raise RuntimeError("read_horizon() needs a statement of its own, outside a transaction")
    row = await conn.fetchrow(_HORIZON, APPEND_LOCK_KEY)
    assert row is not None
    xmax = int(row["xmax"])
    return min([xmax, *(widen_xid(x, xmax) for x in row["xids"])])
