"""When a message may be sent: the mailing's period and the client's local send window.

The rule is about the wall-clock time the client sees. An instant is sendable when it is at or
after the mailing's start (and ``not_before``), strictly before its end, and its local time in
the client's zone lies in ``[window.start, window.end)``. A window whose start is after its end
crosses midnight: 22:00-06:00 means 22:00..24:00 and 00:00..06:00.

The search works on stretches of UTC time over which the zone's offset is constant, not on local
wall times. Within such a stretch local time is UTC plus a fixed offset, so the first sendable
instant is either where we are now or where local time next reads ``window.start``: one line of
arithmetic. When the offset changes in between (a daylight-saving jump, or a day skipped as in
Pacific/Apia on 2011-12-30), the search restarts at the transition instant with the new offset.
This gives the daylight-saving answers without reasoning about folds: on a spring-forward day
with a window opening in the skipped hour, the first sendable instant is the jump itself (local
03:00 when 02:00-03:00 does not exist, if 03:00 is in the window); on a fall-back day the first
pass of the repeated hour is found first, so the earliest wins. zoneinfo exposes no transition
list, so a transition is located by bisecting on the offset, which costs ~40 offset look-ups and
happens only where the offset really changes.

Assumption: a zone changes its offset at most once in any ~25 hours. It holds for every zone in
current tzdata; two changes within that span that cancel out would go unnoticed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "SendSlot",
    "SendWindow",
    "send_slot",
    "send_slots_by_zone",
    "send_time",
    "send_times_by_zone",
    "send_window",
]

_ONE_DAY = timedelta(days=1)
_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Daily local send window ``[start, end)``; ``start > end`` crosses midnight.

    Times are naive wall-clock times. ``start == end`` is rejected with ValueError rather than
    read as "whole day" or "never": the API refuses it, so meeting one here is a bug upstream,
    and no window at all (``None``) already says "any time".
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("send window times are local wall-clock times and must be naive")
        if self.start == self.end:
            raise ValueError("send window start and end must differ")

    @property
    def crosses_midnight(self) -> bool:
        return self.start > self.end

    def contains(self, wall: time) -> bool:
        """Whether the local wall-clock time ``wall`` is inside the window."""
        if self.crosses_midnight:
            return wall >= self.start or wall < self.end
        return self.start <= wall < self.end


def send_window(start: time | None, end: time | None) -> SendWindow | None:
    """The window for a mailing's ``send_interval_time_start``/``_end``; both None means none.

    Raises ValueError when only one of them is set or when they are equal.
    """
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise ValueError("send window needs both a start and an end time, or neither")
    return SendWindow(start, end)


@dataclass(frozen=True, slots=True)
class SendSlot:
    """One stretch in which a message may be sent: from ``opens`` (its due time) until just
    before ``closes``, the first instant after it that is outside the client's window or at the
    mailing's end. A call may start only inside ``[opens, closes)``; a message that misses
    ``closes`` waits for the next slot, computed from the moment it missed it."""

    opens: datetime
    closes: datetime

    def admits(self, moment: datetime) -> bool:
        """Whether a provider call may start at ``moment``."""
        return self.opens <= moment < self.closes


def send_time(
    start: datetime,
    end: datetime,
    window: SendWindow | None,
    zone: str,
    not_before: datetime | None = None,
) -> datetime | None:
    """The earliest instant a client in ``zone`` may get the mailing's message, or None.

    The instant is at or after ``start`` and ``not_before`` (now, or a retry's due time),
    strictly before ``end``, and its local time in ``zone`` is inside ``window`` (any time when
    ``window`` is None). Datetimes must be timezone-aware; the result is in UTC. None means no
    such instant exists before ``end``: the client gets no message. An unknown ``zone`` raises
    ``zoneinfo.ZoneInfoNotFoundError`` (a KeyError) or ValueError.
    """
    moment = _as_utc(start, "start")
    if not_before is not None:
        moment = max(moment, _as_utc(not_before, "not_before"))
    deadline = _as_utc(end, "end")
    if window is None:
        return moment if moment < deadline else None
    return _first_instant(moment, deadline, window, ZoneInfo(zone), inside=True)


def send_slot(
    start: datetime,
    end: datetime,
    window: SendWindow | None,
    zone: str,
    not_before: datetime,
) -> SendSlot | None:
    """The first slot at or after ``not_before`` (pass the current time: a slot never opens in
    the past), or None when no sendable instant is left before ``end``."""
    opens = send_time(start, end, window, zone, not_before)
    if opens is None:
        return None
    deadline = _as_utc(end, "end")
    if window is None:
        return SendSlot(opens, deadline)
    closes = _first_instant(opens, deadline, window, ZoneInfo(zone), inside=False)
    return SendSlot(opens, closes or deadline)


def send_slots_by_zone(
    start: datetime,
    end: datetime,
    window: SendWindow | None,
    zones: Iterable[str],
    not_before: datetime,
) -> dict[str, SendSlot | None]:
    """``send_slot`` for each distinct zone, computed once per zone (not once per client)."""
    return {zone: send_slot(start, end, window, zone, not_before) for zone in set(zones)}


def _first_instant(
    moment: datetime, deadline: datetime, window: SendWindow, tz: ZoneInfo, *, inside: bool
) -> datetime | None:
    """The first instant in ``[moment, deadline)`` whose local time is inside the window
    (``inside``) or outside it (not ``inside``), or None."""
    boundary_wall = window.start if inside else window.end
    while moment < deadline:
        local = moment.astimezone(tz)
        if window.contains(local.time()) == inside:
            return moment
        offset = _offset(local)
        wall = local.replace(tzinfo=None)
        boundary = (_next_opening(wall, boundary_wall) - offset).replace(tzinfo=UTC)
        if _offset(boundary.astimezone(tz)) == offset:
            # Same offset at both ends: local time ran straight from `wall` to the boundary.
            return boundary if boundary < deadline else None
        # Local time jumped before reaching the boundary; look again from the jump on.
        moment = _first_offset_change(tz, moment, boundary, offset)
    return None


def send_times_by_zone(
    start: datetime,
    end: datetime,
    window: SendWindow | None,
    zones: Iterable[str],
    not_before: datetime | None = None,
) -> dict[str, datetime | None]:
    """``send_time`` for each distinct zone, computed once per zone (not once per client)."""
    return {zone: send_time(start, end, window, zone, not_before) for zone in set(zones)}


def _as_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def _offset(local: datetime) -> timedelta:
    offset = local.utcoffset()
    assert offset is not None  # astimezone(ZoneInfo) always yields an aware datetime
    return offset


def _next_opening(wall: datetime, opening: time) -> datetime:
    """The first naive wall datetime at or after ``wall`` whose time is ``opening`` (a window's
    start, or its end when looking for the close)."""
    candidate = datetime.combine(wall.date(), opening)
    return candidate if candidate >= wall else candidate + _ONE_DAY


def _first_offset_change(tz: ZoneInfo, lo: datetime, hi: datetime, offset: timedelta) -> datetime:
    """The first UTC instant in ``(lo, hi]`` whose offset differs from ``offset``.

    Requires the offset at ``lo`` to be ``offset`` and the offset at ``hi`` to differ; bisects
    to the microsecond, so it needs no assumption about where transitions fall.
    """
    below, above = 0, (hi - lo) // _ONE_MICROSECOND
    while above - below > 1:
        middle = (below + above) // 2
        if _offset((lo + middle * _ONE_MICROSECOND).astimezone(tz)) == offset:
            below = middle
        else:
            above = middle
    return lo + above * _ONE_MICROSECOND
