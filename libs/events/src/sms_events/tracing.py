"""Correlation and causation ids carried from an HTTP request into events and on to consumers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import uuid4

import structlog

__all__ = ["acting_as", "current_metadata", "new_correlation_id", "traced"]

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
_causation_id: ContextVar[str | None] = ContextVar("causation_id", default=None)
# Who asked for the change (an API key's name, an admin's OIDC subject and email): recorded in
# the metadata of every event a command appends, so the audit trail reads it from the store.
_actor: ContextVar[dict[str, str] | None] = ContextVar("actor", default=None)


def new_correlation_id() -> str:
    return uuid4().hex


@contextmanager
def traced(correlation_id: str | None, causation_id: str | None = None) -> Iterator[str]:
    """Within the block, appended events carry these ids and every log line shows them."""
    cid = correlation_id or new_correlation_id()
    tokens = (_correlation_id.set(cid), _causation_id.set(causation_id))
    with structlog.contextvars.bound_contextvars(correlation_id=cid):
        try:
            yield cid
        finally:
            _correlation_id.reset(tokens[0])
            _causation_id.reset(tokens[1])


def acting_as(actor: dict[str, str]) -> None:
    """The rest of this task (one HTTP request) acts for ``actor``. Never a secret in it."""
    _actor.set(dict(actor))


def current_metadata() -> dict[str, Any]:
    """Metadata for an event appended now: the ids of the request or event that caused it."""
    meta: dict[str, Any] = {}
    if (cid := _correlation_id.get()) is not None:
        meta["correlation_id"] = cid
    if (cause := _causation_id.get()) is not None:
        meta["causation_id"] = cause
    if (actor := _actor.get()) is not None:
        meta["actor"] = actor
    return meta
