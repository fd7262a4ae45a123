"""Pure projection rules: what each message fact does to a message's state, and how the
per-mailing counters move when message states change. No I/O, no clock.

Status is a lattice, ``SC < WD < CA < ND < DL``: a fact can only move a message up. A delivery
that raced a cancel wins, a late cancel does not undo a delivery, so the final status (and with
it every counter) does not depend on the order in which the facts arrive. ``WD`` (withdrawn) is
the projection's own tombstone: the message left the audience before the start and counts
nowhere, but remembering it means a ``messages.scheduled`` that arrives after its withdrawal
cannot bring it back (the scheduler never reuses a message id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import NamedTuple

from sms_events.vocabulary import MessageStatus

__all__ = [
    "RANK",
    "ClientValues",
    "Fact",
    "Kind",
    "MailingDelta",
    "MailingPatch",
    "MessageState",
    "Observer",
    "Projection",
    "Status",
    "apply",
    "apply_general",
    "deltas",
    "join",
    "project",
]


PROJECTION_NAME = "reporter"
"""The reporter's projection (``sms-replay reporter``): its writers announce themselves by it."""


class Status(StrEnum):
    """The API's message statuses (``sms_events.vocabulary.MessageStatus``) and the one state
    it never shows, ranked: a message only ever moves up (``join``)."""

    SCHEDULED = MessageStatus.SCHEDULED.value
    WITHDRAWN = "WD"  # never shown: the row is gone from every list and counter
    CANCELLED = MessageStatus.CANCELLED.value
    UNDELIVERED = MessageStatus.UNDELIVERED.value
    DELIVERED = MessageStatus.DELIVERED.value

    # The string's own hash (C, cached), equal to its value's as equality needs; Enum's is
    # a Python call, and the fold looks statuses up a few times per message.
    __hash__ = str.__hash__


RANK: Mapping[Status, int] = {s: i for i, s in enumerate(Status)}
_NEVER = datetime.min.replace(tzinfo=UTC)


def join(a: Status | None, b: Status) -> Status:
    """The higher of two statuses (``None``: the message is not known yet)."""
    return b if a is None or RANK[b] > RANK[a] else a


class Kind(Enum):
    __hash__ = object.__hash__  # members are singletons compared by identity; C, not Python

    SCHEDULED = "scheduled"
    RESCHEDULED = "rescheduled"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"
    DELIVERED = "delivered"
    ATTEMPT_FAILED = "attempt_failed"
    UNDELIVERED = "undelivered"


# The status each kind of fact pushes a message towards.
_TARGET: Mapping[Kind, Status] = {
    Kind.SCHEDULED: Status.SCHEDULED,
    Kind.RESCHEDULED: Status.SCHEDULED,
    Kind.ATTEMPT_FAILED: Status.SCHEDULED,
    Kind.WITHDRAWN: Status.WITHDRAWN,
    Kind.CANCELLED: Status.CANCELLED,
    Kind.UNDELIVERED: Status.UNDELIVERED,
    Kind.DELIVERED: Status.DELIVERED,
}


class ClientValues(NamedTuple):
    """The client's values when its message was scheduled: the statistics' dimensions."""

    operator_code: str
    tag: str | None
    time_zone: str

    @staticmethod
    def known(
        operator_code: str | None, tag: str | None, time_zone: str | None
    ) -> ClientValues | None:
        """The values if recorded: a client always has an operator code and a time zone, so
        their absence (events or rows from before they were carried) means unknown."""
        if operator_code is None or time_zone is None:
            return None
        return ClientValues(operator_code, tag, time_zone)


class Fact(NamedTuple):
    """One thing an event says about one message.

    ``at`` is the time the fact carries (due_at, retry_at, sent_at, failed_at; None for a
    cancel or withdrawal); ``event_time`` is when the event was recorded.
    """

    kind: Kind
    message_id: int
    mailing_id: int
    event_time: datetime
    client_id: int | None = None
    at: datetime | None = None
    attempts: int = 0
    error: str | None = None
    client: ClientValues | None = None  # messages.scheduled only


class MessageState(NamedTuple):
    """A message as the projection holds it. Values (named tuples, like ``Fact``): immutable,
    and cheap to build and compare, which the fold does a few times per message."""

    message_id: int
    mailing_id: int
    client_id: int | None
    status: Status
    datetime_send: datetime | None
    attempts: int
    last_error: str | None
    # When it was cancelled (the earliest cancel's event time); set only while status is CA.
    cancelled_at: datetime | None = None
    # When the platform recorded the first fact about it, and the last that changed it (event
    # times, not the projection's clock: a rebuild from the events finds the same).
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Where the statistics by dimension count it (None: not recorded), and the due time it was
    # first scheduled for (delivery latency is measured from it). Both come from the one
    # messages.scheduled of the message, so they do not depend on the order of the facts.
    client: ClientValues | None = None
    first_due_at: datetime | None = None

    @property
    def visible(self) -> bool:
        return self.status is not Status.WITHDRAWN


def apply(old: MessageState | None, fact: Fact) -> MessageState:
    """The message's state after ``fact`` (``old`` None: the projection has not seen it yet,
    so the row starts from what the fact knows)."""
    if old is None:
        return _first(fact)
    return apply_general(old, fact)


def apply_general(old: MessageState | None, fact: Fact) -> MessageState:
    """``apply`` in general (``old`` None included, which ``_first`` spells out)."""
    status = join(old.status if old else None, _TARGET[fact.kind])
    old_attempts = old.attempts if old else 0
    client_id = old.client_id if old and old.client_id is not None else fact.client_id
    # A message never changes mailing; the first one seen is kept.
    mailing_id = old.mailing_id if old else fact.mailing_id
    datetime_send = _datetime_send(old, fact, status)
    attempts = max(old_attempts, fact.attempts)
    last_error = _last_error(old, fact, status)
    cancelled_at = _cancelled_at(old, fact, status)
    client = old.client if old is not None and old.client is not None else fact.client
    first_due_at = old.first_due_at if old is not None else None
    if first_due_at is None and fact.kind is Kind.SCHEDULED:
        first_due_at = fact.at
    # Event times: created at the earliest fact, updated at the latest that changed anything.
    at = fact.event_time
    created_at: datetime | None = at
    updated_at: datetime | None = at
    if old is not None:
        created_at = min(old.created_at or at, at)
        updated_at = old.updated_at
        if (
            client_id,
            status,
            datetime_send,
            attempts,
            last_error,
            cancelled_at,
            client,
            first_due_at,
        ) != (
            old.client_id,
            old.status,
            old.datetime_send,
            old.attempts,
            old.last_error,
            old.cancelled_at,
            old.client,
            old.first_due_at,
        ):
            updated_at = max(updated_at or at, at)
    return MessageState(
        message_id=fact.message_id,
        mailing_id=mailing_id,
        client_id=client_id,
        status=status,
        datetime_send=datetime_send,
        attempts=attempts,
        last_error=last_error,
        cancelled_at=cancelled_at,
        created_at=created_at,
        updated_at=updated_at,
        client=client,
        first_due_at=first_due_at,
    )


def _first(fact: Fact) -> MessageState:
    """``apply(None, fact)``: the state a message's first fact leaves, spelled out because
    every message takes this path once (it is what the general case gives with no old state:
    the unit tests hold both to the same answers)."""
    kind, at = fact.kind, fact.event_time
    attempts = max(0, fact.attempts)
    return MessageState(
        message_id=fact.message_id,
        mailing_id=fact.mailing_id,
        client_id=fact.client_id,
        status=_TARGET[kind],
        datetime_send=fact.at,
        attempts=attempts,
        last_error=fact.error if kind is Kind.UNDELIVERED or fact.attempts >= 0 else None,
        cancelled_at=at if kind is Kind.CANCELLED else None,
        created_at=at,
        updated_at=at,
        client=fact.client,
        first_due_at=fact.at if kind is Kind.SCHEDULED else None,
    )


def _last_error(old: MessageState | None, fact: Fact, status: Status) -> str | None:
    """The newest error; once undelivered, the final failure's reason.

    A late retryable failure carrying the same attempt count must not replace the reason the
    message finally failed for, and of two final failures (the scheduler settling at the end
    while the dispatcher rejects) the later one wins, as it does for the time, with the text
    breaking a tie: the reason then does not depend on the arrival order.
    """
    old_error = old.last_error if old else None
    if status is Status.UNDELIVERED:
        if fact.kind is not Kind.UNDELIVERED:
            return old_error
        if old is None or old.status is not Status.UNDELIVERED:
            return fact.error
        mine = (fact.at or _NEVER, fact.error or "")
        theirs = (old.datetime_send or _NEVER, old_error or "")
        return fact.error if mine > theirs else old_error
    if fact.error is not None and fact.attempts >= (old.attempts if old else 0):
        return fact.error
    return old_error


def _cancelled_at(old: MessageState | None, fact: Fact, status: Status) -> datetime | None:
    if status is not Status.CANCELLED:
        return None
    before = old.cancelled_at if old is not None and old.status is Status.CANCELLED else None
    now = fact.event_time if fact.kind is Kind.CANCELLED else None
    if before is None or now is None:
        return before or now
    return min(before, now)


def _datetime_send(old: MessageState | None, fact: Fact, status: Status) -> datetime | None:
    """When it was sent (DL), last tried (ND), or is (was) due (SC, CA)."""
    old_at = old.datetime_send if old else None
    if status in (Status.DELIVERED, Status.UNDELIVERED):
        if _TARGET[fact.kind] is not status or fact.at is None:
            return old_at  # the fact that set the final status also set the time
        if old is None or old.status is not status or old_at is None:
            return fact.at
        # Two facts with the same final status: the first delivery, the last failure.
        return min(old_at, fact.at) if status is Status.DELIVERED else max(old_at, fact.at)
    if fact.kind is Kind.RESCHEDULED or (
        fact.kind is Kind.ATTEMPT_FAILED and fact.attempts >= (old.attempts if old else 0)
    ):
        return fact.at
    return old_at if old_at is not None else fact.at


@dataclass(slots=True)
class MailingDelta:
    """How one mailing's counters move in one batch."""

    created: int = 0
    scheduled: int = 0
    delivered: int = 0
    undelivered: int = 0
    cancelled: int = 0
    attempts: int = 0
    first_sent_at: datetime | None = None
    last_sent_at: datetime | None = None
    last_event_at: datetime | None = None

    def count(self, state: MessageState, sign: int) -> None:
        if state.status is Status.WITHDRAWN:  # not ``visible``: a call less, per change
            return
        self.created += sign
        self.attempts += sign * state.attempts
        if state.status is Status.SCHEDULED:
            self.scheduled += sign
        elif state.status is Status.DELIVERED:
            self.delivered += sign
        elif state.status is Status.UNDELIVERED:
            self.undelivered += sign
        elif state.status is Status.CANCELLED:
            self.cancelled += sign

    def sent(self, at: datetime) -> None:
        self.first_sent_at = at if self.first_sent_at is None else min(self.first_sent_at, at)
        self.last_sent_at = at if self.last_sent_at is None else max(self.last_sent_at, at)

    def saw(self, event_time: datetime) -> None:
        if self.last_event_at is None or event_time > self.last_event_at:
            self.last_event_at = event_time


def deltas(
    changes: Iterable[tuple[MessageState | None, MessageState]],
) -> dict[int, MailingDelta]:
    """Counter movements per mailing from (old, new) message states: exactly what a
    ``GROUP BY mailing_id, status`` over the rows would change by."""
    out: dict[int, MailingDelta] = {}
    for old, new in changes:
        delta = out.get(new.mailing_id)
        if delta is None:
            delta = out[new.mailing_id] = MailingDelta()
        if old is not None:
            delta.count(old, -1)
        delta.count(new, +1)
        if new.status is Status.DELIVERED and new.datetime_send is not None:
            delta.sent(new.datetime_send)
    return out


@dataclass(frozen=True, slots=True)
class Projection:
    """The outcome of a batch: the states that changed (with what they were) and the counter
    movements per mailing (every mailing with a fact appears, even with nothing to count)."""

    changes: list[tuple[MessageState | None, MessageState]]
    mailings: dict[int, MailingDelta]


# Told of every fact applied, with the message's state before and after it.
Observer = Callable[[Fact, MessageState | None, MessageState], None]


def project(
    current: Mapping[int, MessageState], facts: Iterable[Fact], observe: Observer | None = None
) -> Projection:
    """Apply ``facts`` in order on top of ``current`` (the stored states of the messages the
    facts name, absent when not stored)."""
    before: dict[int, MessageState | None] = {}
    after: dict[int, MessageState] = {}
    seen: dict[int, datetime] = {}
    for fact in facts:
        mid = fact.message_id
        if mid not in before:
            before[mid] = current.get(mid)
        state = after.get(mid, before[mid])
        after[mid] = apply(state, fact)
        if observe is not None:
            observe(fact, state, after[mid])
        if fact.mailing_id not in seen or fact.event_time > seen[fact.mailing_id]:
            seen[fact.mailing_id] = fact.event_time
    changes = [(before[mid], new) for mid, new in after.items() if new != before[mid]]
    mailings = deltas(changes)
    for mailing_id, event_time in seen.items():
        mailings.setdefault(mailing_id, MailingDelta()).saw(event_time)
    return Projection(changes, mailings)


@dataclass(slots=True)
class MailingPatch:
    """What a batch's mailing events say about one mailing, folded so that the newest word on
    each field wins whatever the arrival order (the store applies the same guards)."""

    mailing_id: int
    datetime_start: datetime | None = None
    datetime_end: datetime | None = None
    state_at: datetime | None = None  # updated_at of the mailing state the dates come from
    segments: int | None = None  # SMS segments of each message (its text's, at state_at)
    paused: bool | None = None
    paused_changed_at: datetime | None = None
    cancelled_at: datetime | None = None
    deleted_at: datetime | None = None
    resolved_at: datetime | None = None

    def state(self, start: datetime, end: datetime, updated_at: datetime, segments: int) -> None:
        if self.state_at is None or updated_at >= self.state_at:
            self.datetime_start, self.datetime_end, self.state_at = start, end, updated_at
            self.segments = segments

    def pause(self, paused: bool, at: datetime) -> None:
        if self.paused_changed_at is None or at >= self.paused_changed_at:
            self.paused, self.paused_changed_at = paused, at

    def cancel(self, at: datetime) -> None:
        self.cancelled_at = at if self.cancelled_at is None else min(self.cancelled_at, at)

    def delete(self, at: datetime) -> None:
        self.deleted_at = at if self.deleted_at is None else min(self.deleted_at, at)

    def resolved(self, at: datetime) -> None:
        self.resolved_at = at if self.resolved_at is None else max(self.resolved_at, at)
