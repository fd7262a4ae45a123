"""The event feed for readers outside the platform: the cursor every published event carries, and
pages of the whole store in the relay's order (GET /api/v1/events/ serves them).

A cursor names a place in the relay's order, (transaction id, global position), as 32 lower-case
hex digits: opaque to build, but two cursors compare as plain strings in that order. A consumer
switching from the feed to a queue can then drop the envelopes it already read by comparing
their ``cursor`` attribute with the feed's last cursor, without parsing either (base64, as the
message pages' cursors are, would not sort).

A page reads only below the read horizon, as the relay does (see sms_events.store), so it never
shows an event that the relay could still publish after a later one: a client resuming after
the page's last cursor skips nothing. With a type filter the scan is bounded (``max_scanned``
rows) and the cursor still moves over the events filtered out, so a page that matched nothing
still makes progress.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from sms_events.horizon import read_horizon
from sms_events.store import _COLUMNS, Checkpoint, RecordedEvent, _record

__all__ = ["FeedPage", "InvalidCursor", "PagePlan", "cursor_of", "parse_cursor", "plan_page",
           "read_page"]  # fmt: skip

_CURSOR: Final = re.compile(r"[0-7][0-9a-f]{15}[0-7][0-9a-f]{15}")  # two non-negative bigints


class InvalidCursor(ValueError):
    """A string that no ``cursor_of`` wrote."""


def cursor_of(checkpoint: Checkpoint) -> str:
    """The opaque cursor of a place in the relay's order; cursors sort as their places do."""
    return f"{checkpoint.transaction_id:016x}{checkpoint.global_position:016x}"


def parse_cursor(raw: str) -> Checkpoint:
    """The place ``cursor_of`` wrote as ``raw``; raises ``InvalidCursor`` for anything else."""
    if _CURSOR.fullmatch(raw) is None:
        raise InvalidCursor(raw[:40])
    return Checkpoint(int(raw[:16], 16), int(raw[16:], 16))


@dataclass(frozen=True, slots=True)
class PagePlan:
    """Which scanned events a page returns, where the next page starts, whether one may follow."""

    chosen: list[Checkpoint]
    next: Checkpoint
    has_more: bool


def plan_page(
    scanned: Sequence[tuple[Checkpoint, bool]], after: Checkpoint, limit: int, max_scanned: int
) -> PagePlan:
    """Choose a page from ``scanned``: the events after ``after`` in the relay's order, each with
    whether the filter wants it, up to ``max_scanned + 1`` of them (one more than may be examined
    says whether more follow). The page holds up to ``limit`` wanted events; ``next`` is the last
    place examined before the first wanted event left out, so the filtered-out events before it
    are never scanned again."""
    chosen: list[Checkpoint] = []
    last = after
    for place, wanted in scanned[:max_scanned]:
        if wanted and len(chosen) == limit:
            return PagePlan(chosen, last, True)
        if wanted:
            chosen.append(place)
        last = place
    return PagePlan(chosen, last, len(scanned) > max_scanned)


@dataclass(frozen=True, slots=True)
class FeedPage:
    events: list[RecordedEvent]
    next: Checkpoint
    has_more: bool


# The relay's order on its index (events_commit_order), below the horizon; the type is all a
# page needs to choose, so the payloads of the events filtered out are not read. ORDER BY names
# the table's columns: a bare transaction_id would be the output's bigint alias, which no index
# has, and PostgreSQL would sort every event after the cursor to return the first few.
_SCAN = """
SELECT transaction_id::text::bigint AS transaction_id, global_position, type FROM events
WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
  AND transaction_id < $3::text::xid8
ORDER BY events.transaction_id, events.global_position
LIMIT $4
"""

_CHOSEN = f"""
SELECT {_COLUMNS} FROM events WHERE global_position = ANY($1::bigint[])
ORDER BY events.transaction_id, events.global_position
"""


async def read_page(
    pool: asyncpg.Pool,
    after: Checkpoint,
    *,
    limit: int,
    types: Collection[str] | None = None,
    max_scanned: int | None = None,
) -> FeedPage:
    """Up to ``limit`` events after ``after`` in the relay's order (of ``types`` only, when
    given), examining at most ``max_scanned`` events (default: ``limit``)."""
    cap = max(limit, max_scanned or limit)
    async with pool.acquire() as conn:
        horizon = await read_horizon(conn)  # before the scan's snapshot, as read_all does
        rows = await conn.fetch(
            _SCAN, str(after.transaction_id), after.global_position, str(horizon), cap + 1
        )
        wanted = set(types) if types is not None else None
        scanned = [
            (Checkpoint(r["transaction_id"], r["global_position"]),
             wanted is None or r["type"] in wanted)
            for r in rows
        ]  # fmt: skip
        plan = plan_page(scanned, after, limit, cap)
        chosen = [p.global_position for p in plan.chosen]
        events = [_record(r) for r in await conn.fetch(_CHOSEN, chosen)] if chosen else []
    return FeedPage(events, plan.next, plan.has_more)
