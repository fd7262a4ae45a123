"""What crosses services, named once: a message's status as the API shows it, a mailing's
state, and the rule that gives the state. The gateway (its answers and commands) and the
reporter (its statistics, in Python and in SQL) import these; neither writes its own copy.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Final

__all__ = [
    "MESSAGE_STATUSES",
    "MailingState",
    "MessageStatus",
    "mailing_state",
    "mailing_state_sql",
]


class MessageStatus(StrEnum):
    """A message's status in the old API's two letters."""

    SCHEDULED = "SC"  # waiting for its send moment, or with the dispatcher
    DELIVERED = "DL"  # the provider accepted it
    UNDELIVERED = "ND"  # given up: rejected, attempts or time ran out
    CANCELLED = "CA"  # never sent: mailing cancelled, client deleted or opted out, no slot left

    @property
    def is_final(self) -> bool:
        return self is not MessageStatus.SCHEDULED


MESSAGE_STATUSES: Final[tuple[MessageStatus, ...]] = tuple(MessageStatus)
"""In the order the API lists them (``{"SC": …, "DL": …, "ND": …, "CA": …}``)."""


class MailingState(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (MailingState.FINISHED, MailingState.CANCELLED)


def mailing_state(
    now: datetime,
    *,
    start: datetime | None,
    end: datetime | None,
    paused: bool,
    cancelled: bool,
    all_messages_final: bool,
) -> MailingState:
    """The state a mailing is in at ``now``.

    Precedence: cancelled; then finished once ``now >= end``, or once it has started and every
    message is final (sent, or given up); then paused; then scheduled before ``start`` and
    running from it. A paused mailing still finishes at its end. An unknown date (a mailing the
    reporter has seen only messages of) compares as false, as NULL does in
    ``mailing_state_sql``, which is this rule for PostgreSQL.
    """
    started = start is not None and now >= start
    if cancelled:
        return MailingState.CANCELLED
    if (end is not None and now >= end) or (started and all_messages_final):
        return MailingState.FINISHED
    if paused:
        return MailingState.PAUSED
    if start is not None and now < start:
        return MailingState.SCHEDULED
    return MailingState.RUNNING


def mailing_state_sql(
    now: str, *, start: str, end: str, paused: str, cancelled: str, all_messages_final: str
) -> str:
    """``mailing_state`` as a SQL expression over the given SQL operands (columns or
    parameters), for queries that count states set-based."""
    s = MailingState
    return f"""
    CASE WHEN {cancelled} THEN '{s.CANCELLED}'
         WHEN {now} >= {end} OR ({now} >= {start} AND {all_messages_final}) THEN '{s.FINISHED}'
         WHEN {paused} THEN '{s.PAUSED}'
         WHEN {now} < {start} THEN '{s.SCHEDULED}'
         ELSE '{s.RUNNING}'
    END"""
