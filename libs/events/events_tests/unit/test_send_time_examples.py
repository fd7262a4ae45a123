"""Worked examples of the send-time rule: windows, zones, midnight and daylight saving."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from sms_events.window import SendWindow, send_time, send_times_by_zone, send_window

DAY = timedelta(days=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(zone: str, *wall: int, fold: int = 0) -> datetime:
    """A wall time (year, month, day, hour, minute[, second]) in ``zone`` as a UTC instant.

    ``fold=1`` picks the second pass of a repeated wall time.
    """
    year, month, day, hour, minute, *rest = wall
    second = rest[0] if rest else 0
    naive = datetime(year, month, day, hour, minute, second, fold=fold)
    return naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def window(start: str, end: str) -> SendWindow:
    return SendWindow(time.fromisoformat(start), time.fromisoformat(end))


# --- no window -----------------------------------------------------------------------------


def test_without_window_sends_at_start() -> None:
    start = utc(2026, 5, 1, 10, 0)
    assert send_time(start, start + DAY, None, "Asia/Vladivostok") == start


def test_without_window_sends_at_not_before_when_it_is_later() -> None:
    start = utc(2026, 5, 1, 10, 0)
    now = utc(2026, 5, 1, 12, 34, 56)
    assert send_time(start, start + DAY, None, "UTC", not_before=now) == now


def test_not_before_earlier_than_start_changes_nothing() -> None:
    start = utc(2026, 5, 1, 10, 0)
    earlier = start - DAY
    assert send_time(start, start + DAY, None, "UTC", not_before=earlier) == start


def test_without_window_sends_nothing_once_end_is_reached() -> None:
    start = utc(2026, 5, 1, 10, 0)
    end = start + DAY
    assert send_time(start, end, None, "UTC", not_before=end) is None
    assert send_time(start, start, None, "UTC") is None


# --- fixed-offset zones --------------------------------------------------------------------


def test_moscow_client_waits_for_the_window_to_open() -> None:
    start = local("Europe/Moscow", 2026, 5, 1, 6, 0)
    got = send_time(start, start + DAY, window("09:00", "21:00"), "Europe/Moscow")
    assert got == utc(2026, 5, 1, 6, 0)  # 09:00 MSK


def test_vladivostok_client_late_in_the_evening_gets_it_next_morning() -> None:
    start = utc(2026, 5, 1, 12, 0)  # 22:00 in Vladivostok (UTC+10)
    got = send_time(start, start + DAY, window("09:00", "21:00"), "Asia/Vladivostok")
    assert got == utc(2026, 5, 1, 23, 0)  # 09:00 on 2 May, local
    assert got == local("Asia/Vladivostok", 2026, 5, 2, 9, 0)


def test_new_york_client_is_sent_at_nine_eastern_daylight_time() -> None:
    start = utc(2026, 5, 1, 10, 0)  # 06:00 EDT
    got = send_time(start, start + DAY, window("09:00", "17:00"), "America/New_York")
    assert got == utc(2026, 5, 1, 13, 0)


def test_chatham_islands_quarter_hour_offset_is_respected() -> None:
    start = utc(2026, 6, 1, 0, 0)  # 12:45 local (UTC+12:45 in winter)
    got = send_time(start, start + 2 * DAY, window("09:00", "10:00"), "Pacific/Chatham")
    assert got == utc(2026, 6, 1, 20, 15)  # 09:00 on 2 June, local
    assert got == local("Pacific/Chatham", 2026, 6, 2, 9, 0)


def test_kathmandu_quarter_hour_offset_is_respected() -> None:
    start = utc(2026, 6, 1, 0, 0)  # 05:45 local (UTC+5:45)
    got = send_time(start, start + DAY, window("08:00", "20:00"), "Asia/Kathmandu")
    assert got == utc(2026, 6, 1, 2, 15)


# --- where the start falls relative to the window -----------------------------------------


@pytest.mark.parametrize(
    ("start_wall", "expected_wall"),
    [
        ((2026, 5, 1, 7, 59), (2026, 5, 1, 9, 0)),  # before the window: today's opening
        ((2026, 5, 1, 9, 0), (2026, 5, 1, 9, 0)),  # exactly at the opening
        ((2026, 5, 1, 12, 30), (2026, 5, 1, 12, 30)),  # inside: right away
        ((2026, 5, 1, 20, 59), (2026, 5, 1, 20, 59)),  # last minute inside
        ((2026, 5, 1, 21, 0), (2026, 5, 2, 9, 0)),  # the end is exclusive: tomorrow
        ((2026, 5, 1, 23, 0), (2026, 5, 2, 9, 0)),  # after the window: tomorrow
    ],
)
def test_start_before_inside_or_after_the_days_window(
    start_wall: tuple[int, ...], expected_wall: tuple[int, ...]
) -> None:
    zone = "Europe/Moscow"
    start = local(zone, *start_wall)
    got = send_time(start, start + 2 * DAY, window("09:00", "21:00"), zone)
    assert got == local(zone, *expected_wall)


def test_retry_time_inside_the_window_is_kept() -> None:
    zone = "Europe/Moscow"
    start = local(zone, 2026, 5, 1, 9, 0)
    retry = local(zone, 2026, 5, 1, 15, 7, 30)
    assert send_time(start, start + DAY, window("09:00", "21:00"), zone, retry) == retry


def test_retry_time_after_the_window_moves_to_the_next_opening() -> None:
    zone = "Europe/Moscow"
    start = local(zone, 2026, 5, 1, 9, 0)
    retry = local(zone, 2026, 5, 1, 21, 0, 1)
    got = send_time(start, start + 2 * DAY, window("09:00", "21:00"), zone, retry)
    assert got == local(zone, 2026, 5, 2, 9, 0)


# --- windows across midnight ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("start_wall", "expected_wall"),
    [
        ((2026, 5, 1, 15, 0), (2026, 5, 1, 22, 0)),  # afternoon: wait for the evening
        ((2026, 5, 1, 23, 30), (2026, 5, 1, 23, 30)),  # late evening: inside
        ((2026, 5, 2, 2, 0), (2026, 5, 2, 2, 0)),  # after midnight: still inside
        ((2026, 5, 2, 6, 0), (2026, 5, 2, 22, 0)),  # at the closing time: evening
    ],
)
def test_window_across_midnight_covers_the_late_evening_and_the_early_morning(
    start_wall: tuple[int, ...], expected_wall: tuple[int, ...]
) -> None:
    zone = "Europe/Moscow"
    start = local(zone, *start_wall)
    got = send_time(start, start + 2 * DAY, window("22:00", "06:00"), zone)
    assert got == local(zone, *expected_wall)


def test_window_across_midnight_knows_which_times_it_contains() -> None:
    night = window("22:00", "06:00")
    assert night.crosses_midnight
    assert night.contains(time(22, 0))
    assert night.contains(time(0, 0))
    assert night.contains(time(5, 59, 59))
    assert not night.contains(time(6, 0))
    assert not night.contains(time(21, 59))


# --- the end of the mailing ----------------------------------------------------------------


def test_end_reached_before_any_window_sends_nothing() -> None:
    zone = "Europe/Moscow"
    start = local(zone, 2026, 5, 1, 10, 0)
    end = local(zone, 2026, 5, 2, 8, 59)
    assert send_time(start, end, window("09:00", "10:00"), zone) is None


def test_end_exactly_at_the_opening_sends_nothing() -> None:
    zone = "Europe/Moscow"
    start = local(zone, 2026, 5, 1, 10, 0)
    end = local(zone, 2026, 5, 2, 9, 0)
    assert send_time(start, end, window("09:00", "10:00"), zone) is None


def test_one_minute_before_the_end_is_still_sendable() -> None:
    zone = "Europe/Moscow"
    start = local(zone, 2026, 5, 1, 10, 0)
    end = local(zone, 2026, 5, 2, 9, 1)
    got = send_time(start, end, window("09:00", "10:00"), zone)
    assert got == local(zone, 2026, 5, 2, 9, 0)


def test_window_days_away_is_found_without_stepping_through_them() -> None:
    # A long mailing: the answer is a few days on, never a minute-by-minute walk.
    zone = "Asia/Kathmandu"
    start = local(zone, 2026, 1, 1, 10, 0)
    got = send_time(start, start + 365 * DAY, window("09:00", "09:01"), zone)
    assert got == local(zone, 2026, 1, 2, 9, 0)


# --- daylight saving: Europe/Berlin (2026: 29 March, 25 October) -------------------------


def test_berlin_spring_forward_opening_in_the_skipped_hour_sends_at_three() -> None:
    # 02:00-03:00 does not exist on 29 March; the first in-window wall time is 03:00 CEST.
    start = local("Europe/Berlin", 2026, 3, 29, 0, 0)
    got = send_time(start, start + DAY, window("02:30", "04:00"), "Europe/Berlin")
    assert got == utc(2026, 3, 29, 1, 0)
    assert got.astimezone(ZoneInfo("Europe/Berlin")).time() == time(3, 0)


def test_berlin_spring_forward_window_inside_the_skipped_hour_waits_a_day() -> None:
    start = local("Europe/Berlin", 2026, 3, 29, 0, 0)
    got = send_time(start, start + 3 * DAY, window("02:15", "02:45"), "Europe/Berlin")
    assert got == local("Europe/Berlin", 2026, 3, 30, 2, 15)
    assert got == utc(2026, 3, 30, 0, 15)


def test_berlin_spring_forward_window_ending_in_the_skipped_hour_is_an_hour_shorter() -> None:
    start = local("Europe/Berlin", 2026, 3, 29, 1, 59)
    got = send_time(start, start + 2 * DAY, window("01:00", "02:30"), "Europe/Berlin")
    assert got == start  # 01:59 CET still in; one minute later it is 03:00 CEST


def test_berlin_fall_back_repeated_hour_earliest_pass_wins() -> None:
    start = local("Europe/Berlin", 2026, 10, 25, 0, 0)
    got = send_time(start, start + DAY, window("02:00", "02:30"), "Europe/Berlin")
    assert got == utc(2026, 10, 25, 0, 0)  # 02:00 CEST, the first pass


def test_berlin_fall_back_second_pass_is_used_when_the_first_has_gone() -> None:
    start = local("Europe/Berlin", 2026, 10, 25, 2, 40)  # first pass, after the window
    got = send_time(start, start + DAY, window("02:00", "02:30"), "Europe/Berlin")
    assert got == local("Europe/Berlin", 2026, 10, 25, 2, 0, fold=1)
    assert got == utc(2026, 10, 25, 1, 0)


def test_berlin_fall_back_jump_into_the_middle_of_the_window_sends_at_the_jump() -> None:
    # 02:45 CEST is outside [01:30, 02:30); at 03:00 CEST the clock reads 02:00 CET: inside.
    start = local("Europe/Berlin", 2026, 10, 25, 2, 45)
    got = send_time(start, start + DAY, window("01:30", "02:30"), "Europe/Berlin")
    assert got == utc(2026, 10, 25, 1, 0)


# --- daylight saving: America/New_York (2026: 8 March, 1 November) ------------------------


def test_new_york_spring_forward_opening_in_the_skipped_hour_sends_at_three() -> None:
    start = local("America/New_York", 2026, 3, 8, 0, 0)
    got = send_time(start, start + DAY, window("02:30", "05:00"), "America/New_York")
    assert got == utc(2026, 3, 8, 7, 0)  # 03:00 EDT


def test_new_york_spring_forward_window_equal_to_the_skipped_hour_waits_a_day() -> None:
    start = local("America/New_York", 2026, 3, 8, 0, 0)
    got = send_time(start, start + 3 * DAY, window("02:00", "03:00"), "America/New_York")
    assert got == utc(2026, 3, 9, 6, 0)  # 02:00 EDT on 9 March


def test_new_york_fall_back_repeated_hour_earliest_pass_wins() -> None:
    start = local("America/New_York", 2026, 11, 1, 0, 0)
    got = send_time(start, start + DAY, window("01:00", "01:30"), "America/New_York")
    assert got == utc(2026, 11, 1, 5, 0)  # 01:00 EDT


def test_new_york_fall_back_second_pass_is_used_when_the_first_has_gone() -> None:
    start = local("America/New_York", 2026, 11, 1, 1, 45)  # 01:45 EDT
    got = send_time(start, start + DAY, window("01:00", "01:30"), "America/New_York")
    assert got == utc(2026, 11, 1, 6, 0)  # 01:00 EST


# --- a skipped day: Pacific/Apia jumped from 29 to 31 December 2011 ----------------------


def test_apia_skipped_day_sends_on_the_day_after_it() -> None:
    start = utc(2011, 12, 29, 20, 0)  # 29 Dec 10:00 local (UTC-10), window just closed
    got = send_time(start, start + 3 * DAY, window("09:00", "10:00"), "Pacific/Apia")
    assert got == utc(2011, 12, 30, 19, 0)  # 31 Dec 09:00 local (UTC+14)


def test_apia_jump_that_lands_at_midnight_opens_a_midnight_window() -> None:
    start = utc(2011, 12, 29, 22, 0)  # 29 Dec 12:00 local
    got = send_time(start, start + 3 * DAY, window("00:00", "01:00"), "Pacific/Apia")
    assert got == utc(2011, 12, 30, 10, 0)  # the jump itself: 31 Dec 00:00 local


# --- many zones at once ---------------------------------------------------------------------


def test_send_times_by_zone_computes_each_distinct_zone_once() -> None:
    start = utc(2026, 5, 1, 0, 0)
    end = start + 2 * DAY
    hours = window("09:00", "21:00")
    zones = ["Europe/Moscow", "Asia/Kathmandu", "Europe/Moscow", "America/New_York"]
    got = send_times_by_zone(start, end, hours, zones)
    assert set(got) == {"Europe/Moscow", "Asia/Kathmandu", "America/New_York"}
    for zone, when in got.items():
        assert when == send_time(start, end, hours, zone)


def test_send_times_by_zone_reports_zones_that_get_nothing_as_none() -> None:
    start = utc(2026, 5, 1, 0, 0)  # 03:00 in Moscow, 20:00 on 30 April in New York
    zones = ["Europe/Moscow", "America/New_York"]
    got = send_times_by_zone(start, start + timedelta(hours=2), window("02:00", "05:00"), zones)
    assert got == {"Europe/Moscow": start, "America/New_York": None}


# --- inputs the rule refuses ----------------------------------------------------------------


def test_result_is_in_utc_even_when_inputs_are_in_another_offset() -> None:
    plus3 = timezone(timedelta(hours=3))
    start = datetime(2026, 5, 1, 12, 0, tzinfo=plus3)
    got = send_time(start, start + DAY, None, "UTC")
    assert got == start
    assert got is not None and got.tzinfo is UTC


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        send_time(datetime(2026, 5, 1), utc(2026, 5, 2), None, "UTC")


def test_window_with_equal_start_and_end_is_rejected() -> None:
    with pytest.raises(ValueError, match="differ"):
        SendWindow(time(9, 0), time(9, 0))


def test_window_with_time_zone_aware_times_is_rejected() -> None:
    with pytest.raises(ValueError, match="naive"):
        SendWindow(time(9, 0, tzinfo=UTC), time(10, 0))


def test_send_window_from_mailing_fields_needs_both_times_or_neither() -> None:
    assert send_window(None, None) is None
    assert send_window(time(9), time(21)) == SendWindow(time(9), time(21))
    with pytest.raises(ValueError, match="both"):
        send_window(time(9), None)


def test_unknown_zone_is_an_error_not_a_silent_skip() -> None:
    start = utc(2026, 5, 1)
    with pytest.raises(ZoneInfoNotFoundError):
        send_time(start, start + DAY, window("09:00", "21:00"), "Mars/Olympus_Mons")
