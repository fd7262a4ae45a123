"""The scheduler's client and opt-out folds (``projection.latest_clients``,
``sms_events.suppression.newest_states``): the newest version wins, whichever event carried
it and in whatever order they come."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from scheduler.projection import latest_clients
from sms_events.contracts import (
    ClientCreated,
    ClientDeleted,
    ClientsImported,
    ClientUpdated,
    ImportedClient,
    ImportedOptOut,
    OptOutRecorded,
    OptOutRemoved,
    OptOutsImported,
)
from sms_events.envelope import Envelope
from sms_events.suppression import PhoneState, newest_states
from sms_events.testing.factories import envelope_for

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _state(client_id: int, tag: str) -> dict[str, Any]:
    return {"client_id": client_id, "phone": "79990000001", "operator_code": "999", "tag": tag,
            "time_zone": "UTC", "updated_at": AT}  # fmt: skip


def _imported(client_id: int, tag: str, version: int) -> ImportedClient:
    fields = {k: v for k, v in _state(client_id, tag).items() if k != "updated_at"}
    return ImportedClient(**fields, version=version, created=version == 1)


def test_the_newest_client_version_wins_in_any_order() -> None:
    events = [
        envelope_for(ClientCreated(**_state(1, "a")), 1),
        envelope_for(ClientUpdated(**_state(1, "b")), 2),
        envelope_for(
            ClientsImported(
                batch_id="i", imported_at=AT, clients=[_imported(1, "c", 3), _imported(2, "d", 1)]
            ),
            1,
        ),
        envelope_for(ClientDeleted(client_id=2, deleted_at=AT), 2),
    ]
    for order in itertools.permutations(events):
        latest = latest_clients(list(order))
        assert {cid: (v, type(c).__name__) for cid, (v, c) in latest.items()} == {
            1: (3, "ImportedClient"),
            2: (2, "ClientDeleted"),
        }


def test_the_newest_opt_out_version_wins_and_a_removal_is_a_state() -> None:
    phone = "79990000002"
    events: list[Envelope] = [
        envelope_for(OptOutRecorded(phone=phone, source="api", opted_out_at=AT), 1),
        envelope_for(OptOutRemoved(phone=phone, removed_at=AT), 2),
        envelope_for(
            OptOutsImported(
                batch_id="i",
                opted_out_at=AT,
                opt_outs=[ImportedOptOut(phone="79990000003", version=4)],
            ),
            1,
        ),
    ]
    for order in itertools.permutations(events):
        assert newest_states(list(order)) == {
            phone: PhoneState(opted_out=False, version=2),
            "79990000003": PhoneState(opted_out=True, version=4),
        }
