"""What each event does to the schedule. Called with a batch of events inside the consumer's
transaction (which also records the event ids, so a redelivered batch changes nothing).

Each event is handled inside ``traced`` with its correlation id, so the events appended for
it (messages scheduled, cancelled, settled) carry the id of the request that started it all,
and the event as their cause; a run of client events is one step, traced as its first event.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import structlog

from scheduler.domain import (
    PROJECTION_NAME,
    MailingStatus,
    MessageState,
    Unsent,
)
from scheduler.opt_outs import EVENT_TYPES as OPT_OUT_EVENTS
from scheduler.opt_outs import apply_opt_outs
from scheduler.projection import (
    CLIENT_EVENTS,
    apply_mailing_state,
    project_clients,
    project_pause,
    project_status,
)
from scheduler.resolution import (
    cancelled_events,
    follow_clients,
    leave_audiences,
    load_mailing,
    message_events,
    not_opted_out,
)
from scheduler.settling import settle
from sms_events.contracts import (
    OPTED_OUT,
    MailingCancelled,
    MailingDeleted,
    MailingPaused,
    MailingResumed,
    MailingScheduled,
    MailingUpdated,
    MessageAttemptsFailed,
    MessagesDelivered,
    MessagesRescheduled,
    MessagesUndelivered,
    ScheduledMessage,
)
from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.replay import folded
from sms_events.store import append_new_streams
from sms_events.tracing import traced

__all__ = ["Clock", "handle_batch"]

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]

_SCHEDULED = MessageState.SCHEDULED.value
_HANDED_OVER = MessageState.HANDED_OVER.value
_DELIVERED = MessageState.DELIVERED.value
_UNDELIVERED = MessageState.UNDELIVERED.value
_CANCELLED = MessageState.CANCELLED.value


def _now() -> datetime:
    return datetime.now(UTC)


async def handle_batch(
    conn: Connection, envelopes: Sequence[Envelope], clock: Clock = _now
) -> None:
    """Apply a batch in order, grouping consecutive client events (single changes and import
    batches alike), and consecutive opt-out events, into one set-based step each."""
    # The batch writes the scheduler's projections (a rebuild's swap waits for it, and it for
    # the swap); what a rebuild folded already is handled all the same (see projection.py).
    again = await folded(conn, PROJECTION_NAME, envelopes)
    run: list[Envelope] = []
    run_key: tuple[_RunStep, bool] | None = None
    for env in envelopes:
        step = _run_step(env.type)
        key = None if step is None else (step, env.id in again)
        if run and key != run_key:
            assert run_key is not None
            await _traced_run(conn, run, *run_key, clock())
            run = []
        if key is not None:
            run.append(env)
            run_key = key
            continue
        with traced(env.correlationid, causation_id=str(env.id)):
            if env.type in _SINGLE_EVENTS:
                await _apply(conn, env, clock(), again=env.id in again)
    if run:
        assert run_key is not None
        await _traced_run(conn, run, *run_key, clock())


_RunStep = Callable[..., Awaitable[None]]
"""(conn, envelopes, now, *, again): one set-based step for a run of events."""


def _run_step(event_type: str) -> _RunStep | None:
    """The set-based step that applies a run of events of this type, or None."""
    if event_type in CLIENT_EVENTS:
        return _on_clients
    if event_type in OPT_OUT_EVENTS:
        return apply_opt_outs
    return None


async def _traced_run(
    conn: Connection, envs: list[Envelope], step: _RunStep, again: bool, now: datetime
) -> None:
    # One set-based step for the run: its first event stands for all of them (an import's
    # events share one correlation id anyway); a single event is also the cause.
    first = envs[0]
    cause = str(first.id) if len(envs) == 1 else None
    with traced(first.correlationid, causation_id=cause):
        await step(conn, envs, now, again=again)


# --- clients -----------------------------------------------------------------------------------


async def _on_clients(
    conn: Connection, envs: list[Envelope], now: datetime, *, again: bool = False
) -> None:
    changed, deleted = await project_clients(conn, envs, again=again)
    if changed:
        await follow_clients(conn, changed, now)
    if deleted:
        await leave_audiences(conn, deleted, now, "client deleted")


# --- mailings ----------------------------------------------------------------------------------


async def _apply(conn: Connection, env: Envelope, now: datetime, *, again: bool) -> None:
    """One event that is not part of a run, by its type (``_SINGLE_EVENTS``)."""
    match env.payload():
        case MailingScheduled() | MailingUpdated():
            await apply_mailing_state(conn, env, now, again=again)
        case MailingDeleted() as event:
            # The timer deletes its unsent messages in chunks (``timer.settle_stopped``).
            await project_status(conn, event.mailing_id, MailingStatus.DELETED)
        case MailingCancelled() as event:
            # The timer cancels its unsent messages in chunks (``timer.settle_stopped``).
            await project_status(conn, event.mailing_id, MailingStatus.CANCELLED)
        case MailingPaused() | MailingResumed() as event:
            await project_pause(conn, event)
        case MessagesDelivered() as event:
            await _on_delivered(conn, event)
        case MessagesUndelivered() as event:
            await _on_undelivered(conn, event)
        case MessageAttemptsFailed() as event:
            await _on_attempts_failed(conn, event, now)
        case _:  # listed in _SINGLE_EVENTS without a case here: fail loudly, never skip
            raise TypeError(f"no handler for {env.type}")


_SINGLE_EVENTS = frozenset(
    cls.event_type
    for cls in (
        MailingScheduled,
        MailingUpdated,
        MailingDeleted,
        MailingCancelled,
        MailingPaused,
        MailingResumed,
        MessagesDelivered,
        MessagesUndelivered,
        MessageAttemptsFailed,
    )
)
"""The event types ``_apply`` handles; the others a batch may hold are the runs' or ignored."""


# --- outcomes from the dispatcher --------------------------------------------------------------


async def _on_delivered(conn: Connection, event: MessagesDelivered) -> None:
    await conn.execute(
        f"""
        UPDATE scheduler_messages m SET state = '{_DELIVERED}', attempts = u.attempt,
               updated_at = now()
        FROM unnest($1::bigint[], $2::int[]) AS u(message_id, attempt)
        WHERE m.message_id = u.message_id
        """,
        [m.message_id for m in event.messages],
        [m.attempt for m in event.messages],
    )


async def _on_undelivered(conn: Connection, event: MessagesUndelivered) -> None:
    await conn.execute(
        f"""
        UPDATE scheduler_messages m SET state = '{_UNDELIVERED}', attempts = u.attempts,
               last_error = u.error, updated_at = now()
        FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(message_id, attempts, error)
        WHERE m.message_id = u.message_id AND m.state <> '{_DELIVERED}'
        """,
        [m.message_id for m in event.messages],
        [m.attempts for m in event.messages],
        [m.error for m in event.messages],
    )


async def _on_attempts_failed(
    conn: Connection, event: MessageAttemptsFailed, now: datetime
) -> None:
    """Put each message back on the timer in its client's next send slot from its retry time
    (never from before now); when no slot is left before the end the message is settled: ND
    with the last error when the provider was tried, CA when it never was."""
    mailing = await load_mailing(conn, event.mailing_id)
    failures = {f.message_id: f for f in event.messages}
    if mailing is None or mailing.stopped:
        # Stopped while these were with the dispatcher: unsent, so cancelled like the rest.
        await _cancel_unsent(conn, event.mailing_id, list(failures), "mailing cancelled")
        return
    found = await conn.fetch(
        "SELECT m.message_id, m.client_id, m.attempts, m.last_error, c.time_zone,"
        f" c.phone IS NOT NULL AND NOT {not_opted_out('c')} AS opted_out"
        " FROM scheduler_messages m"
        " LEFT JOIN scheduler_clients c USING (client_id)"
        f" WHERE m.message_id = ANY($1) AND m.state IN ('{_HANDED_OVER}', '{_SCHEDULED}')",
        list(failures),
    )
    # A phone that opted out since is never tried again (the dispatcher refuses its calls).
    if opted := [r["message_id"] for r in found if r["opted_out"]]:
        await _cancel_unsent(conn, event.mailing_id, opted, OPTED_OUT)
        for message_id in opted:
            del failures[message_id]
    rows = [r for r in found if not r["opted_out"]]
    retry: list[tuple[int, datetime, datetime]] = []
    give_up: list[Unsent] = []
    clients = {r["message_id"]: r["client_id"] for r in rows}
    for r in rows:
        f = failures[r["message_id"]]
        if f.attempts < r["attempts"]:
            # Older news than the row holds: a hand-back of an attempt that another copy of
            # the due event has since made (the row already has that call's outcome).
            del failures[f.message_id]
            continue
        error = f.error
        if f.attempts <= r["attempts"] and r["last_error"]:
            # Handed back without a provider call (window closed, circuit open, paused): the
            # provider's last answer stays the message's last error.
            error = r["last_error"]
        # A deleted client has no zone and no slot left.
        slot = (
            mailing.slots([zone], max(f.retry_at, now))[zone] if (zone := r["time_zone"]) else None
        )
        if slot is None:
            give_up.append(Unsent(f.message_id, f.attempts, error))
        else:
            retry.append((f.message_id, slot.opens, slot.closes))
            failures[f.message_id] = f.model_copy(update={"error": error})
    log.info(
        "attempts_failed_recorded",
        mailing_id=event.mailing_id,
        failed=len(failures),
        retried=len(retry),
        settled=len(give_up),
    )
    if retry:
        if log.is_enabled_for(logging.DEBUG):
            for m, due, _ in retry:
                log.debug(
                    "message_scheduled",
                    message_id=m,
                    mailing_id=event.mailing_id,
                    attempt=failures[m].attempts + 1,
                    due_at=due.isoformat(),
                    retry=True,
                )
        await conn.execute(
            f"""
            UPDATE scheduler_messages m SET state = '{_SCHEDULED}', due_at = u.due,
                   closes_at = u.closes, attempts = u.attempts, last_error = u.error,
                   handed_over_at = NULL, updated_at = now()
            FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::int[],
                        $5::text[]) AS u(message_id, due, closes, attempts, error)
            WHERE m.message_id = u.message_id
            """,
            [m for m, _, _ in retry],
            [d for _, d, _ in retry],
            [c for _, _, c in retry],
            [failures[m].attempts for m, _, _ in retry],
            [failures[m].error for m, _, _ in retry],
        )
        # Every retry, with its slot, calls and last error: what the row now holds, so that a
        # rebuild from the events finds it (the slot's close is nowhere else).
        retried = [
            ScheduledMessage(
                message_id=m,
                client_id=clients[m],
                due_at=due,
                closes_at=closes,
                attempts=failures[m].attempts,
                last_error=failures[m].error,
            )
            for m, due, closes in retry
        ]
        await append_new_streams(
            conn, message_events(MessagesRescheduled, event.mailing_id, retried)
        )
    if give_up:
        await settle(conn, event.mailing_id, give_up, now)


async def _cancel_unsent(
    conn: Connection, mailing_id: int, message_ids: list[int], reason: str
) -> None:
    """Cancel those of ``message_ids`` not settled yet (with the dispatcher or waiting)."""
    rows = await conn.fetch(
        f"UPDATE scheduler_messages SET state = '{_CANCELLED}', updated_at = now()"
        f" WHERE message_id = ANY($1) AND state IN ('{_HANDED_OVER}', '{_SCHEDULED}')"
        " RETURNING message_id",
        message_ids,
    )
    ids = [r["message_id"] for r in rows]
    await append_new_streams(conn, cancelled_events(mailing_id, ids, reason))
