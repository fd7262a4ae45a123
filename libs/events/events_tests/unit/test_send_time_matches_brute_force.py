"""Property: send_time equals a minute-by-minute search over the same rule.

Starts, windows and zone offsets are whole minutes (every zone below has minute offsets in
2024-2027), so the first sendable instant is a whole minute and walking minutes finds it exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from sms_events.window import SendSlot, SendWindow, send_slot, send_time, send_times_by_zone

MINUTE = timedelta(minutes=1)
MINUTES_PER_DAY = 24 * 60
YEARS_START = datetime(2024, 1, 1, tzinfo=UTC)
YEARS_END = datetime(2028, 1, 1, tzinfo=UTC)
YEARS_MINUTES = (YEARS_END - YEARS_START) // MINUTE
MAX_SPAN_MINUTES = 3 * MINUTES_PER_DAY

ZONES = [
    "UTC",
    "Europe/Moscow",
    "Europe/Berlin",
    "Europe/London",
    "Europe/Dublin",  # "negative" DST in tzdata: winter is the saving time
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",  # UTC-3:30 with DST
    "America/Santiago",  # southern DST, switches at local midnight
    "America/Havana",  # switches at local midnight: 00:00 does not exist on spring day
    "America/Sao_Paulo",
    "Asia/Kolkata",  # UTC+5:30
    "Asia/Kathmandu",  # UTC+5:45
    "Asia/Tehran",  # UTC+3:30
    "Asia/Vladivostok",
    "Australia/Adelaide",  # UTC+9:30 with DST
    "Australia/Lord_Howe",  # half-hour DST shift
    "Pacific/Chatham",  # UTC+12:45 with DST
    "Pacific/Kiritimati",  # UTC+14
    "Pacific/Pago_Pago",  # UTC-11
    "Africa/Casablanca",  # offset changes around Ramadan
    "Antarctica/Troll",  # two-hour DST jump
]


def brute_force(
    start: datetime,
    end: datetime,
    window: tuple[int, int] | None,
    zone: str,
    not_before: datetime | None,
) -> datetime | None:
    """The first whole minute at or after start/not_before, before end, inside the window."""
    tz = ZoneInfo(zone)
    moment = start if not_before is None else max(start, not_before)
    while moment < end:
        if window is None:
            return moment
        wall = moment.astimezone(tz)
        if in_window(wall.hour * 60 + wall.minute, window):
            return moment
        moment += MINUTE
    return None


def brute_force_slot(
    start: datetime, end: datetime, window: tuple[int, int] | None, zone: str, now: datetime
) -> SendSlot | None:
    """The first sendable minute from ``now``, and the first minute after it that is not."""
    opens = brute_force(start, end, window, zone, now)
    if opens is None:
        return None
    tz = ZoneInfo(zone)
    moment = opens
    while moment < end:
        wall = moment.astimezone(tz)
        if window is not None and not in_window(wall.hour * 60 + wall.minute, window):
            return SendSlot(opens, moment)
        moment += MINUTE
    return SendSlot(opens, end)


def in_window(minute_of_day: int, window: tuple[int, int]) -> bool:
    opens, closes = window
    if opens < closes:
        return opens <= minute_of_day < closes
    return minute_of_day >= opens or minute_of_day < closes


def as_send_window(window: tuple[int, int] | None) -> SendWindow | None:
    if window is None:
        return None
    opens, closes = window
    return SendWindow(time(*divmod(opens, 60)), time(*divmod(closes, 60)))


def offset_of(tz: ZoneInfo, moment: datetime) -> timedelta | None:
    return moment.astimezone(tz).utcoffset()


@cache
def transitions() -> list[tuple[str, datetime]]:
    """Every (zone, instant) where a zone's offset changes in 2024-2027, to the minute."""
    found = []
    step = timedelta(hours=6)
    for zone in ZONES:
        tz = ZoneInfo(zone)
        moment = YEARS_START
        while moment < YEARS_END:
            if offset_of(tz, moment) != offset_of(tz, moment + step):
                lo, hi = moment, moment + step
                while hi - lo > MINUTE:
                    mid = lo + (hi - lo) // 2
                    mid -= timedelta(seconds=mid.second, microseconds=mid.microsecond)
                    if offset_of(tz, mid) == offset_of(tz, lo):
                        lo = mid
                    else:
                        hi = mid
                found.append((zone, hi))
            moment += step
    return found


windows = st.one_of(
    st.none(),
    st.tuples(
        st.integers(0, MINUTES_PER_DAY - 1),
        st.integers(1, MINUTES_PER_DAY - 1),
    ).map(lambda pair: (pair[0], (pair[0] + pair[1]) % MINUTES_PER_DAY)),
)


@st.composite
def anywhere(draw: st.DrawFn) -> tuple[datetime, datetime, tuple[int, int] | None, str]:
    """Any minute in 2024-2027, a span of up to three days, any window, any zone."""
    start = YEARS_START + draw(st.integers(0, YEARS_MINUTES - 1)) * MINUTE
    end = start + draw(st.integers(0, MAX_SPAN_MINUTES)) * MINUTE
    return start, end, draw(windows), draw(st.sampled_from(ZONES))


@st.composite
def around_a_transition(
    draw: st.DrawFn,
) -> tuple[datetime, datetime, tuple[int, int] | None, str]:
    """A span holding a daylight-saving change, with window edges near the changed wall time."""
    zone, change = draw(st.sampled_from(transitions()))
    start = change - draw(st.integers(0, 2 * MINUTES_PER_DAY)) * MINUTE
    end = start + draw(st.integers(0, MAX_SPAN_MINUTES)) * MINUTE
    wall = change.astimezone(ZoneInfo(zone))
    near = wall.hour * 60 + wall.minute
    opens = (near + draw(st.integers(-150, 150))) % MINUTES_PER_DAY
    closes = (opens + draw(st.integers(1, 240))) % MINUTES_PER_DAY
    if opens == closes:
        closes = (closes + 1) % MINUTES_PER_DAY
    return start, end, draw(st.one_of(st.just((opens, closes)), windows)), zone


not_befores = st.one_of(st.none(), st.integers(-60, 2 * MINUTES_PER_DAY))


@settings(max_examples=300, deadline=None)
@given(case=st.one_of(anywhere(), around_a_transition()), later=not_befores)
def test_send_time_equals_minute_by_minute_search(
    case: tuple[datetime, datetime, tuple[int, int] | None, str], later: int | None
) -> None:
    start, end, window, zone = case
    not_before = None if later is None else start + later * MINUTE
    expected = brute_force(start, end, window, zone, not_before)
    assert send_time(start, end, as_send_window(window), zone, not_before) == expected


@settings(max_examples=300, deadline=None)
@given(
    case=st.one_of(anywhere(), around_a_transition()), later=st.integers(-60, 2 * MINUTES_PER_DAY)
)
def test_send_slot_equals_minute_by_minute_search(
    case: tuple[datetime, datetime, tuple[int, int] | None, str], later: int
) -> None:
    start, end, window, zone = case
    now = start + later * MINUTE
    expected = brute_force_slot(start, end, window, zone, now)
    slot = send_slot(start, end, as_send_window(window), zone, now)
    assert slot == expected
    if slot is not None:
        assert slot.opens >= now  # never a slot in the past
        assert slot.admits(slot.opens) and not slot.admits(slot.closes)


@settings(max_examples=100, deadline=None)
@given(case=anywhere(), zones=st.lists(st.sampled_from(ZONES), max_size=8))
def test_send_times_by_zone_equals_send_time_for_each_zone(
    case: tuple[datetime, datetime, tuple[int, int] | None, str], zones: list[str]
) -> None:
    start, end, window, _ = case
    hours = as_send_window(window)
    got = send_times_by_zone(start, end, hours, zones)
    assert got == {zone: send_time(start, end, hours, zone) for zone in zones}


def test_the_transition_sample_covers_every_daylight_saving_zone() -> None:
    # Guards the biased strategy: if tzdata or the scan broke, it would silently sample nothing.
    zones_with_changes = {zone for zone, _ in transitions()}
    assert {"Europe/Berlin", "America/New_York", "Pacific/Chatham", "Antarctica/Troll"} <= (
        zones_with_changes
    )
    assert ("Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)) in transitions()


@settings(max_examples=300, deadline=None)
@given(
    case=st.one_of(anywhere(), around_a_transition()),
    created=st.integers(-MINUTES_PER_DAY, MINUTES_PER_DAY),
    waits=st.lists(st.integers(0, 8 * 60 * 60), min_size=1, max_size=12),
)
def test_no_call_starts_outside_the_window_whatever_the_delays(
    case: tuple[datetime, datetime, tuple[int, int] | None, str], created: int, waits: list[int]
) -> None:
    """A message is timed when it is created; then the dispatcher gets to it after random
    delays (a backlog, a pause, an outage, a stale hand-over). A call starts only when the
    slot admits it; a slot missed is replaced by the next one from that moment. Every call
    that starts is inside the client's window, at or after the start and before the end."""
    start, end, window, zone = case
    hours = as_send_window(window)
    moment = start + created * MINUTE
    slot = send_slot(start, end, hours, zone, moment)
    for wait in waits:
        if slot is None:
            return
        moment += timedelta(seconds=wait)
        if slot.admits(moment):
            assert start <= moment < end
            local = moment.astimezone(ZoneInfo(zone)).time()
            assert hours is None or hours.contains(local), (moment, local)
            return
        if moment >= slot.closes:  # missed: the scheduler times it again from now
            slot = send_slot(start, end, hours, zone, moment)
            assert slot is None or slot.opens >= moment
