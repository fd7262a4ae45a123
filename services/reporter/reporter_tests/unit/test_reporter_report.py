"""The daily report's pure rules: due days, local day bounds across DST and half-hour zones,
the Message-ID, and the rendering."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from reporter.report import (
    DailyReport,
    Figures,
    MailingLine,
    day_bounds,
    due_days,
    message_id,
    render_html,
    render_text,
)

BERLIN = ZoneInfo("Europe/Berlin")
AT = time(0, 1)


def test_yesterday_is_due_once_the_report_time_has_passed() -> None:
    first = date(2026, 1, 1)
    before = datetime(2026, 11, 27, 0, 0, 59, tzinfo=BERLIN)
    after = datetime(2026, 11, 27, 0, 1, tzinfo=BERLIN)
    assert due_days(before, BERLIN, AT, first, 1) == [date(2026, 11, 25)]
    assert due_days(after, BERLIN, AT, first, 1) == [date(2026, 11, 26)]
    assert due_days(after, BERLIN, AT, first, 3) == [date(2026, 11, d) for d in (24, 25, 26)]


def test_due_days_start_at_the_first_day_with_data() -> None:
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert due_days(now, ZoneInfo("UTC"), AT, None, 7) == []
    assert due_days(now, ZoneInfo("UTC"), AT, date(2026, 11, 25), 7) == [
        date(2026, 11, 25),
        date(2026, 11, 26),
    ]
    assert due_days(now, ZoneInfo("UTC"), AT, date(2026, 11, 27), 7) == []


def test_a_late_report_time_is_on_the_following_day() -> None:
    zone = ZoneInfo("UTC")
    at = time(23, 30)
    assert due_days(datetime(2026, 11, 27, 23, 0, tzinfo=UTC), zone, at, date(2026, 1, 1), 1) == [
        date(2026, 11, 25)
    ]
    assert due_days(datetime(2026, 11, 27, 23, 30, tzinfo=UTC), zone, at, date(2026, 1, 1), 1) == [
        date(2026, 11, 26)
    ]


def test_local_days_tile_across_dst_changes() -> None:
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    start, end = day_bounds(spring, BERLIN)
    assert end - start == timedelta(hours=23)
    assert start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    start, end = day_bounds(autumn, BERLIN)
    assert end - start == timedelta(hours=25)
    for zone in ("America/Santiago", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham"):
        z = ZoneInfo(zone)
        day = date(2026, 1, 1)
        for _ in range(366):
            assert day_bounds(day, z)[1] == day_bounds(day + timedelta(days=1), z)[0]
            day += timedelta(days=1)


def test_half_and_quarter_hour_zones_start_on_a_quarter_hour() -> None:
    for zone in ("Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide", "Pacific/Chatham"):
        start, end = day_bounds(date(2026, 6, 1), ZoneInfo(zone))
        assert start.minute % 15 == 0 and end.minute % 15 == 0 and start.second == 0


def test_message_id_is_the_same_for_every_send_of_a_day() -> None:
    day = date(2026, 11, 27)
    mid = message_id(day, "Europe/Berlin", "Reports <reports@example.org>")
    assert mid == "<daily-report.2026-11-27.europe.berlin@example.org>"
    assert mid == message_id(day, "Europe/Berlin", "reports@example.org")
    assert message_id(day, "UTC", "x@y.z", resend=3) == "<daily-report.2026-11-27.utc.resend3@y.z>"


def report(mailings: list[MailingLine], more: int = 0) -> DailyReport:
    start, end = day_bounds(date(2026, 11, 27), BERLIN)
    return DailyReport(
        day=date(2026, 11, 27),
        tz="Europe/Berlin",
        start=start,
        end=end,
        generated_at=end + timedelta(minutes=1),
        totals=Figures(delivered=9, undelivered=1, cancelled=2, attempts=14),
        mailings=mailings,
        more_mailings=more,
    )


def test_text_and_html_carry_the_same_figures() -> None:
    line = MailingLine(
        42, "running", datetime(2026, 11, 27, 8, 0, tzinfo=UTC), None, Figures(9, 1, 2, 14)
    )
    r = report([line], more=3)
    text, page = render_text(r), render_html(r)
    assert "SMS platform statistics for 2026-11-27 (Europe/Berlin)" in text
    assert "Day: 2026-11-27 00:00 to 2026-11-28 00:00 Europe/Berlin" in text
    assert "Delivery rate:       90.0%" in text
    assert "Mailings active that day (4)" in text and "... and 3 more mailings" in text
    assert "2026-11-27 09:00" in text  # the start, in the report's zone
    for value in ("42", "running", "90.0%", "14", "and 3 more mailings"):
        assert value in page
    assert "No mailing" in render_text(report([]))


def test_html_escapes_what_it_shows() -> None:
    line = MailingLine(1, "<b>x</b>", None, None, Figures())
    page = render_html(report([line]))
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "n/a" in page
