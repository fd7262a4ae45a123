"""Reads for the gateway: counters per mailing and a page of a mailing's messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from reporter.domain import Status

__all__ = ["COUNTER_FIELDS", "MESSAGE_FIELDS", "MessagePage", "counters", "messages_page"]

COUNTER_FIELDS = (
    "clients_count",
    "created_messages",
    "scheduled_messages",
    "delivered_messages",
    "undelivered_messages",
    "cancelled_messages",
    "attempts_total",
    "first_sent_at",
    "last_sent_at",
    "completed_at",
    "resolved_at",
)
MESSAGE_FIELDS = (
    "id",
    "datetime_send",
    "status",
    "mailing_id",
    "client_id",
    "attempts",
    "last_error",
    "created_at",
    "updated_at",
)

# The counter that equals the number of rows a status filter selects (no filter: every row).
_COUNT_OF: dict[Status | None, str] = {
    None: "created_messages",
    Status.SCHEDULED: "scheduled_messages",
    Status.DELIVERED: "delivered_messages",
    Status.UNDELIVERED: "undelivered_messages",
    Status.CANCELLED: "cancelled_messages",
}

_SELECT = """
    SELECT message_id AS id, datetime_send, status::text AS status, mailing_id, client_id,
           attempts, last_error, created_at, updated_at
      FROM reporter_messages
"""
# Two texts rather than "($2 IS NULL OR status = $2)": each keeps its own index, and a generic
# prepared plan cannot fall back to filtering a million rows.
_PAGE = _SELECT + " WHERE mailing_id = $1 ORDER BY message_id DESC LIMIT $2 OFFSET $3"
_PAGE_BY_STATUS = (
    _SELECT + " WHERE mailing_id = $1 AND status = $4 ORDER BY message_id DESC LIMIT $2 OFFSET $3"
)


@dataclass(frozen=True, slots=True)
class MessagePage:
    count: int
    results: list[dict[str, Any]]


async def counters(pool: asyncpg.Pool, mailing_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Counters of each known, not deleted mailing among ``mailing_ids``."""
    rows = await pool.fetch(
        f"SELECT r.mailing_id, {', '.join(f'r.{f}' for f in COUNTER_FIELDS)}"
        " FROM unnest($1::bigint[]) AS u(id) JOIN reporter_mailings r ON r.mailing_id = u.id"
        " WHERE r.deleted_at IS NULL",
        list(mailing_ids),
    )
    return {r["mailing_id"]: {f: r[f] for f in COUNTER_FIELDS} for r in rows}


async def messages_page(
    pool: asyncpg.Pool, mailing_id: int, status: Status | None, page: int, page_size: int
) -> MessagePage:
    """One page of a mailing's messages, newest first, with the total the filter selects.

    The total comes from the counters, not a COUNT over the rows: both are written in the same
    transaction, and reading them in one snapshot keeps the page and the total consistent.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        count = await conn.fetchval(
            f"SELECT {_COUNT_OF[status]} FROM reporter_mailings"
            " WHERE mailing_id = $1 AND deleted_at IS NULL",
            mailing_id,
        )
        offset = (page - 1) * page_size
        if not count or offset >= count:
            return MessagePage(count or 0, [])
        if status is None:
            rows = await conn.fetch(_PAGE, mailing_id, page_size, offset)
        else:
            rows = await conn.fetch(_PAGE_BY_STATUS, mailing_id, page_size, offset, status.value)
    return MessagePage(count, [dict(r) for r in rows])
