"""The suppression list's rule: of the opt-out events seen for a phone, the newest version wins.
Every projection of the list (the scheduler's, the dispatcher's) folds with it.

A phone's versions are its ``opt_out-<phone>`` stream's sequence: a single event's own
sequence, or the version an import states for each of its items. Keeping the newest makes the
order of arrival irrelevant (competing replicas, redeliveries, a late batch): folding the same
events in any order, any number of times, ends at the same state. A removal is a state too
(``opted_out=False`` at its version), not a deletion, or an older opt-out arriving after it would
bring the phone back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sms_events.contracts import OptOutRecorded, OptOutRemoved, OptOutsImported
from sms_events.envelope import Envelope

__all__ = ["PhoneState", "newest_states"]


@dataclass(frozen=True, slots=True)
class PhoneState:
    opted_out: bool
    version: int


def newest_states(envelopes: Iterable[Envelope]) -> dict[str, PhoneState]:
    """The newest state per phone among the opt-out events in ``envelopes`` (others ignored)."""
    newest: dict[str, PhoneState] = {}
    for phone, state in _states(envelopes):
        if (known := newest.get(phone)) is None or known.version < state.version:
            newest[phone] = state
    return newest


def _states(envelopes: Iterable[Envelope]) -> Iterable[tuple[str, PhoneState]]:
    for env in envelopes:
        match env.payload():
            case OptOutRecorded(phone=phone):
                yield phone, PhoneState(True, _sequence(env))
            case OptOutRemoved(phone=phone):
                yield phone, PhoneState(False, _sequence(env))
            case OptOutsImported(opt_outs=items):
                yield from ((i.phone, PhoneState(True, i.version)) for i in items)


def _sequence(env: Envelope) -> int:
    # Without its stream's sequence an event cannot be ordered: refused (dead-lettered) rather
    # than applied at a guessed version.
    if env.sequence is None:
        raise ValueError(f"{env.type} {env.id} has no stream sequence")
    return env.sequence
