"""Page-number pagination answering exactly like Django REST framework's PageNumberPagination.

``?page=`` is 1-based (``last`` works too) and a page outside the list is 404 "Invalid page.";
``?page_size=`` defaults to 25, a bad value falls back to the default, and a large one is capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from starlette.datastructures import URL

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "InvalidPage",
    "PageRequest",
    "links",
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
