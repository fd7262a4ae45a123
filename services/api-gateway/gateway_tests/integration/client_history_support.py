"""A client's history as readers of the whole store see it: the events of its own stream and its
items in import batches, in the order the relay publishes them (transaction id, position)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

IMPORTED_CREATED = "imported: created"
IMPORTED_UPDATED = "imported: updated"


@dataclass(frozen=True)
class Change:
    version: int
    kind: str  # an event type of client-<id>, or IMPORTED_CREATED / IMPORTED_UPDATED
    tag: str | None
    time_zone: str | None


async def history(pool: asyncpg.Pool, client_id: int) -> list[Change]:
    rows = await pool.fetch(
        """
        SELECT v, kind, tag, tz FROM (
            SELECT transaction_id, global_position, stream_version AS v, type AS kind,
                   data->>'tag' AS tag, data->>'time_zone' AS tz, 0 AS item
              FROM events WHERE stream_id = 'client-' || $1::bigint
            UNION ALL
            SELECT e.transaction_id, e.global_position, (c->>'version')::int,
                   CASE WHEN (c->>'created')::boolean THEN $2 ELSE $3 END,
                   c->>'tag', c->>'time_zone', i.n
              FROM events e CROSS JOIN jsonb_array_elements(e.data->'clients')
                   WITH ORDINALITY AS i(c, n)
             WHERE e.type = 'clients.imported' AND (c->>'client_id')::bigint = $1
        ) h
        ORDER BY transaction_id, global_position, item
        """,
        client_id,
        IMPORTED_CREATED,
        IMPORTED_UPDATED,
    )
    return [Change(r["v"], r["kind"], r["tag"], r["tz"]) for r in rows]


async def imported_since(pool: asyncpg.Pool, position: int) -> list[list[dict[str, object]]]:
    """The items of every ``clients.imported`` event after ``position``, event by event."""
    rows = await pool.fetch(
        "SELECT data FROM events WHERE type = 'clients.imported' AND global_position > $1"
        " ORDER BY global_position",
        position,
    )
    return [list(r["data"]["clients"]) for r in rows]


async def last_position(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT coalesce(max(global_position), 0) FROM events"))
