"""Pauses and cancellations as the dispatcher sees them.

The scheduler stops handing over messages of a paused or cancelled mailing, but messages it
handed over already may be queued here; checking the hold before sending makes a pause or
cancel take effect within one provider round trip instead of after the queue drains.
"""

from __future__ import annotations

from collections.abc import Sequence

from sms_events.contracts import MailingCancelled, MailingDeleted, MailingPaused, MailingResumed
from sms_events.db import Connection
from sms_events.envelope import Envelope

__all__ = ["ROUTING_KEYS", "apply_holds", "hold_of"]

ROUTING_KEYS = ("mailing.paused", "mailing.resumed", "mailing.cancelled", "mailing.deleted")


async def apply_holds(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    """Fold the pause, resume, cancel and delete events among ``envelopes`` (others ignored);
    a pause or resume applies only over an older one, so their order of arrival is irrelevant."""
    for env in envelopes:
        event = env.payload()
        match event:
            case MailingPaused() | MailingResumed():
                paused = isinstance(event, MailingPaused)
                at = event.paused_at if isinstance(event, MailingPaused) else event.resumed_at
                await conn.execute(
                    """
                    INSERT INTO dispatcher_mailing_holds AS h (mailing_id, paused, changed_at)
                    VALUES ($1, $2, $3)
                    ON CONFLICT (mailing_id) DO UPDATE SET paused = $2, changed_at = $3
                     WHERE h.changed_at <= $3
                    """,
                    event.mailing_id,
                    paused,
                    at,
                )
            case MailingCancelled() | MailingDeleted():
                # The event's time, not the clock: a rebuild from the events finds the same.
                at = event.cancelled_at if isinstance(event, MailingCancelled) else event.deleted_at
                await conn.execute(
                    """
                    INSERT INTO dispatcher_mailing_holds (mailing_id, stopped, changed_at)
                    VALUES ($1, true, $2)
                    ON CONFLICT (mailing_id) DO UPDATE SET stopped = true
                    """,
                    event.mailing_id,
                    at,
                )


async def hold_of(conn: Connection, mailing_id: int) -> str | None:
    """``"paused"``, ``"cancelled"`` or None when the mailing's messages may be sent."""
    row = await conn.fetchrow(
        "SELECT paused, stopped FROM dispatcher_mailing_holds WHERE mailing_id = $1", mailing_id
    )
    if row is None:
        return None
    if row["stopped"]:
        return "cancelled"
    return "paused" if row["paused"] else None
