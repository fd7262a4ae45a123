"""Page-number pagination answering exactly like Django REST framework's PageNumberPagination,
and the opaque cursors that a mailing's message pages link to.

``?page=`` is 1-based (``last`` works too) and a page outside the list is 404 "Invalid page.";
``?page_size=`` defaults to 25, a bad value falls back to the default, and a large one is capped.

A message page's ``next`` and ``previous`` carry ``?cursor=``: base64url of ``before:<id>`` or
``after:<id>``, the messages just older or newer than a message (see reporter.message_pages),
so following them costs the same at any depth. A cursor that does not decode is a page that
does not exist: 404 "Invalid page.", as a bad ``?page=`` is (and as DRF's CursorPagination
answers a bad cursor, with its own wording), rather than a 400: clients of the old API already
handle that answer, and there is no field of theirs to name, the link being ours.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import asyncpg
from starlette.datastructures import URL

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Cursor",
    "InvalidPage",
    "PageRequest",
    "cursor_links",
    "cursor_request",
    "links",
    "numbered_page",
    "page_request",
]

DEFAULT_PAGE_SIZE: Final = 25
MAX_PAGE_SIZE: Final = 1000
LAST: Final = "last"


class InvalidPage(LookupError):
    """The requested page does not exist (DRF answers 404 ``{"detail": "Invalid page."}``)."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A page as asked for; ``number`` is ``None`` for "the last page"."""

    number: int | None
    size: int

    def resolve(self, count: int) -> tuple[int, int]:
        """(page number, offset) for a list of ``count`` items; raises ``InvalidPage``."""
        number = num_pages(count, self.size) if self.number is None else self.number
        if number > num_pages(count, self.size):
            raise InvalidPage(number)
        return number, (number - 1) * self.size


def num_pages(count: int, size: int) -> int:
    """Pages of ``size`` needed for ``count`` items; an empty list still has page 1."""
    return max(1, -(-count // size))


def _page_size(raw: str | None) -> int:
    try:
        size = int(raw) if raw is not None else DEFAULT_PAGE_SIZE
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return min(size, MAX_PAGE_SIZE) if size > 0 else DEFAULT_PAGE_SIZE


def page_request(page: str | None, page_size: str | None) -> PageRequest:
    """Parse ``?page=`` and ``?page_size=``; raises ``InvalidPage`` for a page that cannot exist."""
    size = _page_size(page_size)
    if page is None or page == "":
        return PageRequest(1, size)
    if page == LAST:
        return PageRequest(None, size)
    try:
        number = int(page)
    except ValueError:
        raise InvalidPage(page) from None
    if number < 1:
        raise InvalidPage(page)
    return PageRequest(number, size)


def links(url: URL, number: int, pages: int) -> tuple[str | None, str | None]:
    """Absolute (next, previous) URLs; the other query parameters are kept."""
    following = str(url.include_query_params(page=number + 1)) if number < pages else None
    if number == 1:
        previous = None
    elif number == 2:
        previous = str(url.remove_query_params("page"))
    else:
        previous = str(url.include_query_params(page=number - 1))
    return following, previous


MAX_MESSAGE_ID: Final = 2**63 - 1
_CURSOR_TEXT: Final = re.compile(r"(before|after):(0|[1-9][0-9]{0,18})")
_MAX_CURSOR: Final = 40  # characters; "after:9223372036854775807" encodes to 34


@dataclass(frozen=True, slots=True)
class Cursor:
    """The page of the messages just older (``before``) or newer (``after``) than message id
    ``boundary``; the direction names the reporter's query parameter."""

    direction: Literal["before", "after"]
    boundary: int

    def encode(self) -> str:
        text = f"{self.direction}:{self.boundary}".encode()
        return base64.urlsafe_b64encode(text).rstrip(b"=").decode()

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        """The cursor ``encode`` wrote as ``raw``; raises ``InvalidPage`` for anything else."""
        if len(raw) > _MAX_CURSOR or not raw.isascii():
            raise InvalidPage(raw[:_MAX_CURSOR])
        try:
            text = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidPage(raw) from None
        match = _CURSOR_TEXT.fullmatch(text.decode("ascii", "replace"))
        if match is None or int(match[2]) > MAX_MESSAGE_ID:
            raise InvalidPage(raw)
        cursor = cls("before" if match[1] == "before" else "after", int(match[2]))
        if cursor.encode() != raw:  # one spelling per cursor
            raise InvalidPage(raw)
        return cursor


def cursor_request(cursor: str, page_size: str | None) -> tuple[Cursor, int]:
    """Parse ``?cursor=`` (raises ``InvalidPage``) and ``?page_size=`` as ``page_request``."""
    return Cursor.decode(cursor), _page_size(page_size)


def cursor_links(
    url: URL, next_before: int | None, previous_after: int | None
) -> tuple[str | None, str | None]:
    """Absolute (next, previous) URLs to the neighbours the reporter named (``None``: none);
    ``page`` and an old ``cursor`` give way, the other query parameters are kept."""
    base = url.remove_query_params(["page", "cursor"])

    def to(cursor: Cursor) -> str:
        return str(base.include_query_params(cursor=cursor.encode()))

    return (
        None if next_before is None else to(Cursor("before", next_before)),
        None if previous_after is None else to(Cursor("after", previous_after)),
    )


async def numbered_page(
    pool: asyncpg.Pool,
    columns: str,
    source: str,
    order: str,
    args: Sequence[Any],
    page: PageRequest,
) -> tuple[int, int, list[asyncpg.Record]]:
    """(total rows of ``source``, page number, that page's ``columns`` in ``order``):
    ``source`` is the SQL after the select list (``FROM table WHERE …`` over ``args``). One
    snapshot for both queries, so the count and the page agree; raises ``InvalidPage`` past
    the end."""
    n = len(args)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        count = int(await conn.fetchval(f"SELECT count(*) {source}", *args))
        number, offset = page.resolve(count)
        rows = await conn.fetch(
            f"SELECT {columns} {source} ORDER BY {order} LIMIT ${n + 1} OFFSET ${n + 2}",
            *args,
            page.size,
            offset,
        )
    return count, number, list(rows)
