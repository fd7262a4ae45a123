"""Final states for messages that have no send moment left: undelivered (ND) when the provider
was tried, cancelled (CA) when it never was. The consumer settles a failed attempt with no slot
left; the timer settles what missed its window or what a stop leaves unsent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import structlog

from scheduler.domain import MessageState, Unsent, settled_state
from scheduler.resolution import settled_events
from sms_events.db import Connection
from sms_events.store import append_new_streams

__all__ = ["settle"]

log = structlog.get_logger(__name__)

_UNDELIVERED = MessageState.UNDELIVERED.value
_CANCELLED = MessageState.CANCELLED.value


async def settle(
    conn: Connection,
    mailing_id: int,
    unsent: Sequence[Unsent],
    now: datetime,
) -> None:
    """Final state for messages with no send moment left: ND if tried, CA if never tried."""
    if not unsent:
        return
    tried = [u for u in unsent if settled_state(u.attempts) is MessageState.UNDELIVERED]
    untried = [u.message_id for u in unsent if u.attempts == 0]
    log.info(
        "messages_settled", mailing_id=mailing_id, undelivered=len(tried), cancelled=len(untried)
    )
    if log.is_enabled_for(logging.DEBUG):
        for u in unsent:
            log.debug(
                "message_settled",
                message_id=u.message_id,
                mailing_id=mailing_id,
                attempt=u.attempts,
                status="ND" if u.attempts else "CA",
                error=u.error,
            )
    await conn.execute(
        f"""
        UPDATE scheduler_messages m
           SET state = CASE WHEN u.attempts > 0 THEN '{_UNDELIVERED}' ELSE '{_CANCELLED}' END,
               attempts = u.attempts,
               last_error = CASE WHEN u.attempts > 0 THEN u.error ELSE m.last_error END,
               updated_at = now()
        FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(message_id, attempts, error)
        WHERE m.message_id = u.message_id
        """,
        [u.message_id for u in unsent],
        [u.attempts for u in unsent],
        [u.error for u in unsent],
    )
    await append_new_streams(conn, settled_events(mailing_id, unsent, now))
