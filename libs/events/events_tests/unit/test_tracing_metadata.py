"""Correlation and causation ids flow from traced() into appended events' metadata."""

from __future__ import annotations

from structlog.contextvars import get_contextvars

from sms_events.contracts import ClientDeleted
from sms_events.store import NewEvent
from sms_events.tracing import current_metadata, traced


def test_metadata_is_empty_outside_traced() -> None:
    assert current_metadata() == {}


def test_metadata_carries_the_ids_within_traced() -> None:
    with traced("corr-1", "cause-1") as cid:
        assert cid == "corr-1"
        assert current_metadata() == {"correlation_id": "corr-1", "causation_id": "cause-1"}
        assert get_contextvars()["correlation_id"] == "corr-1"

    assert current_metadata() == {}
    assert "correlation_id" not in get_contextvars()


def test_traced_without_an_id_makes_a_new_one() -> None:
    with traced(None) as cid:
        assert len(cid) == 32
        assert current_metadata() == {"correlation_id": cid}


def test_nested_traced_restores_the_outer_ids() -> None:
    with traced("outer"):
        with traced("inner", "event-1"):
            assert current_metadata()["correlation_id"] == "inner"
        assert current_metadata() == {"correlation_id": "outer"}


def test_new_event_takes_the_metadata_of_where_it_was_made() -> None:
    from datetime import UTC, datetime

    event = ClientDeleted(client_id=1, deleted_at=datetime(2025, 1, 1, tzinfo=UTC))
    with traced("corr-2", "cause-2"):
        inside = NewEvent(event)
    outside = NewEvent(event)

    assert inside.metadata == {"correlation_id": "corr-2", "causation_id": "cause-2"}
    assert outside.metadata == {}
