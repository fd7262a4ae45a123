"""The forecast's departures: each zone's messages leave when its window opens, at the send
rate, spilling into the zone's next window when the rate cannot reach them in this one."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from gateway.mailings.forecast import MAX_HOURS, Unsendable, cost, departures
from sms_events.window import SendWindow

NOW = datetime(2030, 3, 4, 0, 0, tzinfo=UTC)  # a Monday, no DST change near
H = timedelta(hours=1)


def test_without_a_rate_limit_each_zone_leaves_in_the_hour_its_window_opens() -> None:
    plan = departures(
        {"Europe/Moscow": 30, "Asia/Tokyo": 20, "UTC": 5},
        start=NOW, end=NOW + 2 * 24 * H, window=SendWindow(time(9), time(10)), now=NOW, rate=0,
    )  # fmt: skip
    # 09:00 local: Tokyo (+9) at 00:00 UTC, Moscow (+3) at 06:00, UTC at 09:00.
    assert plan.hours == {NOW: 20, NOW + 6 * H: 30, NOW + 9 * H: 5}
    assert plan.unsendable == {}
    hours, more = plan.hour_list(NOW)
    assert len(hours) == 10 and not more
    assert sum(n for _, n in hours) == 55


def test_the_rate_spreads_messages_over_hours_exactly() -> None:
    plan = departures({"UTC": 10_000}, start=NOW, end=NOW + 24 * H, window=None, now=NOW, rate=2)
    assert plan.hours == {NOW: 7200, NOW + H: 2800}
    assert plan.last == NOW + timedelta(seconds=4999.5)


def test_what_the_rate_cannot_reach_waits_for_the_next_window() -> None:
    # One hour a day at 1/s: 3600 per window, the rest on the following days.
    plan = departures(
        {"UTC": 9000}, start=NOW, end=NOW + 3 * 24 * H, window=SendWindow(time(9), time(10)),
        now=NOW, rate=1,
    )  # fmt: skip
    assert plan.hours == {NOW + 9 * H: 3600, NOW + 33 * H: 3600, NOW + 57 * H: 1800}
    plan = departures(
        {"UTC": 9000}, start=NOW, end=NOW + 2 * 24 * H, window=SendWindow(time(9), time(10)),
        now=NOW, rate=1,
    )  # fmt: skip
    assert plan.unsendable == {Unsendable.RATE: {"UTC": 1800}}


def test_zones_share_the_rate_in_the_order_their_windows_open() -> None:
    plan = departures(
        {"Asia/Tokyo": 3600, "UTC": 3600}, start=NOW, end=NOW + 24 * H, window=None,
        now=NOW, rate=1,
    )  # fmt: skip
    assert plan.hours == {NOW: 3600, NOW + H: 3600}


def test_zones_without_a_moment_before_the_end_and_unknown_zones_are_unsendable() -> None:
    plan = departures(
        {"UTC": 3, "Asia/Tokyo": 4, "Mars/Olympus": 2},
        start=NOW + 2 * H, end=NOW + 8 * H, window=SendWindow(time(9), time(17)), now=NOW,
        rate=0,
    )  # fmt: skip
    # Tokyo is 11:00-17:00 local then; UTC's window opens at 09:00, after the end.
    assert plan.hours == {NOW + 2 * H: 4}
    assert plan.unsendable == {
        Unsendable.NO_WINDOW: {"UTC": 3}, Unsendable.UNKNOWN_ZONE: {"Mars/Olympus": 2}
    }  # fmt: skip
    assert plan.opens == {"UTC": None, "Asia/Tokyo": NOW + 2 * H, "Mars/Olympus": None}


def test_a_start_in_the_past_sends_from_now() -> None:
    plan = departures({"UTC": 5}, start=NOW - 24 * H, end=NOW + H, window=None, now=NOW, rate=0)
    assert plan.hours == {NOW: 5}


def test_hours_are_listed_up_to_a_month() -> None:
    plan = departures(
        {"UTC": 60 * 24 * 3600}, start=NOW, end=NOW + 90 * 24 * H, window=None, now=NOW, rate=1
    )
    hours, more = plan.hour_list(NOW)
    assert len(hours) == MAX_HOURS and more


def test_cost_is_messages_times_segments_times_price() -> None:
    assert cost(1000, 2, Decimal("0.35")) == Decimal("700.00")
