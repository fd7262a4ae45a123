"""asyncpg pool with the jsonb codec set once for every connection."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

__all__ = ["Connection", "create_pool", "init_connection"]

# What callers hold: a plain connection, or one acquired from the pool (a proxy to one).
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    """Encode and decode json/jsonb with orjson on this connection."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog", format="text"
        )


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """The process's single connection pool."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, command_timeout=60
    )
    assert pool is not None
    return pool
