"""The suppression list's fold (``suppression.newest_states``): the newest version per phone,
whatever the order of arrival and however often an event comes again."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime

import pytest

from sms_events.contracts import (
    ImportedOptOut,
    MailingPaused,
    OptOutRecorded,
    OptOutRemoved,
    OptOutsImported,
)
from sms_events.envelope import Envelope
from sms_events.suppression import PhoneState, newest_states
from sms_events.testing.factories import envelope_for

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
A, B = "79990000001", "79990000002"


def _recorded(phone: str, version: int) -> Envelope:
    event = OptOutRecorded(phone=phone, source="api", opted_out_at=AT)
    return envelope_for(event, sequence=version)


def _removed(phone: str, version: int) -> Envelope:
    return envelope_for(OptOutRemoved(phone=phone, removed_at=AT), sequence=version)


def _imported(*items: tuple[str, int]) -> Envelope:
    opt_outs = [ImportedOptOut(phone=p, version=v) for p, v in items]
    event = OptOutsImported(batch_id="b1", opted_out_at=AT, opt_outs=opt_outs)
    return envelope_for(event, sequence=1)  # the import's own stream: not the phones' version


def _last_in_version_order(envelopes: list[Envelope]) -> dict[str, PhoneState]:
    """The dumbest correct fold: every (phone, state) sorted by version, the last one kept."""
    seen: list[tuple[int, str, bool]] = []
    for env in envelopes:
        event = env.payload()
        if isinstance(event, OptOutsImported):
            seen += [(i.version, i.phone, True) for i in event.opt_outs]
        elif isinstance(event, OptOutRecorded | OptOutRemoved):
            assert env.sequence is not None
            seen.append((env.sequence, event.phone, isinstance(event, OptOutRecorded)))
    return {phone: PhoneState(out, v) for v, phone, out in sorted(seen)}


HISTORY = [_recorded(A, 1), _removed(A, 2), _imported((A, 3), (B, 1)), _removed(B, 2)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(HISTORY)))))
def test_any_order_of_arrival_ends_at_the_newest_version(order: tuple[int, ...]) -> None:
    envelopes = [HISTORY[i] for i in order]
    assert newest_states(envelopes) == _last_in_version_order(HISTORY)
    assert newest_states(envelopes) == {A: PhoneState(True, 3), B: PhoneState(False, 2)}


def test_a_redelivered_event_changes_nothing() -> None:
    assert newest_states([*HISTORY, *HISTORY[:2]]) == newest_states(HISTORY)


def test_other_events_are_ignored() -> None:
    paused = envelope_for(MailingPaused(mailing_id=1, paused_at=AT))
    assert newest_states([paused]) == {}


def test_an_event_without_its_stream_sequence_is_refused() -> None:
    env = _recorded(A, 1)
    with pytest.raises(ValueError, match="no stream sequence"):
        newest_states([dataclasses.replace(env, sequence=None)])
