"""A mailing's state from plain facts, and the commands each state allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.errors import DomainError
from gateway.mailings.lifecycle import (
    Command,
    CommandRejected,
    MailingState,
    can_cancel,
    can_move_end,
    can_pause,
    can_resume,
    editable,
    mailing_state,
    transition,
)

START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
END = datetime(2026, 5, 2, 9, 0, tzinfo=UTC)
BEFORE = START - timedelta(hours=1)
DURING = START + timedelta(hours=1)
AFTER = END + timedelta(hours=1)

S = MailingState


def state(
    now: datetime, *, paused: bool = False, cancelled: bool = False, done: bool = False
) -> MailingState:
    return mailing_state(
        now, start=START, end=END, paused=paused, cancelled=cancelled, all_messages_final=done
    )


# --- mailing_state ---------------------------------------------------------------------------


def test_mailing_is_scheduled_before_its_start() -> None:
    assert state(BEFORE) == "scheduled"


def test_mailing_is_running_from_its_start() -> None:
    assert state(START) == "running"
    assert state(DURING) == S.RUNNING


def test_mailing_is_finished_at_its_end_even_with_messages_pending() -> None:
    assert state(END) == S.FINISHED
    assert state(AFTER) == S.FINISHED


def test_mailing_is_finished_early_when_every_message_is_final() -> None:
    assert state(DURING, done=True) == S.FINISHED


def test_mailing_with_no_pending_messages_is_still_scheduled_before_its_start() -> None:
    assert state(BEFORE, done=True) == S.SCHEDULED


def test_paused_mailing_is_paused_before_and_during_its_period() -> None:
    assert state(BEFORE, paused=True) == S.PAUSED
    assert state(DURING, paused=True) == S.PAUSED


def test_paused_mailing_still_finishes_at_its_end() -> None:
    assert state(AFTER, paused=True) == S.FINISHED


def test_cancelled_mailing_stays_cancelled_whatever_else_holds() -> None:
    for now in (BEFORE, DURING, AFTER):
        assert state(now, cancelled=True, paused=True, done=True) == S.CANCELLED


def test_finished_and_cancelled_are_the_final_states() -> None:
    assert {s for s in S if s.is_final} == {S.FINISHED, S.CANCELLED}


# --- commands ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state_", "cancel", "pause", "resume"),
    [
        (S.SCHEDULED, True, True, False),
        (S.RUNNING, True, True, False),
        (S.PAUSED, True, False, True),
        (S.FINISHED, False, False, False),
        (S.CANCELLED, False, False, False),
    ],
)
def test_which_commands_each_state_allows(
    state_: MailingState, cancel: bool, pause: bool, resume: bool
) -> None:
    assert (can_cancel(state_), can_pause(state_), can_resume(state_)) == (cancel, pause, resume)


@pytest.mark.parametrize("state_", [S.SCHEDULED, S.RUNNING, S.PAUSED])
def test_cancel_leads_to_cancelled(state_: MailingState) -> None:
    assert transition(state_, Command.CANCEL, now=DURING, start=START) == S.CANCELLED


@pytest.mark.parametrize("state_", [S.SCHEDULED, S.RUNNING])
def test_pause_leads_to_paused(state_: MailingState) -> None:
    assert transition(state_, Command.PAUSE, now=DURING, start=START) == S.PAUSED


def test_resume_before_start_leads_back_to_scheduled() -> None:
    assert transition(S.PAUSED, Command.RESUME, now=BEFORE, start=START) == S.SCHEDULED


def test_resume_after_start_leads_to_running() -> None:
    assert transition(S.PAUSED, Command.RESUME, now=DURING, start=START) == S.RUNNING


def test_plain_strings_are_accepted_for_state_and_command() -> None:
    assert transition("running", "pause", now=DURING, start=START) == "paused"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state_", "command", "reason"),
    [
        (S.FINISHED, Command.PAUSE, "a finished mailing cannot be paused"),
        (S.FINISHED, Command.CANCEL, "a finished mailing cannot be cancelled"),
        (S.CANCELLED, Command.RESUME, "a cancelled mailing cannot be resumed"),
        (S.CANCELLED, Command.CANCEL, "a cancelled mailing cannot be cancelled: it is already"),
        (S.PAUSED, Command.PAUSE, "a paused mailing cannot be paused: it is already paused"),
        (S.RUNNING, Command.RESUME, "a running mailing cannot be resumed: it is not paused"),
        (S.SCHEDULED, Command.RESUME, "a scheduled mailing cannot be resumed: it is not paused"),
    ],
)
def test_refused_command_explains_why(state_: MailingState, command: Command, reason: str) -> None:
    with pytest.raises(CommandRejected) as caught:
        transition(state_, command, now=DURING, start=START)
    assert str(caught.value).startswith(reason)
    assert caught.value.state is state_
    assert caught.value.command is command
    assert isinstance(caught.value, DomainError)


def test_every_refused_transition_is_one_that_can_functions_refuse() -> None:
    allowed = {Command.CANCEL: can_cancel, Command.PAUSE: can_pause, Command.RESUME: can_resume}
    for state_ in S:
        for command, can in allowed.items():
            if can(state_):
                transition(state_, command, now=DURING, start=START)
            else:
                with pytest.raises(CommandRejected):
                    transition(state_, command, now=DURING, start=START)


# --- edits -------------------------------------------------------------------------------


def test_mailing_is_editable_only_before_its_start() -> None:
    assert editable(BEFORE, START)
    assert not editable(START, START)
    assert not editable(DURING, START)


@pytest.mark.parametrize(
    ("state_", "movable"),
    [
        (S.SCHEDULED, True),
        (S.RUNNING, True),
        (S.PAUSED, True),
        (S.FINISHED, False),
        (S.CANCELLED, False),
    ],
)
def test_end_can_be_moved_until_the_mailing_is_final(state_: MailingState, movable: bool) -> None:
    assert can_move_end(state_) is movable
