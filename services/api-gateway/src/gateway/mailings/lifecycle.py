"""A mailing's life: which commands each state allows (the states and the rule that gives them
are ``sms_events.vocabulary``'s, shared with the reporter)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from gateway.errors import DomainError
from sms_events.vocabulary import MailingState, mailing_state

__all__ = [
    "Command",
    "CommandRejected",
    "MailingState",
    "can_cancel",
    "can_move_end",
    "can_pause",
    "can_resume",
    "editable",
    "mailing_state",
    "transition",
]


class Command(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"


class CommandRejected(DomainError):
    """A command the mailing's current state does not allow."""

    def __init__(self, state: MailingState, command: Command, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.command = command


_ALLOWED_FROM: dict[Command, frozenset[MailingState]] = {
    Command.CANCEL: frozenset({MailingState.SCHEDULED, MailingState.RUNNING, MailingState.PAUSED}),
    Command.PAUSE: frozenset({MailingState.SCHEDULED, MailingState.RUNNING}),
    Command.RESUME: frozenset({MailingState.PAUSED}),
}
_PAST_TENSE = {Command.CANCEL: "cancelled", Command.PAUSE: "paused", Command.RESUME: "resumed"}
_WHY_NOT: dict[tuple[MailingState, Command], str] = {
    (MailingState.CANCELLED, Command.CANCEL): "it is already cancelled",
    (MailingState.PAUSED, Command.PAUSE): "it is already paused",
    (MailingState.SCHEDULED, Command.RESUME): "it is not paused",
    (MailingState.RUNNING, Command.RESUME): "it is not paused",
}


def can_cancel(state: MailingState) -> bool:
    return state in _ALLOWED_FROM[Command.CANCEL]


def can_pause(state: MailingState) -> bool:
    return state in _ALLOWED_FROM[Command.PAUSE]


def can_resume(state: MailingState) -> bool:
    return state in _ALLOWED_FROM[Command.RESUME]


def transition(
    state: MailingState, command: Command, *, now: datetime, start: datetime
) -> MailingState:
    """The state right after ``command``, or CommandRejected with a reason for the user.

    Cancel is allowed from scheduled, running and paused; pause from scheduled and running;
    resume from paused, back to scheduled before ``start`` and running from it.
    """
    state, command = MailingState(state), Command(command)
    if state not in _ALLOWED_FROM[command]:
        reason = f"a {state} mailing cannot be {_PAST_TENSE[command]}"
        if why := _WHY_NOT.get((state, command)):
            reason = f"{reason}: {why}"
        raise CommandRejected(state, command, reason)
    if command is Command.CANCEL:
        return MailingState.CANCELLED
    if command is Command.PAUSE:
        return MailingState.PAUSED
    return MailingState.SCHEDULED if now < start else MailingState.RUNNING


def editable(now: datetime, start: datetime) -> bool:
    """Whether a mailing may still be edited or deleted: only before it starts.

    ``datetime_end`` is the exception; see ``can_move_end``.
    """
    return now < start


def can_move_end(state: MailingState) -> bool:
    """Whether ``datetime_end`` may be moved: at any time until the mailing is final."""
    return not MailingState(state).is_final
