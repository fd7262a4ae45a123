"""Pages of a mailing's messages, newest first: keyset pages for walking, OFFSET only for a
jump to a page number, and the total from the mailing's counters, never a count(*).

A page asked for by a neighbour (``Older(id)``, the next page, or ``Newer(id)``, the previous
one) reads ``message_id < id ORDER BY message_id DESC LIMIT n + 1`` (``>`` ascending, then
reversed, for a previous page) from the index on ``(mailing_id, message_id DESC)`` or, with a
status filter, on ``(mailing_id, status, message_id DESC)``: the scan starts at the boundary and
stops after n + 1 entries, so page 9,000 of a million-message mailing costs what page 1 costs
(``_keyset`` says how the statements keep the planner on that index). What it replaces,
``OFFSET``, read and dropped every message before the page. The row past the page says
whether another page follows; one index probe says whether anything lies on the other side.

The cost: a neighbour's position is a message id, not a page number, so a walked page does not
know its number (the gateway's admin carries it along as a label). In exchange a walk never
shows a message twice nor skips one that stays put, while OFFSET pages shifted under it
whenever messages arrived or, under ``?status=``, changed status. ``PageNumber`` still uses
OFFSET: a direct jump is rare, and ``?page=last`` needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from reporter.domain import Status

__all__ = [
    "MAX_MESSAGE_ID",
    "MESSAGE_FIELDS",
    "MessagePage",
    "Newer",
    "Older",
    "PageNumber",
    "Position",
    "messages_page",
    "neighbours",
    "other_side_query",
    "page_query",
]

MAX_MESSAGE_ID: Final = 2**63 - 1  # bigint
MESSAGE_FIELDS: Final = (
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


@dataclass(frozen=True, slots=True)
class PageNumber:
    """The ``number``-th page from the newest (1-based), read with OFFSET."""

    number: int


@dataclass(frozen=True, slots=True)
class Older:
    """The page of the messages just older than message id ``than``."""

    than: int


@dataclass(frozen=True, slots=True)
class Newer:
    """The page of the messages just newer than message id ``than``."""

    than: int


Position = PageNumber | Older | Newer


@dataclass(frozen=True, slots=True)
class MessagePage:
    """A page, newest first, with the total the filter selects and its neighbours: the next
    page is ``Older(next_before)`` and the previous one ``Newer(previous_after)``; ``None``
    where there is none."""

    count: int
    results: list[dict[str, Any]]
    next_before: int | None
    previous_after: int | None


# The counter that equals the number of rows a status filter selects (no filter: every row).
# The projection moves it in the same transaction as the rows (see reporter_0001_statistics.sql),
# so it is the count(*) it replaces, read from one row.
_COUNT_OF: Final[dict[Status | None, str]] = {
    None: "created_messages",
    Status.SCHEDULED: "scheduled_messages",
    Status.DELIVERED: "delivered_messages",
    Status.UNDELIVERED: "undelivered_messages",
    Status.CANCELLED: "cancelled_messages",
}
_SELECT: Final = """
    SELECT message_id AS id, datetime_send, status::text AS status, mailing_id, client_id,
           attempts, last_error, created_at, updated_at
      FROM reporter_messages
"""


def _keyset(status: str | None) -> tuple[str, str, str]:
    """(WHERE, ORDER BY newest first, ORDER BY oldest first) over one mailing's messages (of
    one status if ``status`` names the parameter holding it).

    The ORDER BY names the index's own columns in its own directions, and the column just
    before message_id is written as a range (``BETWEEN $1 AND $1``), not an equality. An
    equality would let the planner drop that column from the ORDER BY, leaving
    ``message_id DESC``, which the primary key serves too, filtering every row it passes: the
    planner prefers it when one mailing holds most of the table (as the first million-recipient
    mailing does), and then a page of ``?status=DL`` under 500,000 newer SC messages reads
    them all. Only the index gives this order without sorting the whole mailing, so it is the
    plan whatever the statistics, custom or generic. Only that one column is a range: btree
    stops a scan at the bounds of the first non-equality column, so the scan ends at the end
    of the mailing (or of the status) even when the page is not full.
    reporter_tests/integration/test_reporter_message_pages.py EXPLAINs every shape.

    A text per filter rather than "($n IS NULL OR status = $n)" for the same reason.
    """
    if status is None:  # reporter_messages_by_mailing (mailing_id, message_id DESC)
        return (
            "mailing_id BETWEEN $1 AND $1",
            "ORDER BY mailing_id, message_id DESC",
            "ORDER BY mailing_id DESC, message_id",
        )
    # reporter_messages_by_mailing_status (mailing_id, status, message_id DESC). The column,
    # qualified: a bare "status" in ORDER BY is the page's output column, status::text.
    return (
        f"mailing_id = $1 AND status BETWEEN {status} AND {status}",
        "ORDER BY reporter_messages.status, message_id DESC",
        "ORDER BY reporter_messages.status DESC, message_id",
    )


def page_query(
    mailing_id: int, status: Status | None, position: Position, size: int
) -> tuple[str, tuple[Any, ...]]:
    """The statement reading the page at ``position`` and its arguments. It reads one row more
    than ``size``: that row says whether the page has a neighbour beyond it."""
    where, newest_first, oldest_first = _keyset(None if status is None else "$4")
    match position:
        case PageNumber(number):
            tail, bound = f"{newest_first} LIMIT $2 OFFSET $3", (number - 1) * size
        case Older(than):
            tail, bound = f"AND message_id < $3 {newest_first} LIMIT $2", than
        case Newer(than):
            tail, bound = f"AND message_id > $3 {oldest_first} LIMIT $2", than
    args = (mailing_id, size + 1, bound) + (() if status is None else (status.value,))
    return f"{_SELECT} WHERE {where} {tail}", args


def other_side_query(
    mailing_id: int, status: Status | None, position: Older | Newer
) -> tuple[str, tuple[Any, ...]]:
    """The nearest message on the side of the boundary the page walks away from (for
    ``Older(b)``: ``>= b``, the previous pages), if any: one index probe. (Not EXISTS: the
    planner drops the ORDER BY inside it and may then scan the table.)"""
    where, newest_first, oldest_first = _keyset(None if status is None else "$3")
    if isinstance(position, Older):
        tail = f"AND message_id >= $2 {oldest_first}"
    else:
        tail = f"AND message_id <= $2 {newest_first}"
    sql = f"SELECT message_id FROM reporter_messages WHERE {where} {tail} LIMIT 1"
    return sql, (mailing_id, position.than) + (() if status is None else (status.value,))


def neighbours(
    position: Position, ids: list[int], beyond: bool, behind: bool
) -> tuple[int | None, int | None]:
    """(next_before, previous_after) of a page holding ``ids`` (newest first). ``beyond``: more
    messages follow in the direction the page was read; ``behind``: some lie on the other side.

    An empty neighbour page (its messages withdrawn, or moved out of a status filter, since
    the link was made) still points back across the boundary it was asked with: ids are
    integers, so ``> b - 1`` is ``>= b``.
    """
    newest, oldest = (ids[0], ids[-1]) if ids else (None, None)
    match position:
        case PageNumber(number):
            return (oldest if beyond else None), (newest if number > 1 else None)
        case Older(than):
            previous = (than - 1 if newest is None else newest) if behind else None
            return (oldest if beyond else None), previous
        case Newer(than):
            following = min(than + 1, MAX_MESSAGE_ID) if oldest is None else oldest
            return (following if behind else None), (newest if beyond else None)


def _past_the_end(position: Position, size: int, count: int) -> bool:
    # Known without reading (and without an OFFSET the size of the page number).
    return isinstance(position, PageNumber) and (position.number - 1) * size >= count


async def messages_page(
    pool: asyncpg.Pool, mailing_id: int, status: Status | None, position: Position, size: int
) -> MessagePage:
    """The page at ``position`` of a mailing's messages (those of ``status`` only, if given),
    newest first, with the total and the neighbours; empty for an unknown or deleted mailing.

    The total, the page and the probe are read in one snapshot, so they agree."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        count = await conn.fetchval(
            f"SELECT {_COUNT_OF[status]} FROM reporter_mailings"
            " WHERE mailing_id = $1 AND deleted_at IS NULL",
            mailing_id,
        )
        if not count or _past_the_end(position, size, count):
            return MessagePage(count or 0, [], None, None)
        sql, args = page_query(mailing_id, status, position, size)
        rows = [dict(r) for r in await conn.fetch(sql, *args)]
        behind = False
        if not isinstance(position, PageNumber):
            sql, args = other_side_query(mailing_id, status, position)
            behind = await conn.fetchval(sql, *args) is not None
    beyond = len(rows) > size
    del rows[size:]
    if isinstance(position, Newer):
        rows.reverse()
    following, previous = neighbours(position, [r["id"] for r in rows], beyond, behind)
    return MessagePage(count, rows, following, previous)
