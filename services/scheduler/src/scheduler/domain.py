"""The scheduler's rules as plain values: a message's states, a mailing's send slots, and what
becomes of a message that has no send moment left. No I/O here; the SQL in ``resolution.py``
and ``timer.py`` takes its state names and parameters from this module."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from typing import Final

from sms_events.contracts import ResendableStatus
from sms_events.window import SendSlot, SendWindow, send_slot, send_slots_by_zone, send_window

__all__ = [
    "NO_SEND_MOMENT",
    "PROJECTION_NAME",
    "RESEND_STATES",
    "Mailing",
    "MailingStatus",
    "MessageState",
    "ResolutionMode",
    "Unsent",
    "resolution_mode",
    "settled_state",
    "source_states",
]

PROJECTION_NAME: Final = "scheduler"
"""The scheduler's tables as ``sms-replay scheduler`` rebuilds them (``projection.py``): their
writers announce themselves by it (``sms_events.replay.writing``)."""

# Why a message is settled, or a client left out, when its window has no moment before the end.
NO_SEND_MOMENT = "no send moment before the end"


class MessageState(enum.StrEnum):
    """Where a message is. ``scheduled`` waits for its slot; ``handed_over`` is with the
    dispatcher; the other three are final."""

    SCHEDULED = "scheduled"
    HANDED_OVER = "handed_over"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    CANCELLED = "cancelled"


class MailingStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DELETED = "deleted"

    @property
    def stopped(self) -> bool:
        """Nothing more is ever sent for a cancelled or deleted mailing."""
        return self in (MailingStatus.CANCELLED, MailingStatus.DELETED)


@dataclass(frozen=True, slots=True)
class Unsent:
    """A message that is to be settled unsent, with the provider calls made for it and the
    last error (the provider's, or why it could not be sent)."""

    message_id: int
    attempts: int
    error: str


# The message state each resendable status (sms_events.contracts.RESENDABLE_STATUSES) is.
RESEND_STATES: dict[ResendableStatus, MessageState] = {
    "ND": MessageState.UNDELIVERED,
    "CA": MessageState.CANCELLED,
}


def source_states(statuses: Iterable[ResendableStatus] | None) -> list[str] | None:
    """The scheduler's states of a follow-up's chosen statuses (None: not a follow-up)."""
    return None if statuses is None else sorted({RESEND_STATES[s].value for s in statuses})


class ResolutionMode(enum.StrEnum):
    """What a resolution of a mailing's audience may change, widest first.

    ``follow_base``: before the start (or for an edit accepted before it): clients who match
    get a message, those who no longer match or have no send moment lose theirs, movers get a
    new slot. ``add_missing``: a mailing created after its start: matching clients get a
    message, nothing else changes; the audience is fixed from then on. ``left_out``: the end
    moved after the start: clients of the fixed audience left out for want of a send moment
    get a message if the new end leaves them one."""

    FOLLOW_BASE = "follow_base"
    ADD_MISSING = "add_missing"
    LEFT_OUT = "left_out"

    def widest(self, other: ResolutionMode) -> ResolutionMode:
        """A resolution asked for while another is under way does both: the wider one, anew."""
        order = list(ResolutionMode)
        return order[min(order.index(self), order.index(other))]


def resolution_mode(*, created: bool, started: bool, accepted_before_start: bool) -> ResolutionMode:
    """What resolving a mailing's audience may change after a ``mailing.scheduled`` (``created``)
    or ``mailing.updated``, handled once the mailing has ``started`` or not."""
    # The gateway accepts any edit before the start; one it accepted then is applied in full
    # even when it reaches us after the start (the audience is fixed from the next step on).
    if not started or (not created and accepted_before_start):
        return ResolutionMode.FOLLOW_BASE
    if created:
        # Created after its start: resolve once; from now on the audience is fixed.
        return ResolutionMode.ADD_MISSING
    # Edited after the start: only the end can have moved. The slots of messages already timed
    # stay right (a call never starts after the end, which the dispatcher checks); clients left
    # out for want of a send moment may have one now.
    return ResolutionMode.LEFT_OUT


def settled_state(attempts: int) -> MessageState:
    """A message with no send moment left: undelivered if the provider was tried, else
    cancelled (the old API's ND and CA)."""
    return MessageState.UNDELIVERED if attempts > 0 else MessageState.CANCELLED


@dataclass(frozen=True, slots=True)
class Mailing:
    mailing_id: int
    text: str
    datetime_start: datetime
    datetime_end: datetime
    window_start: time | None
    window_end: time | None
    client_filter: str | None
    status: str
    source_mailing_id: int | None = None  # a follow-up: the mailing it sends to again
    source_states: list[str] | None = None  # ... to those of its messages in these states

    def started(self, now: datetime) -> bool:
        return now >= self.datetime_start

    @property
    def stopped(self) -> bool:
        return MailingStatus(self.status).stopped

    @property
    def window(self) -> SendWindow | None:
        return send_window(self.window_start, self.window_end)

    def slots(self, zones: Iterable[str], now: datetime) -> dict[str, SendSlot | None]:
        """Each zone's first send slot from ``now`` on (never one in the past), or None when
        the zone has no send moment left before the end."""
        return send_slots_by_zone(self.datetime_start, self.datetime_end, self.window, zones, now)

    def slot(self, zone: str | None, now: datetime) -> SendSlot | None:
        """One zone's first slot from ``now`` on; a deleted client (no zone) has none."""
        if zone is None:
            return None
        return send_slot(self.datetime_start, self.datetime_end, self.window, zone, now)
