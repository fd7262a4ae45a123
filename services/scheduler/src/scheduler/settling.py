"""Final states for messages that have no send moment left: undelivered (ND) when the provider
was tried, cancelled (CA) when it never was. The consumer settles a failed attempt with no slot
left; the timer settles what missed its window or what a stop leaves unsent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import structlog

from scheduler.domain import RESEND_STATES, MessageState, Unsent, settled_state
from scheduler.resolution import settled_events
from sms_events.db import Connection
from sms_events.store import append_new_streams

__all__ = ["settle"]

log = structlog.get_logger(__name__)

_UNDELIVERED = MessageState.UNDELIVERED.value
# The old API's status of each settled state, as the debug lines name it.
_STATUS = {state: status for status, state in RESEND_STATES.items()}


async def settle(
    conn: Connection,
    mailing_id: int,
    unsent: Sequence[Unsent],
    now: datetime,
) -> None:
    """Final state for messages with no send moment left: ND if tried, CA if never tried."""
    if not unsent:
        return
    # The rule (domain.settled_state) decides each message once; the log and the SQL use it.
    states = [settled_state(u.attempts) for u in unsent]
    undelivered = sum(1 for state in states if state is MessageState.UNDELIVERED)
    log.info(
        "messages_settled",
        mailing_id=mailing_id,
        undelivered=undelivered,
        cancelled=len(unsent) - undelivered,
    )
    if log.is_enabled_for(logging.DEBUG):
        for u, state in zip(unsent, states, strict=True):
            log.debug(
                "message_settled",
                message_id=u.message_id,
                mailing_id=mailing_id,
                attempt=u.attempts,
                status=_STATUS[state],
                error=u.error,
            )
    # A message never tried keeps the last error it had; a tried one takes the provider's.
    await conn.execute(
        f"""
        UPDATE scheduler_messages m
           SET state = u.state, attempts = u.attempts,
               last_error = CASE WHEN u.state = '{_UNDELIVERED}' THEN u.error
                                 ELSE m.last_error END,
               updated_at = now()
        FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[])
             AS u(message_id, attempts, error, state)
        WHERE m.message_id = u.message_id
        """,
        [u.message_id for u in unsent],
        [u.attempts for u in unsent],
        [u.error for u in unsent],
        [state.value for state in states],
    )
    await append_new_streams(conn, settled_events(mailing_id, unsent, now))
