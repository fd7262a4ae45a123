"""DRF-compatible page parameters and links."""

from __future__ import annotations

import pytest
from starlette.datastructures import URL

from gateway.pagination import InvalidPage, PageRequest, links, num_pages, page_request


@pytest.mark.parametrize(
    ("page", "size", "expected"),
    [(None, None, PageRequest(1, 25)), ("3", "10", PageRequest(3, 10)),
     ("last", None, PageRequest(None, 25)), ("", "5000", PageRequest(1, 1000)),
     ("1", "0", PageRequest(1, 25)), ("1", "-4", PageRequest(1, 25)),
     ("1", "x", PageRequest(1, 25))],
)  # fmt: skip
def test_page_request(page: str | None, size: str | None, expected: PageRequest) -> None:
    assert page_request(page, size) == expected


@pytest.mark.parametrize("page", ["0", "-1", "x", "1.0", "first"])
def test_impossible_pages(page: str) -> None:
    with pytest.raises(InvalidPage):
        page_request(page, None)


def test_resolve_against_the_count() -> None:
    assert PageRequest(2, 25).resolve(26) == (2, 25)
    assert PageRequest(None, 25).resolve(51) == (3, 50)
    assert PageRequest(1, 25).resolve(0) == (1, 0)
    assert PageRequest(None, 25).resolve(0) == (1, 0)
    with pytest.raises(InvalidPage):
        PageRequest(3, 25).resolve(50)


def test_num_pages() -> None:
    assert [num_pages(n, 25) for n in (0, 1, 25, 26, 50, 51)] == [1, 1, 1, 2, 2, 3]


def test_links_keep_filters_and_drop_page_one() -> None:
    url = URL("http://h/api/v1/clients/?tag=vip&page=2")
    assert links(url, 2, 3) == (
        "http://h/api/v1/clients/?tag=vip&page=3",
        "http://h/api/v1/clients/?tag=vip",
    )
    assert links(URL("http://h/c/?page=3"), 3, 3) == (None, "http://h/c/?page=2")
    assert links(URL("http://h/c/"), 1, 1) == (None, None)
