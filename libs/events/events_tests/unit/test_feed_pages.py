"""The event feed's rules: cursors sort as the places they name, and paging with any limit, scan
cap and filter returns every wanted event exactly once, in order (checked against a plain
filter of the whole list)."""

from __future__ import annotations

import random

import pytest

from sms_events.feed import InvalidCursor, cursor_of, parse_cursor, plan_page
from sms_events.store import Checkpoint

_BIGINT = 2**63 - 1


def test_a_cursor_names_its_place_and_cursors_sort_as_their_places() -> None:
    rng = random.Random(7)
    places = [Checkpoint(0, 0), Checkpoint(_BIGINT, _BIGINT)] + [
        Checkpoint(rng.choice([rng.randrange(2**12), rng.randrange(_BIGINT)]),
                   rng.choice([rng.randrange(2**12), rng.randrange(_BIGINT)]))
        for _ in range(500)
    ]  # fmt: skip
    assert all(parse_cursor(cursor_of(p)) == p for p in places)
    assert sorted(places, key=cursor_of) == sorted(places)


@pytest.mark.parametrize(
    "raw",
    ["", "0" * 31, "0" * 33, "0" * 31 + "A", "8" + "0" * 31, "0" * 16 + "f" + "0" * 15,
     " " + "0" * 31, "0" * 30 + "-1", "YWZ0ZXI6NDE"],
)  # fmt: skip
def test_anything_cursor_of_did_not_write_is_refused(raw: str) -> None:
    with pytest.raises(InvalidCursor):
        parse_cursor(raw)


def _places(n: int) -> list[Checkpoint]:
    return [Checkpoint(100 + i // 3, 1000 + i) for i in range(n)]


def test_without_a_filter_a_page_is_the_next_events_and_says_whether_more_follow() -> None:
    places = _places(5)
    scanned = [(p, True) for p in places]

    first = plan_page(scanned[:4], Checkpoint(), limit=3, max_scanned=3)
    assert (first.chosen, first.next, first.has_more) == (places[:3], places[2], True)
    last = plan_page(scanned[3:], places[2], limit=3, max_scanned=3)
    assert (last.chosen, last.next, last.has_more) == (places[3:], places[4], False)


def test_a_page_that_matched_nothing_still_moves_the_cursor_past_what_it_examined() -> None:
    places = _places(6)
    plan = plan_page([(p, False) for p in places], Checkpoint(), limit=1, max_scanned=5)
    assert (plan.chosen, plan.next, plan.has_more) == ([], places[4], True)


def test_a_full_page_stops_just_before_the_first_wanted_event_left_out() -> None:
    places = _places(6)
    wanted = [True, False, False, True, False, False]
    plan = plan_page(list(zip(places, wanted, strict=True)), Checkpoint(), limit=1, max_scanned=5)
    assert (plan.chosen, plan.next, plan.has_more) == ([places[0]], places[2], True)


def test_an_empty_scan_keeps_the_cursor_it_was_given() -> None:
    after = Checkpoint(5, 6)
    plan = plan_page([], after, limit=10, max_scanned=10)
    assert (plan.chosen, plan.next, plan.has_more) == ([], after, False)


@pytest.mark.parametrize("seed", range(40))
def test_paging_returns_every_wanted_event_once_in_order(seed: int) -> None:
    rng = random.Random(seed)
    places = _places(rng.randrange(0, 60))
    wanted = {p for p in places if rng.random() < rng.choice([0.0, 0.1, 0.5, 1.0])}
    limit = rng.randrange(1, 6)
    max_scanned = rng.choice([limit, 3 * limit, 10 * limit])

    seen: list[Checkpoint] = []
    after, requests = Checkpoint(), 0
    while True:
        requests += 1
        assert requests <= len(places) + 1, "a page made no progress"
        rest = [(p, p in wanted) for p in places if p > after]
        plan = plan_page(rest[: max_scanned + 1], after, limit, max_scanned)
        assert len(plan.chosen) <= limit and plan.next >= after
        seen += plan.chosen
        after = plan.next
        if not plan.has_more:
            break

    assert seen == [p for p in places if p in wanted]
    assert after == (places[-1] if places else Checkpoint())
