"""SQL over gateway_opt_outs: the suppression list as the API shows it.

Every write moves the phone's version by one and returns it: the version its event is appended
at (single changes on stream opt_out-<phone>, imports as items of an opt_outs.imported batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from gateway.pagination import PageRequest, numbered_page
from sms_events.db import Connection

__all__ = [
    "OptOutRow",
    "get_opt_out",
    "list_opt_outs",
    "record",
    "record_many",
    "remove",
]

_COLUMNS = "phone, reason, source, opted_out_at, version"


@dataclass(frozen=True, slots=True)
class OptOutRow:
    phone: str
    reason: str | None
    source: str
    opted_out_at: datetime
    version: int

    def to_json(self) -> dict[str, Any]:
        return {
            "phone": self.phone,
            "reason": self.reason,
            "source": self.source,
            "opted_out_at": self.opted_out_at,
        }


def _row(r: asyncpg.Record) -> OptOutRow:
    return OptOutRow(r["phone"], r["reason"], r["source"], r["opted_out_at"], r["version"])


async def record(conn: Connection, phone: str, reason: str | None, source: str) -> OptOutRow | None:
    """Put ``phone`` on the list; None when it is on it already (nothing written). The row
    lock of the upsert orders concurrent writers of one phone."""
    rows = await record_many(conn, [(phone, reason)], source)
    return rows[0] if rows else None


async def record_many(
    conn: Connection, items: Sequence[tuple[str, str | None]], source: str
) -> list[OptOutRow]:
    """Put each (phone, reason) (distinct phones) on the list in one statement; returns the
    rows written: phones already on it are left as they are."""
    rows = await conn.fetch(
        f"""
        INSERT INTO gateway_opt_outs AS o
            (phone, opted_out, reason, source, opted_out_at, version, updated_at)
        SELECT u.phone, true, u.reason, $3, now(), 1, now()
        FROM unnest($1::text[], $2::text[]) AS u(phone, reason)
        ORDER BY u.phone
        ON CONFLICT (phone) DO UPDATE
           SET opted_out = true, reason = excluded.reason, source = excluded.source,
               opted_out_at = excluded.opted_out_at, version = o.version + 1,
               updated_at = excluded.updated_at
         WHERE NOT o.opted_out
        RETURNING {_COLUMNS}
        """,
        [phone for phone, _ in items],
        [reason for _, reason in items],
        source,
    )
    return [_row(r) for r in rows]


async def remove(conn: Connection, phone: str) -> tuple[int, datetime] | None:
    """Take ``phone`` off the list: (its new version, when); None when it is not on it."""
    r = await conn.fetchrow(
        """
        UPDATE gateway_opt_outs SET opted_out = false, version = version + 1, updated_at = now()
        WHERE phone = $1 AND opted_out
        RETURNING version, updated_at
        """,
        phone,
    )
    return (r["version"], r["updated_at"]) if r else None


async def get_opt_out(db: asyncpg.Pool | Connection, phone: str) -> OptOutRow | None:
    """The phone's entry while it is on the list."""
    r = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM gateway_opt_outs WHERE phone = $1 AND opted_out", phone
    )
    return _row(r) if r else None


async def list_opt_outs(
    pool: asyncpg.Pool, page: PageRequest, source: str | None = None
) -> tuple[int, int, list[OptOutRow]]:
    """(total, page number, that page newest first); raises ``InvalidPage`` past the end."""
    where = "WHERE opted_out" + (" AND source = $1" if source else "")
    args: list[Any] = [source] if source else []
    source_sql = f"FROM gateway_opt_outs {where}"
    count, number, records = await numbered_page(
        pool, _COLUMNS, source_sql, "opted_out_at DESC, phone", args, page
    )
    return count, number, [_row(r) for r in records]
