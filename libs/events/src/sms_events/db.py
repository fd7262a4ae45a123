"""asyncpg pool with the jsonb codec set once for every connection."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

__all__ = ["create_pool", "init_connection"]


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
