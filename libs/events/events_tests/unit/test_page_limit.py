"""How many events a reader bounded by bytes asks for next (``store.PageLimit``)."""

from __future__ import annotations

from sms_events.store import PageLimit


def test_a_page_cut_by_bytes_asks_next_for_what_fit_and_a_quarter_more() -> None:
    limit = PageLimit(2000)
    limit.saw(asked=2000, fetched=2000, kept=90)
    assert limit.value == 90 + 22 + 1


def test_a_page_full_by_count_doubles_up_to_the_most() -> None:
    limit = PageLimit(2000)
    limit.saw(asked=2000, fetched=2000, kept=90)
    limit.saw(asked=limit.value, fetched=limit.value, kept=limit.value)
    assert limit.value == 226
    for _ in range(10):
        limit.saw(asked=limit.value, fetched=limit.value, kept=limit.value)
    assert limit.value == 2000


def test_the_end_of_what_is_committed_teaches_nothing() -> None:
    limit = PageLimit(2000)
    limit.saw(asked=2000, fetched=2000, kept=90)
    before = limit.value
    limit.saw(asked=before, fetched=3, kept=3)
    assert limit.value == before


def test_at_least_one_is_asked_for() -> None:
    limit = PageLimit(10)
    limit.saw(asked=10, fetched=10, kept=0)
    assert limit.value == 1
