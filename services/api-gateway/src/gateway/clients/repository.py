"""asyncpg queries on the gateway's read model, ``gateway_clients``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from gateway.clients.rules import ClientState
from gateway.pagination import PageRequest, numbered_page
from sms_events.contracts import ClientsImported
from sms_events.db import Connection

__all__ = [
    "IMPORT_COLUMNS",
    "PHONE_CONSTRAINT",
    "ClientFilters",
    "ClientRow",
    "delete_client",
    "get_client",
    "import_batch",
    "insert_client",
    "list_clients",
    "lock_client",
    "lock_stream",
    "update_client",
    "written_after_us",
]

PHONE_CONSTRAINT = "gateway_clients_phone_unique"
# Advisory lock class of client streams. The two-int4 key space never meets the single-bigint
# keys that sms_events uses for its own locks (migrations, relay leadership).
_STREAM_LOCK_CLASS = 0x67770001

_COLUMNS = "id, phone, operator_code, tag, time_zone, version, created_at, updated_at"
_COLUMNS_OF_G = ", ".join(f"g.{c.strip()}" for c in _COLUMNS.split(","))


@dataclass(frozen=True, slots=True)
class ClientRow:
    """A client as stored in the read model."""

    id: int
    phone: str
    operator_code: str
    tag: str | None
    time_zone: str
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def state(self) -> ClientState:
        return ClientState(self.phone, self.tag, self.time_zone)

    def to_json(self) -> dict[str, Any]:
        """The seed API's representation (key order included)."""
        return {
            "id": self.id,
            "phone": self.phone,
            "operator_code": self.operator_code,
            "tag": self.tag,
            "time_zone": self.time_zone,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class ClientFilters:
    """Exact-match filters of the list; ``None`` means "not filtered"."""

    tag: str | None = None
    operator_code: str | None = None
    phone: str | None = None

    def match_nothing(self) -> bool:
        """Whether no client can match: PostgreSQL text cannot hold NUL (it would refuse the
        query), and no stored value has one."""
        return any("\x00" in v for v in (self.tag, self.operator_code, self.phone) if v)


def _row(record: asyncpg.Record) -> ClientRow:
    return ClientRow(*record.values())  # every query selects _COLUMNS, in the fields' order


async def get_client(conn: Connection | asyncpg.Pool, client_id: int) -> ClientRow | None:
    record = await conn.fetchrow(f"SELECT {_COLUMNS} FROM gateway_clients WHERE id = $1", client_id)
    return _row(record) if record else None


async def lock_stream(conn: Connection, client_id: int) -> None:
    """Take the client's stream lock until the transaction ends. Must come before the
    transaction's first write (see ``gateway.clients.commands``)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, ($2::bigint % 4294967296 - 2147483648)::int)",
        _STREAM_LOCK_CLASS,
        client_id,
    )


async def written_after_us(conn: Connection, client_ids: Sequence[int]) -> bool:
    """Whether a transaction that got its id after ours appended an event about one of these
    clients: on the client's own stream (a command) or in an import's batch (see
    ``gateway.clients.commands`` and ``gateway.clients.importer``)."""
    # Both look-ups are index scans: the first by stream, the second over the events of
    # younger transactions only (events_commit_order), which are the last few at most.
    return bool(
        await conn.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM events
                           WHERE stream_id = ANY($1::text[])
                             AND transaction_id > pg_current_xact_id())
                OR EXISTS (SELECT 1 FROM events e
                           CROSS JOIN jsonb_array_elements(e.data->'clients') c
                           WHERE e.transaction_id > pg_current_xact_id() AND e.type = $3
                             AND (c->>'client_id')::bigint = ANY($2::bigint[]))
            """,
            [f"client-{i}" for i in client_ids],
            list(client_ids),
            ClientsImported.event_type,
        )
    )


async def lock_client(conn: Connection, client_id: int) -> ClientRow | None:
    """Read a client and hold its row lock until the transaction ends, so commands on one
    client run one after another and each appends at the version it read."""
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM gateway_clients WHERE id = $1 FOR UPDATE", client_id
    )
    return _row(record) if record else None


async def insert_client(conn: Connection, state: ClientState) -> ClientRow | None:
    """Insert a new client at version 1; ``None`` when the phone is taken (the transaction
    stays usable: ON CONFLICT waits for a concurrent insert of the phone instead of failing)."""
    record = await conn.fetchrow(
        f"""
        INSERT INTO gateway_clients (phone, tag, time_zone, version) VALUES ($1, $2, $3, 1)
        ON CONFLICT (phone) DO NOTHING
        RETURNING {_COLUMNS}
        """,
        state.phone,
        state.tag,
        state.time_zone,
    )
    return _row(record) if record else None


async def update_client(conn: Connection, client_id: int, state: ClientState) -> ClientRow:
    """Write the new state and bump the version; raises ``asyncpg.UniqueViolationError`` when
    the new phone belongs to another client."""
    record = await conn.fetchrow(
        f"""
        UPDATE gateway_clients
           SET phone = $2, tag = $3, time_zone = $4, version = version + 1, updated_at = now()
         WHERE id = $1
        RETURNING {_COLUMNS}
        """,
        client_id,
        state.phone,
        state.tag,
        state.time_zone,
    )
    assert record is not None, "update_client on a row that was not locked first"
    return _row(record)


async def delete_client(conn: Connection, client_id: int) -> tuple[int, datetime] | None:
    """Remove a client; its last version and the deletion time, or ``None`` if unknown."""
    record = await conn.fetchrow(
        "DELETE FROM gateway_clients WHERE id = $1 RETURNING version, now() AS deleted_at",
        client_id,
    )
    return (record["version"], record["deleted_at"]) if record else None


def _where(filters: ClientFilters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column in ("tag", "operator_code", "phone"):
        value = getattr(filters, column)
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


async def list_clients(
    pool: asyncpg.Pool, filters: ClientFilters, page: PageRequest
) -> tuple[int, int, list[ClientRow]]:
    """(total matching ``filters``, page number, that page newest first); raises
    ``InvalidPage`` for a page past the end."""
    if filters.match_nothing():
        number, _ = page.resolve(0)
        return 0, number, []
    where, args = _where(filters)
    count, number, records = await numbered_page(
        pool, _COLUMNS, f"FROM gateway_clients{where}", "id DESC", args, page
    )
    return count, number, [_row(r) for r in records]


IMPORT_COLUMNS = ("ord", "phone", "tag", "tag_set", "time_zone")
"""Columns of the temporary table one import batch is copied into."""


async def import_batch(
    conn: Connection, rows: Sequence[tuple[int, str, str | None, bool, str | None]]
) -> tuple[list[ClientRow], list[ClientRow]]:
    """Upsert one batch of import rows (distinct phones); returns (created, updated) clients.

    Each row is ``(ord, phone, tag, tag_set, time_zone)``: ``tag_set`` false and ``time_zone``
    ``None`` mean "not given", which keeps an existing client's value (or the default for a
    new one). Rows that change nothing are not written and not returned. Must run inside the
    caller's transaction.
    """
    await conn.execute(
        """
        CREATE TEMP TABLE gateway_import_rows (
            ord integer, phone text, tag text, tag_set boolean, time_zone text
        ) ON COMMIT DROP
        """
    )
    await conn.copy_records_to_table("gateway_import_rows", records=rows, columns=IMPORT_COLUMNS)
    # Lock the existing clients first (in id order, so two imports cannot deadlock on them):
    # the next statements then read their latest committed state, and a concurrent PATCH waits
    # instead of being overwritten with values computed from an older snapshot.
    await conn.execute(
        """
        SELECT 1 FROM gateway_clients g JOIN gateway_import_rows r ON r.phone = g.phone
        ORDER BY g.id FOR UPDATE OF g
        """
    )
    updated = await conn.fetch(
        f"""
        UPDATE gateway_clients g
           SET tag = n.tag, time_zone = n.time_zone, version = g.version + 1, updated_at = now()
          FROM (SELECT c.id,
                       CASE WHEN r.tag_set THEN r.tag ELSE c.tag END AS tag,
                       coalesce(r.time_zone, c.time_zone) AS time_zone
                  FROM gateway_import_rows r JOIN gateway_clients c ON c.phone = r.phone) n
         WHERE g.id = n.id AND (g.tag, g.time_zone) IS DISTINCT FROM (n.tag, n.time_zone)
        RETURNING {_COLUMNS_OF_G}
        """
    )
    # New phones, in file order so ids follow the file. A phone inserted by someone else since
    # the lock above lands in ON CONFLICT and is updated like any existing client.
    created_or_raced = await conn.fetch(
        f"""
        INSERT INTO gateway_clients AS g (phone, tag, time_zone, version)
        SELECT r.phone, r.tag, coalesce(r.time_zone, 'UTC'), 1
          FROM gateway_import_rows r
         WHERE NOT EXISTS (SELECT 1 FROM gateway_clients c WHERE c.phone = r.phone)
         ORDER BY r.ord
        ON CONFLICT (phone) DO UPDATE
           SET tag = excluded.tag, time_zone = excluded.time_zone, version = g.version + 1,
               updated_at = now()
         WHERE (g.tag, g.time_zone) IS DISTINCT FROM (excluded.tag, excluded.time_zone)
        RETURNING {_COLUMNS_OF_G}
        """
    )
    created = [_row(r) for r in created_or_raced if r["version"] == 1]
    raced = [_row(r) for r in created_or_raced if r["version"] != 1]
    return created, [_row(r) for r in updated] + raced
