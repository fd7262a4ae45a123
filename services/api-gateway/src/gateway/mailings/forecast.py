"""The forecast of a mailing before its launch, as plain functions over grouped counts.

The audience arrives as counts per time zone (never per client): a zone's clients share their
send slots (``sms_events.window``), so a million clients in 30 zones are 30 numbers. When the
messages leave is then a fluid queue drained at the send rate: each zone's messages join it when
their slot opens, in the order the slots open; what the rate cannot reach before the slot
closes waits for the zone's next slot, as the scheduler re-times a message that missed its slot,
and what is left when no slot remains before the end is counted as unsendable. A rate of 0
(no limit) sends a zone's messages when its slot opens. The queue is served one zone after
another where the dispatcher interleaves zones whose slots open together, so an hour's count
may shift to its neighbour when the rate is the bottleneck; totals per zone are exact.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfoNotFoundError

from sms_events.window import SendSlot, SendWindow, send_slot

__all__ = [
    "MAX_HOURS",
    "Departures",
    "Unsendable",
    "cost",
    "departures",
    "floor_hour",
]

MAX_HOURS: Final = 24 * 31  # hours listed in a forecast (the rest are summed, not listed)
_HOUR: Final = timedelta(hours=1)


class Unsendable(StrEnum):
    """Why recipients would get no message before the end."""

    NO_WINDOW = "no_window_before_end"  # the zone's window has no moment before the end
    RATE = "send_rate_too_low"  # the send rate cannot reach them before their last slot closes
    UNKNOWN_ZONE = "unknown_time_zone"  # the zone is not in this server's time zone database


@dataclass(slots=True)
class Departures:
    """Messages leaving per UTC hour, and recipients left without a send moment by reason
    and zone."""

    hours: dict[datetime, int] = field(default_factory=dict)
    unsendable: dict[Unsendable, dict[str, int]] = field(default_factory=dict)
    opens: dict[str, datetime | None] = field(default_factory=dict)  # each zone's first slot
    last: datetime | None = None  # when the last message would leave

    @property
    def sendable(self) -> int:
        return sum(self.hours.values())

    def left_out(self, reason: Unsendable, zone: str, count: int) -> None:
        zones = self.unsendable.setdefault(reason, {})
        zones[zone] = zones.get(zone, 0) + count

    def hour_list(self, first: datetime) -> tuple[list[tuple[datetime, int]], bool]:
        """Zero-filled hours from ``first``'s hour to the last one with a departure, at most
        ``MAX_HOURS``; and whether later hours were cut off."""
        if not self.hours:
            return [], False
        hour, last = floor_hour(first), max(self.hours)
        out: list[tuple[datetime, int]] = []
        while hour <= last and len(out) < MAX_HOURS:
            out.append((hour, self.hours.get(hour, 0)))
            hour += _HOUR
        return out, hour <= last


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def departures(
    zones: Mapping[str, int],
    *,
    start: datetime,
    end: datetime,
    window: SendWindow | None,
    now: datetime,
    rate: float,
) -> Departures:
    """When the messages to ``zones`` (recipients per zone) would leave, sent at ``rate``
    messages per second (0: no limit), from ``now`` on."""
    result = Departures()
    queue: list[tuple[datetime, str, int, SendSlot]] = []
    for zone, count in sorted(zones.items()):
        try:
            slot = send_slot(start, end, window, zone, now)
        except (ZoneInfoNotFoundError, ValueError):
            result.left_out(Unsendable.UNKNOWN_ZONE, zone, count)
            result.opens[zone] = None
            continue
        result.opens[zone] = None if slot is None else slot.opens
        if slot is None:
            result.left_out(Unsendable.NO_WINDOW, zone, count)
        elif count:
            queue.append((slot.opens, zone, count, slot))
    heapq.heapify(queue)
    busy_until = now
    while queue:
        opens, zone, count, slot = heapq.heappop(queue)
        if rate <= 0:
            _add(result.hours, floor_hour(opens), count)
            result.last = max(result.last or opens, opens)
            continue
        begin = max(busy_until, opens)
        # Calls start at begin + i / rate; those before the close make it into this slot.
        room = max(0, math.ceil((slot.closes - begin).total_seconds() * rate))
        served = min(count, room)
        _spread(result.hours, begin, served, rate)
        if served:
            final = begin + timedelta(seconds=(served - 1) / rate)
            result.last = max(result.last or final, final)
        busy_until = max(busy_until, begin + timedelta(seconds=served / rate))
        if (rest := count - served) == 0:
            continue
        following = send_slot(start, end, window, zone, slot.closes)
        if following is None:
            result.left_out(Unsendable.RATE, zone, rest)
        else:
            heapq.heappush(queue, (following.opens, zone, rest, following))
    return result


def _add(hours: dict[datetime, int], hour: datetime, count: int) -> None:
    if count:
        hours[hour] = hours.get(hour, 0) + count


def _spread(hours: dict[datetime, int], begin: datetime, served: int, rate: float) -> None:
    """Add ``served`` departures at ``begin + i / rate`` to their hours."""
    hour = floor_hour(begin)
    counted = 0
    while counted < served:
        following = hour + _HOUR
        # Departures before the next hour: i < (following - begin) * rate.
        upto = min(served, math.ceil((following - begin).total_seconds() * rate))
        _add(hours, hour, upto - counted)
        counted, hour = max(counted, upto), following


def cost(messages: int, segments: int, price: Decimal) -> Decimal:
    """What ``messages`` of ``segments`` segments each cost at ``price`` per segment."""
    return price * messages * segments
