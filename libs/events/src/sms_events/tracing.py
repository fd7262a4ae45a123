"""Correlation and causation ids carried from an HTTP request into events and on to consumers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import uuid4

import structlog

__all__ = ["current_metadata", "new_correlation_id", "traced"]

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
_causation_id: ContextVar[str | None] = ContextVar("causation_id", default=None)


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


def current_metadata() -> dict[str, Any]:
    """Metadata for an event appended now: the ids of the request or event that caused it."""
    meta: dict[str, Any] = {}
    if (cid := _correlation_id.get()) is not None:
        meta["correlation_id"] = cid
    if (cause := _causation_id.get()) is not None:
        meta["causation_id"] = cause
    return meta
