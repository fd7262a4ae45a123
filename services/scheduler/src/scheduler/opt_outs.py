"""The suppression list as the scheduler applies it.

``scheduler_opt_outs`` keeps the newest version of each phone's opt-out, whichever event
carried it (a single change at its stream version, an import item at its own), so redelivered
or late events change nothing. A phone that goes on the list leaves every audience
(``resolution.leave_audiences``: withdrawn before the start, unsent messages cancelled with
reason ``opted_out`` after it); one that comes off is taken in again by mailings not started
yet. Resolution itself never targets a listed phone (``resolution._target``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import structlog

from scheduler.resolution import follow_clients, leave_audiences
from sms_events.contracts import OPTED_OUT, OptOutRecorded, OptOutRemoved, OptOutsImported
from sms_events.db import Connection
from sms_events.envelope import Envelope

__all__ = ["EVENT_TYPES", "apply_opt_outs", "opted_out_among"]

log = structlog.get_logger(__name__)

EVENT_TYPES: Final = frozenset(
    e.event_type for e in (OptOutRecorded, OptOutRemoved, OptOutsImported)
)


def newest_changes(envelopes: Sequence[Envelope]) -> dict[str, tuple[int, bool]]:
    """phone -> (version, opted out) of the newest change each phone has in ``envelopes``."""
    newest: dict[str, tuple[int, bool]] = {}

    def note(phone: str, version: int, opted_out: bool) -> None:
        if phone not in newest or newest[phone][0] < version:
            newest[phone] = (version, opted_out)

    for env in envelopes:
        event = env.payload()
        match event:
            case OptOutsImported():
                for item in event.opt_outs:
                    note(item.phone, item.version, True)
            case OptOutRecorded() | OptOutRemoved():
                note(event.phone, env.sequence or 0, isinstance(event, OptOutRecorded))
    return newest


async def apply_opt_outs(conn: Connection, envelopes: Sequence[Envelope], now: datetime) -> None:
    """Project a run of opt-out events and carry out what changed."""
    newest = newest_changes(envelopes)
    if not newest:
        return
    changed = await conn.fetch(
        """
        INSERT INTO scheduler_opt_outs AS o (phone, version, opted_out)
        SELECT * FROM unnest($1::text[], $2::int[], $3::bool[])
        ON CONFLICT (phone) DO UPDATE SET version = excluded.version,
                                          opted_out = excluded.opted_out
         WHERE o.version < excluded.version
        RETURNING phone, opted_out
        """,
        list(newest),
        [v for v, _ in newest.values()],
        [o for _, o in newest.values()],
    )
    joined = [r["phone"] for r in changed if r["opted_out"]]
    left = [r["phone"] for r in changed if not r["opted_out"]]
    if joined:
        clients = await _clients_with(conn, joined)
        if clients:
            await leave_audiences(conn, clients, now, OPTED_OUT)
    if left:
        clients = await _clients_with(conn, left)
        if clients:
            await follow_clients(conn, clients, now)
    log.info("opt_outs_applied", opted_out=len(joined), opted_in=len(left))


async def _clients_with(conn: Connection, phones: list[str]) -> list[int]:
    rows = await conn.fetch(
        "SELECT client_id FROM scheduler_clients WHERE phone = ANY($1) ORDER BY client_id", phones
    )
    return [r["client_id"] for r in rows]


async def opted_out_among(conn: Connection, message_ids: list[int]) -> set[int]:
    """Those of ``message_ids`` whose client's phone is on the list now."""
    rows = await conn.fetch(
        """
        SELECT m.message_id FROM scheduler_messages m
        JOIN scheduler_clients c USING (client_id)
        JOIN scheduler_opt_outs o ON o.phone = c.phone AND o.opted_out
        WHERE m.message_id = ANY($1)
        """,
        message_ids,
    )
    return {r["message_id"] for r in rows}
