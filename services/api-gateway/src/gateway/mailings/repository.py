"""asyncpg queries on the gateway's mailing read model, ``gateway_mailings``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Final

import asyncpg

from gateway.mailings.rules import MailingFields
from gateway.pagination import PageRequest
from sms_events.db import Connection

__all__ = [
    "MailingRow",
    "cancel_mailing",
    "delete_mailing",
    "follow_ups",
    "get_mailing",
    "insert_mailing",
    "list_mailings",
    "lock_mailing",
    "lock_stream",
    "set_paused",
    "update_mailing",
]

# Advisory lock class of mailing streams; client streams use 0x67770001
# (gateway.clients.repository).
_STREAM_LOCK_CLASS: Final = 0x67770002

_COLUMNS: Final = (
    "id, text, datetime_start, datetime_end, send_interval_time_start, send_interval_time_end,"
    " client_filter, paused, cancelled_at, version, created_at, updated_at, source_mailing_id,"
    " source_statuses"
)


@dataclass(frozen=True, slots=True)
class MailingRow:
    """A mailing as stored in the read model."""

    id: int
    text: str
    datetime_start: datetime
    datetime_end: datetime
    send_interval_time_start: time | None
    send_interval_time_end: time | None
    client_filter: str | None
    paused: bool
    cancelled_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    source_mailing_id: int | None = None  # a follow-up (resend) of this mailing
    source_statuses: list[str] | None = None  # ... to its recipients in these statuses

    @property
    def fields(self) -> MailingFields:
        return MailingFields(
            text=self.text,
            datetime_start=self.datetime_start,
            datetime_end=self.datetime_end,
            send_interval_time_start=self.send_interval_time_start,
            send_interval_time_end=self.send_interval_time_end,
            client_filter=self.client_filter,
        )

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None


def _row(record: asyncpg.Record) -> MailingRow:
    return MailingRow(*record.values())  # every query selects _COLUMNS, in the fields' order


def _values(mailing: MailingFields) -> tuple[Any, ...]:
    return (
        mailing.text,
        mailing.datetime_start,
        mailing.datetime_end,
        mailing.send_interval_time_start,
        mailing.send_interval_time_end,
        mailing.client_filter,
    )


async def get_mailing(conn: Connection | asyncpg.Pool, mailing_id: int) -> MailingRow | None:
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM gateway_mailings WHERE id = $1", mailing_id
    )
    return _row(record) if record else None


async def lock_stream(conn: Connection, mailing_id: int) -> None:
    """Take the mailing's stream lock until the transaction ends. Must come before the
    transaction's first write (the reason is in ``gateway.clients.commands``)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, ($2::bigint % 4294967296 - 2147483648)::int)",
        _STREAM_LOCK_CLASS,
        mailing_id,
    )


async def lock_mailing(conn: Connection, mailing_id: int) -> MailingRow | None:
    """Read a mailing and hold its row lock until the transaction ends."""
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM gateway_mailings WHERE id = $1 FOR UPDATE", mailing_id
    )
    return _row(record) if record else None


async def insert_mailing(
    conn: Connection,
    mailing: MailingFields,
    source_mailing_id: int | None = None,
    source_statuses: list[str] | None = None,
) -> MailingRow:
    """Insert a new mailing (a follow-up of ``source_mailing_id``) at version 1."""
    record = await conn.fetchrow(
        f"""
        INSERT INTO gateway_mailings (text, datetime_start, datetime_end,
            send_interval_time_start, send_interval_time_end, client_filter, version,
            source_mailing_id, source_statuses)
        VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)
        RETURNING {_COLUMNS}
        """,
        *_values(mailing),
        source_mailing_id,
        source_statuses,
    )
    assert record is not None
    return _row(record)


async def update_mailing(conn: Connection, mailing_id: int, mailing: MailingFields) -> MailingRow:
    """Write new fields and bump the version (the row must be locked first)."""
    return await _update(
        conn,
        mailing_id,
        "text = $2, datetime_start = $3, datetime_end = $4, send_interval_time_start = $5,"
        " send_interval_time_end = $6, client_filter = $7",
        *_values(mailing),
    )


async def set_paused(conn: Connection, mailing_id: int, paused: bool) -> MailingRow:
    return await _update(conn, mailing_id, "paused = $2", paused)


async def cancel_mailing(conn: Connection, mailing_id: int) -> MailingRow:
    return await _update(conn, mailing_id, "cancelled_at = now()")


async def _update(conn: Connection, mailing_id: int, assignments: str, *args: Any) -> MailingRow:
    record = await conn.fetchrow(
        f"""
        UPDATE gateway_mailings
           SET {assignments}, version = version + 1, updated_at = now()
         WHERE id = $1
        RETURNING {_COLUMNS}
        """,
        mailing_id,
        *args,
    )
    assert record is not None, "a mailing update on a row that was not locked first"
    return _row(record)


async def delete_mailing(conn: Connection, mailing_id: int) -> datetime:
    """Remove a locked mailing; the deletion time."""
    deleted_at: datetime = await conn.fetchval(
        "DELETE FROM gateway_mailings WHERE id = $1 RETURNING now()", mailing_id
    )
    return deleted_at


async def follow_ups(
    conn: Connection | asyncpg.Pool, mailing_id: int, limit: int
) -> list[MailingRow]:
    """The first ``limit`` follow-ups of a mailing, oldest first."""
    records = await conn.fetch(
        f"SELECT {_COLUMNS} FROM gateway_mailings WHERE source_mailing_id = $1"
        " ORDER BY id LIMIT $2",
        mailing_id,
        limit,
    )
    return [_row(r) for r in records]


async def list_mailings(pool: asyncpg.Pool, page: PageRequest) -> tuple[int, int, list[MailingRow]]:
    """(total, page number, that page newest first); raises ``InvalidPage`` for a page past
    the end."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        # One snapshot for both queries, so the count and the page agree.
        count = int(await conn.fetchval("SELECT count(*) FROM gateway_mailings"))
        number, offset = page.resolve(count)
        records = await conn.fetch(
            f"SELECT {_COLUMNS} FROM gateway_mailings ORDER BY id DESC LIMIT $1 OFFSET $2",
            page.size,
            offset,
        )
    return count, number, [_row(r) for r in records]
