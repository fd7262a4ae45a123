"""The opaque cursors of message pages: one spelling per position, anything else an invalid
page, and links that keep the filters."""

from __future__ import annotations

import base64

import pytest
from starlette.datastructures import URL

from gateway.pagination import Cursor, InvalidPage, cursor_links, cursor_request

MAX_ID = 2**63 - 1


def b64(text: str, pad: bool = False) -> str:
    raw = base64.urlsafe_b64encode(text.encode()).decode()
    return raw if pad else raw.rstrip("=")


@pytest.mark.parametrize("boundary", [0, 1, 2, 10**12 + 7, MAX_ID])
@pytest.mark.parametrize("direction", ["before", "after"])
def test_a_cursor_decodes_to_what_was_encoded(direction: str, boundary: int) -> None:
    cursor = Cursor("before" if direction == "before" else "after", boundary)
    encoded = cursor.encode()
    assert encoded == b64(f"{direction}:{boundary}")
    assert encoded.isascii() and "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert Cursor.decode(encoded) == cursor


@pytest.mark.parametrize(
    "raw",
    [
        "", "x", "!!!!", "YmVmb3JlOjI=", b64("before:2", pad=True), b64("before:02"),
        b64("before:-1"), b64("before:+1"), b64("before: 1"), b64("before:1 "), b64("before"),
        b64("sideways:1"), b64("BEFORE:1"), b64(f"after:{MAX_ID + 1}"), b64("after:1" + "0" * 19),
        b64("after:١٢"), "é" + b64("after:1"), b64("after:1") + "A" * 60,
        base64.b64encode(b"\xff\xfe:1").decode(),
    ],
)  # fmt: skip
def test_anything_else_is_an_invalid_page(raw: str) -> None:
    with pytest.raises(InvalidPage):
        Cursor.decode(raw)


def test_the_page_size_beside_a_cursor_reads_as_beside_a_page() -> None:
    at = Cursor("after", 5)
    assert cursor_request(at.encode(), None) == (at, 25)
    assert cursor_request(at.encode(), "5000") == (at, 1000)
    assert cursor_request(at.encode(), "x") == (at, 25)


def test_links_carry_a_cursor_and_keep_the_filters() -> None:
    base = "http://h/api/v1/mailings/7/messages/?status=DL&page_size=2"
    following, previous = cursor_links(URL(f"{base}&page=3"), 41, 58)
    assert (following, previous) == (
        f"{base}&cursor={b64('before:41')}",
        f"{base}&cursor={b64('after:58')}",
    )
    assert following is not None
    assert cursor_links(URL(following), None, 40) == (None, f"{base}&cursor={b64('after:40')}")
    assert cursor_links(URL("http://h/m/"), None, None) == (None, None)
