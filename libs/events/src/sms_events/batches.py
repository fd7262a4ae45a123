"""Helpers for the hot path's batch events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar
from uuid import uuid4

__all__ = ["chunks", "new_batch_id"]

T = TypeVar("T")


def new_batch_id() -> str:
    """A fresh batch id: the batch event's stream is ``<category>-<mailing>-<batch id>``."""
    return uuid4().hex


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
