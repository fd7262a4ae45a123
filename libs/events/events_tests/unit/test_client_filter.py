"""Who is in a mailing's audience: parsing and matching ``client_filter``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms_events.audience import matches_filter, parse_client_filter


@pytest.mark.parametrize("text", [None, "", "   ", ",", " , ,, "])
def test_empty_filter_has_no_items(text: str | None) -> None:
    assert parse_client_filter(text) == frozenset()


def test_filter_items_are_split_on_commas_and_trimmed() -> None:
    assert parse_client_filter(" 999, vip ,,912,") == frozenset({"999", "vip", "912"})


def test_repeated_items_count_once() -> None:
    assert parse_client_filter("999,999, 999") == frozenset({"999"})


def test_spaces_inside_an_item_are_kept() -> None:
    assert parse_client_filter("gold club, 999") == frozenset({"gold club", "999"})


def test_empty_filter_matches_every_client() -> None:
    assert matches_filter(frozenset(), "999", None)
    assert matches_filter(parse_client_filter(None), "912", "vip")


def test_client_matches_by_operator_code() -> None:
    assert matches_filter(parse_client_filter("999, vip"), "999", None)


def test_client_matches_by_tag() -> None:
    assert matches_filter(parse_client_filter("912, vip"), "999", "vip")


def test_client_with_neither_operator_code_nor_tag_listed_is_skipped() -> None:
    assert not matches_filter(parse_client_filter("912, vip"), "999", "regular")


def test_client_without_tag_matches_only_by_operator_code() -> None:
    assert not matches_filter(parse_client_filter("vip"), "999", None)


def test_matching_is_exact_and_case_sensitive() -> None:
    items = parse_client_filter("VIP, 99")
    assert not matches_filter(items, "999", "vip")


@given(
    items=st.lists(st.text(alphabet="abc9 ", min_size=1, max_size=4), max_size=5),
    operator_code=st.text(alphabet="9", min_size=1, max_size=3),
    tag=st.one_of(st.none(), st.text(alphabet="abc", max_size=3)),
)
def test_parsed_filter_matches_exactly_the_trimmed_items(
    items: list[str], operator_code: str, tag: str | None
) -> None:
    parsed = parse_client_filter(",".join(items))
    wanted = {item.strip() for item in items} - {""}
    assert parsed == wanted
    expected = not wanted or operator_code in wanted or tag in wanted
    assert matches_filter(parsed, operator_code, tag) == expected
