"""The suppression list as the scheduler applies it.

``scheduler_opt_outs`` keeps the newest version of each phone's opt-out, whichever event
carried it (``projection.project_opt_outs``: a single change at its stream version, an import
item at its own), so redelivered or late events change nothing. A phone that goes on the list
leaves every audience (``resolution.leave_audiences``: withdrawn before the start, unsent
messages cancelled with reason ``opted_out`` after it); one that comes off is taken in again by
mailings not started yet. Resolution itself never targets a listed phone (``resolution._target``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from scheduler.projection import OPT_OUT_EVENTS as EVENT_TYPES
from scheduler.projection import project_opt_outs
from scheduler.resolution import follow_clients, leave_audiences
from sms_events.contracts import OPTED_OUT
from sms_events.db import Connection
from sms_events.envelope import Envelope

__all__ = ["EVENT_TYPES", "apply_opt_outs"]

log = structlog.get_logger(__name__)


async def apply_opt_outs(
    conn: Connection, envelopes: Sequence[Envelope], now: datetime, *, again: bool = False
) -> None:
    """Project a run of opt-out events and carry out what changed (``again``: see
    ``projection.project_opt_outs``)."""
    changed = await project_opt_outs(conn, envelopes, again=again)
    if not changed:
        return
    joined = [phone for phone, opted_out in changed if opted_out]
    left = [phone for phone, opted_out in changed if not opted_out]
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
