"""The importer's pure parts: incremental line splitting, CSV rows, NDJSON lines, media types."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.clients.importer import (
    CsvRows,
    ImportFormat,
    LineSplitter,
    UnsupportedMediaType,
    import_format,
    parse_ndjson_line,
)
from gateway.errors import InvalidInput


def _split(data: bytes, cuts: list[int], max_line: int = 1000) -> list[tuple[int, bytes | None]]:
    splitter = LineSplitter(max_line)
    out: list[tuple[int, bytes | None]] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        out += splitter.feed(data[start:cut])
        start = max(start, cut)
    return out + splitter.close()


@given(
    lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    crlf=st.booleans(),
    final_newline=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=800), max_size=15),
)
def test_any_chunking_gives_the_same_numbered_lines(
    lines: list[bytes], crlf: bool, final_newline: bool, cuts: list[int]
) -> None:
    lines = [line.rstrip(b"\r") for line in lines]
    sep = b"\r\n" if crlf else b"\n"
    data = sep.join(lines) + (sep if final_newline and lines else b"")
    expected = list(enumerate(lines, 1))
    if lines and lines[-1] == b"" and not final_newline:
        expected = expected[:-1]  # a body ending in a separator has no extra empty line
    assert _split(data, cuts) == expected


def test_overlong_lines_are_reported_not_kept() -> None:
    data = b"short\n" + b"x" * 50 + b"\nok\n" + b"y" * 50
    for cuts in ([], [3, 10, 20, 30, 40, 58], list(range(0, len(data), 7))):
        assert _split(data, cuts, max_line=20) == [(1, b"short"), (2, None), (3, b"ok"), (4, None)]


def test_csv_without_header_is_positional() -> None:
    rows = CsvRows()
    assert rows.parse(b"79991234567,vip,Europe/Moscow") == {
        "phone": "79991234567", "tag": "vip", "time_zone": "Europe/Moscow"
    }  # fmt: skip
    assert rows.parse(b"79991234567") == {"phone": "79991234567"}
    assert rows.parse(b"79991234567,,") == {"phone": "79991234567", "tag": ""}
    assert rows.parse(b"   ") is None


def test_csv_header_names_columns_in_any_order() -> None:
    rows = CsvRows()
    assert rows.parse(b" Tag ,PHONE") is None
    assert rows.parse(b"vip,79991234567,extra") == {"phone": "79991234567", "tag": "vip"}


def test_csv_header_only_counts_on_the_first_line() -> None:
    rows = CsvRows()
    rows.parse(b"79991234567")
    assert rows.parse(b"phone,tag") == {"phone": "phone", "tag": "tag"}


def test_csv_quotes_and_broken_lines() -> None:
    rows = CsvRows()
    assert rows.parse(b'79991234567,"a, b"') == {"phone": "79991234567", "tag": "a, b"}
    with pytest.raises(InvalidInput):
        rows.parse(b'79991234567,"unclosed')
    with pytest.raises(InvalidInput) as caught:
        rows.parse(b"\xff\xfe")
    assert caught.value.errors == {"non_field_errors": ["Line is not valid UTF-8."]}


def test_ndjson_lines() -> None:
    assert parse_ndjson_line(b'{"phone": "79991234567"}') == {"phone": "79991234567"}
    assert parse_ndjson_line(b"  ") is None
    with pytest.raises(InvalidInput) as caught:
        parse_ndjson_line(b"{oops")
    assert caught.value.errors["non_field_errors"][0].startswith("JSON parse error - ")


@pytest.mark.parametrize(
    ("content_type", "fmt"),
    [("text/csv", ImportFormat.CSV), ("Text/CSV; charset=UTF-8", ImportFormat.CSV),
     ("application/x-ndjson", ImportFormat.NDJSON), ("application/ndjson", ImportFormat.NDJSON)],
)  # fmt: skip
def test_import_formats(content_type: str, fmt: ImportFormat) -> None:
    assert import_format(content_type) is fmt


@pytest.mark.parametrize(
    "content_type", [None, "", "application/json", "text/plain", "text/csv; charset=latin-1"]
)
def test_unsupported_media_types(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        import_format(content_type)
