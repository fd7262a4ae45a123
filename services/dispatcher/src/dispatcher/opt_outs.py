"""Opt-outs as the dispatcher sees them: the ``dispatcher_opt_outs`` projection and the check of
a batch's phones when its calls start.

The scheduler leaves opted-out phones out of resolution and cancels their scheduled messages,
but a phone may opt out after its messages were handed over and queued here; checking it when
the call starts means no call once the opt-out is known here (within about ``max_age_s``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import asyncpg

from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.suppression import newest_states

__all__ = ["ROUTING_KEYS", "apply_opt_outs", "opted_out_among"]

ROUTING_KEYS = ("opt_out.recorded", "opt_out.removed", "opt_outs.imported")


async def apply_opt_outs(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    """Fold the opt-out events among ``envelopes`` into the table (``sms_events.suppression``)."""
    states = newest_states(envelopes)
    if not states:
        return
    # Sorted, so that two replicas upserting the same phones lock them in the same order.
    phones = sorted(states)
    await conn.execute(
        """
        INSERT INTO dispatcher_opt_outs AS o (phone, opted_out, version)
        SELECT * FROM unnest($1::text[], $2::bool[], $3::int[])
        ON CONFLICT (phone) DO UPDATE SET opted_out = EXCLUDED.opted_out, version = EXCLUDED.version
         WHERE o.version < EXCLUDED.version
        """,
        phones,
        [states[p].opted_out for p in phones],
        [states[p].version for p in phones],
    )


async def opted_out_among(db: Connection | asyncpg.Pool, phones: Collection[str]) -> set[str]:
    """The phones of ``phones`` on the suppression list now (one primary-key lookup)."""
    if not phones:
        return set()
    rows = await db.fetch(
        "SELECT phone FROM dispatcher_opt_outs WHERE phone = ANY($1::text[]) AND opted_out",
        list(set(phones)),
    )
    return {r["phone"] for r in rows}
