"""Pure rules of the statistics aggregates: time buckets, failure reasons, the mailing state,
and how one batch's message changes move the aggregate tables. No I/O, no clock.

Every aggregate that describes where messages *are* (sends per minute, activity per quarter
hour, final failures by reason) is a function of the message's state, and a batch adds
``contribution(new) - contribution(old)`` for each message it changed, exactly as the
per-mailing counters do. Since the final state does not depend on the order of the facts (see
domain.py), neither do these aggregates; and since a redelivered event is filtered out by the
consumer's processed_events, it changes nothing.

Two figures count reports rather than states and are attributed to the time of the fact that
carried them: provider attempts (the rise of a message's attempt counter, at sent_at, failed_at,
or the time the failure was recorded) and failed attempts by reason (one per
``messages.attempt_failed`` item). Their totals are exact; only the bucket an attempt lands in
can depend on which of two reports of the same message arrived first.

Buckets are quarter hours in UTC rather than hours: a local day in a zone whose offset is not
a whole number of hours (Asia/Kolkata +05:30, Asia/Kathmandu +05:45, Australia/Adelaide) still
starts and ends on a bucket boundary, so the daily report is exact in every zone in use.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reporter.breakdown import dimension_keys, latency_of
from reporter.domain import (
    ClientValues,
    Fact,
    Kind,
    MailingDelta,
    MessageState,
    Projection,
    Status,
    project,
)
from sms_events.vocabulary import MailingState
from sms_events.vocabulary import mailing_state as shared_mailing_state

__all__ = [
    "MAX_REASON",
    "Activity",
    "GlobalDelta",
    "MailingState",
    "Tally",
    "delivery_rate",
    "floor_hour",
    "floor_minute",
    "floor_quarter",
    "mailing_state",
    "reason",
    "tally_batch",
]

MAX_REASON = 100
# The same characters as the SQL function reporter_reason (migration reporter_0003).
_SPACES = re.compile(r"[ \t\n\r\f\v]+")


def floor_minute(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def floor_quarter(t: datetime) -> datetime:
    m = floor_minute(t)
    return m.replace(minute=m.minute - m.minute % 15)


def floor_hour(t: datetime) -> datetime:
    return floor_minute(t).replace(minute=0)


def reason(error: str | None) -> str:
    """A failure's reason as grouped in the statistics: blanks folded, at most 100 characters
    (the dispatcher's errors are already short and fixed, such as "HTTP 503", "timeout",
    "HTTP 400: invalid phone"; the bound keeps a chatty provider from growing the table)."""
    text = _SPACES.sub(" ", error or "").strip(" ")[:MAX_REASON].rstrip(" ")
    return text or "unknown"


def delivery_rate(delivered: int, undelivered: int) -> float | None:
    """Delivered over finally tried (delivered + undelivered), None before any final outcome."""
    tried = delivered + undelivered
    return round(delivered / tried, 4) if tried else None


def mailing_state(
    now: datetime,
    *,
    datetime_start: datetime | None,
    datetime_end: datetime | None,
    paused: bool,
    cancelled: bool,
    resolved: bool,
    scheduled_messages: int,
) -> MailingState:
    """The shared state rule (``sms_events.vocabulary``) on the reporter's facts: every message
    is final once the audience is resolved and none is still scheduled (``ALL_FINAL_SQL``)."""
    return shared_mailing_state(
        now,
        start=datetime_start,
        end=datetime_end,
        paused=paused,
        cancelled=cancelled,
        all_messages_final=resolved and scheduled_messages == 0,
    )


@dataclass(slots=True)
class Activity:
    """What happened in one quarter hour (of one mailing, or of all of them)."""

    delivered: int = 0
    failed: int = 0  # final failures (ND)
    cancelled: int = 0
    attempts: int = 0

    def add(self, other: Activity, sign: int = 1) -> None:
        self.delivered += sign * other.delivered
        self.failed += sign * other.failed
        self.cancelled += sign * other.cancelled
        self.attempts += sign * other.attempts

    def __bool__(self) -> bool:
        return bool(self.delivered or self.failed or self.cancelled or self.attempts)


@dataclass(slots=True)
class GlobalDelta:
    """How the global rows move in one batch: totals by name (statuses, ``clients``) and
    activity per quarter hour. Written last and in key order, so the few hot rows every
    batch touches are held only until the commit, and never in an order that deadlocks."""

    totals: Counter[str] = field(default_factory=Counter)
    quarters: dict[datetime, Activity] = field(default_factory=dict)

    def add_counters(self, deltas: Iterable[MailingDelta], sign: int = 1) -> None:
        for d in deltas:
            self.totals[Status.SCHEDULED.value] += sign * d.scheduled
            self.totals[Status.DELIVERED.value] += sign * d.delivered
            self.totals[Status.UNDELIVERED.value] += sign * d.undelivered
            self.totals[Status.CANCELLED.value] += sign * d.cancelled

    def add_quarters(self, quarters: Mapping[datetime, Activity], sign: int = 1) -> None:
        for quarter, activity in quarters.items():
            self.quarters.setdefault(quarter, Activity()).add(activity, sign)


@dataclass(slots=True)
class Tally:
    """The per-mailing aggregate movements of one batch.

    Hot path (one call per fact and two per changed message): the buckets of a time are
    computed once per distinct time, and containers are created only when missing.
    """

    # (mailing_id, minute) -> [delivered, failed]
    minutes: dict[tuple[int, datetime], list[int]] = field(default_factory=dict)
    # (mailing_id, quarter) -> activity
    quarters: dict[tuple[int, datetime], Activity] = field(default_factory=dict)
    # (mailing_id, reason) -> [failed attempts, final failures]
    failures: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    # (mailing_id, dimension, value) -> [SC, DL, ND, CA] (see breakdown.py)
    dimensions: dict[tuple[int, str, str], list[int]] = field(default_factory=dict)
    # (mailing_id, latency bucket) -> settled messages
    latency: dict[tuple[int, int], int] = field(default_factory=dict)
    _buckets: dict[datetime, tuple[datetime, datetime]] = field(default_factory=dict)
    _rows: dict[tuple[int, ClientValues | None], list[list[int]]] = field(default_factory=dict)

    def state(self, s: MessageState | None, sign: int) -> None:
        """Add (``sign`` +1) or remove (-1) what a message in state ``s`` contributes."""
        if s is None or s.status is Status.WITHDRAWN:
            return
        self._breakdown(s, sign)
        if s.status is Status.SCHEDULED:
            return
        if s.status is Status.CANCELLED:
            if s.cancelled_at is not None:
                self._quarter(s.mailing_id, self._bucket(s.cancelled_at)[1]).cancelled += sign
            return
        delivered = s.status is Status.DELIVERED
        if s.datetime_send is not None:
            minute, quarter = self._bucket(s.datetime_send)
            counts = self.minutes.get((s.mailing_id, minute))
            if counts is None:
                counts = self.minutes[(s.mailing_id, minute)] = [0, 0]
            activity = self._quarter(s.mailing_id, quarter)
            if delivered:
                counts[0] += sign
                activity.delivered += sign
            else:
                counts[1] += sign
                activity.failed += sign
        if not delivered:
            self._failure(s.mailing_id, s.last_error)[1] += sign

    def fact(self, fact: Fact, old: MessageState | None, new: MessageState) -> None:
        """What a fact reports beyond the state it leaves: attempts made, a failed attempt."""
        rise = _visible_attempts(new) - _visible_attempts(old)
        if rise:
            quarter = self._bucket(_reported_at(fact))[1]
            self._quarter(new.mailing_id, quarter).attempts += rise
        if fact.kind is Kind.ATTEMPT_FAILED:
            self._failure(new.mailing_id, fact.error)[0] += 1

    def _breakdown(self, s: MessageState, sign: int) -> None:
        column = _DIMENSION_COLUMN[s.status]
        for counts in self._dimension_rows(s):
            counts[column] += sign
        bucket = latency_of(s)
        if bucket is not None:
            key = (s.mailing_id, bucket)
            self.latency[key] = self.latency.get(key, 0) + sign

    def _dimension_rows(self, s: MessageState) -> list[list[int]]:
        """The counters of the buckets ``s`` counts in, found once per mailing and client
        values (a batch holds many messages of few such pairs)."""
        found = self._rows.get((s.mailing_id, s.client))
        if found is None:
            found = self._rows[(s.mailing_id, s.client)] = []
            for dimension, value in dimension_keys(s):
                key = (s.mailing_id, dimension, value)
                counts = self.dimensions.get(key)
                if counts is None:
                    counts = self.dimensions[key] = [0, 0, 0, 0]
                found.append(counts)
        return found

    def global_quarters(self) -> dict[datetime, Activity]:
        out: dict[datetime, Activity] = {}
        for (_, quarter), activity in self.quarters.items():
            total = out.get(quarter)
            if total is None:
                total = out[quarter] = Activity()
            total.add(activity)
        return out

    def _bucket(self, at: datetime) -> tuple[datetime, datetime]:
        """(minute, quarter) of ``at``."""
        found = self._buckets.get(at)
        if found is None:
            found = self._buckets[at] = (floor_minute(at), floor_quarter(at))
        return found

    def _quarter(self, mailing_id: int, quarter: datetime) -> Activity:
        activity = self.quarters.get((mailing_id, quarter))
        if activity is None:
            activity = self.quarters[(mailing_id, quarter)] = Activity()
        return activity

    def _failure(self, mailing_id: int, error: str | None) -> list[int]:
        key = (mailing_id, reason(error))
        counts = self.failures.get(key)
        if counts is None:
            counts = self.failures[key] = [0, 0]
        return counts


# The column of each visible status in Tally.dimensions (the table's column order).
_DIMENSION_COLUMN: Mapping[Status, int] = {
    Status.SCHEDULED: 0,
    Status.DELIVERED: 1,
    Status.UNDELIVERED: 2,
    Status.CANCELLED: 3,
}


def _visible_attempts(s: MessageState | None) -> int:
    return s.attempts if s is not None and s.status is not Status.WITHDRAWN else 0


def _reported_at(fact: Fact) -> datetime:
    """When the attempts a fact reports were made: the send or final failure time it carries;
    for a retryable failure (whose ``at`` is the retry time) the time it was recorded."""
    if fact.kind in (Kind.DELIVERED, Kind.UNDELIVERED) and fact.at is not None:
        return fact.at
    return fact.event_time


def tally_batch(
    current: Mapping[int, MessageState], facts: Iterable[Fact]
) -> tuple[Projection, Tally]:
    """``domain.project`` plus the aggregate movements of the same batch."""
    tally = Tally()
    outcome = project(current, facts, tally.fact)
    for old, new in outcome.changes:
        tally.state(old, -1)
        tally.state(new, +1)
    return outcome, tally
