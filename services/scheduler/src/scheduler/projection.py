"""The scheduler's tables as ``sms-replay scheduler`` rebuilds them, and the writes the live
handlers share with that rebuild.

What a table holds comes from the events: clients, tombstones, opt-outs and mailings from the
gateway's events (the writes below, the very ones the handlers make before they react), and
every message change from the event the scheduler appended in the same transaction
(scheduled, rescheduled with a retry's attempts and last error, withdrawn, cancelled, due with
its hand-over time, recovered, left out) or from the dispatcher's outcome (delivered,
undelivered). The fold re-runs no decision about messages: ids, slots and times are the
events'; it appends nothing and reads no clock. Three things follow from rules: a deleted
mailing's scheduled messages are gone (the timer deletes them without an event: the mailing
never started), and ``swept`` is true for a stopped mailing with no scheduled message left
(what the timer's sweep establishes). The audience resolutions asked for
(``scheduler_resolutions``, a work queue) are rebuilt too, so that a restore resumes those
under way: one is pending from the mailing event that asked for it (the same rule as live, at
the event's recorded time) until ``mailing.audience_resolved`` or a stop. At a swap a live job
the rebuild has no row for is kept as it is (``carry``); one it has restarts from the first
client (every chunk is safe to repeat).

Events recorded before the scheduler carried everything (the fields and types are optional, so
old events still parse), and what a rebuild makes of them: a ``messages.scheduled`` item
without ``closes_at`` closes at the mailing's end (what migration scheduler_0002 gave the rows
of that time); a ``messages.due`` without ``handed_over_at`` was handed over when it was
recorded (the same transaction). A retry whose slot did not move left no event then: the
message stays handed over with its earlier attempts until its next outcome restates them
(a final one does; one delivered after such a retry keeps no last error), and were it still in
flight, the timer's lease hands it over again. Clients left out and stale hand-overs recovered
before ``mailing.clients_left_out`` and ``messages.recovered`` existed are not known: none are
left out (a new resolution finds them again), and such a message stays handed over until its
next hand-over.

Why the scheduler's consumer does not skip what a rebuild folded (the reporter's does): its
handlers react to events (resolve audiences, cancel, retry), and an event the rebuild folded
but the consumer had not handled yet still needs its reaction. It is handled after the swap
with ``again`` (``sms_events.replay.folded`` tells those events apart): the writes below take
the version already there as written, so the handler reacts, on tables that hold everything
its reaction depends on. Handled events are never handled twice (``processed_events``), and a
reaction repeated is safe (resolution is).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from scheduler.domain import (
    PROJECTION_NAME,
    MailingStatus,
    MessageState,
    resolution_mode,
    source_states,
)
from scheduler.resolution import load_mailing, request_resolution
from sms_events.contracts import (
    ClientCreated,
    ClientDeleted,
    ClientsImported,
    ClientsLeftOut,
    ClientUpdated,
    Event,
    ImportedClient,
    MailingAudienceResolved,
    MailingCancelled,
    MailingDeleted,
    MailingPaused,
    MailingResumed,
    MailingScheduled,
    MailingUpdated,
    MessagesCancelled,
    MessagesDelivered,
    MessagesDue,
    MessagesRecovered,
    MessagesRescheduled,
    MessagesScheduled,
    MessagesUndelivered,
    MessagesWithdrawn,
    OptOutRecorded,
    OptOutRemoved,
    OptOutsImported,
)
from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.replay import Projection
from sms_events.suppression import newest_states
from sms_events.tracing import traced

__all__ = [
    "CLIENT_EVENTS",
    "OPT_OUT_EVENTS",
    "PROJECTION",
    "fold",
    "latest_clients",
    "project_clients",
    "project_mailing",
    "project_opt_outs",
    "project_pause",
    "project_status",
]

_SCHEDULED = MessageState.SCHEDULED.value
_HANDED_OVER = MessageState.HANDED_OVER.value
_DELIVERED = MessageState.DELIVERED.value
_UNDELIVERED = MessageState.UNDELIVERED.value
_CANCELLED = MessageState.CANCELLED.value
_STOPPED = [MailingStatus.CANCELLED.value, MailingStatus.DELETED.value]

CLIENT_EVENTS: Final = frozenset(
    e.event_type for e in (ClientCreated, ClientUpdated, ClientDeleted, ClientsImported)
)
OPT_OUT_EVENTS: Final = frozenset(
    e.event_type for e in (OptOutRecorded, OptOutRemoved, OptOutsImported)
)

# --- pure rules ---------------------------------------------------------------------------------

ClientChange = ClientCreated | ClientUpdated | ClientDeleted | ImportedClient


def latest_clients(envelopes: Sequence[Envelope]) -> dict[int, tuple[int, ClientChange]]:
    """client id -> (version, change) of the newest change each client has in ``envelopes``:
    a single client's event at its stream version, an import item at its own version."""
    latest: dict[int, tuple[int, ClientChange]] = {}
    for env in envelopes:
        event = env.payload()
        changes: list[tuple[int, ClientChange]]
        if isinstance(event, ClientsImported):
            changes = [(c.version, c) for c in event.clients]
        else:
            assert isinstance(event, ClientCreated | ClientUpdated | ClientDeleted)
            changes = [(env.sequence or 0, event)]
        for version, change in changes:
            known = latest.get(change.client_id)
            if known is None or known[0] < version:
                latest[change.client_id] = (version, change)
    return latest


# --- writes shared with the live handlers -------------------------------------------------------


async def project_clients(
    conn: Connection, envelopes: Sequence[Envelope], *, again: bool = False
) -> tuple[list[int], list[int]]:
    """Write a run of client events (newest version per client wins; a deleted client keeps a
    tombstone, so a late update cannot revive it). Returns the ids written and the ids
    deleted. ``again``: the events were folded already, their versions count as written."""
    latest = latest_clients(envelopes)
    upserts = [(v, e) for v, e in latest.values() if not isinstance(e, ClientDeleted)]
    deleted = [e.client_id for _, e in latest.values() if isinstance(e, ClientDeleted)]
    changed: list[int] = []
    if upserts:
        cols: tuple[list[object], ...] = ([], [], [], [], [], [])
        for version, e in upserts:
            assert isinstance(e, ClientCreated | ClientUpdated | ImportedClient)
            values = (e.client_id, e.phone, e.operator_code, e.tag, e.time_zone, version)
            for col, value in zip(cols, values, strict=True):
                col.append(value)
        rows = await conn.fetch(
            """
            INSERT INTO scheduler_clients AS c
                (client_id, phone, operator_code, tag, time_zone, version)
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                                 $6::int[]) AS u(client_id, phone, operator_code, tag, tz, v)
            WHERE NOT EXISTS (
                SELECT 1 FROM scheduler_deleted_clients d WHERE d.client_id = u.client_id)
            ON CONFLICT (client_id) DO UPDATE
               SET phone = excluded.phone, operator_code = excluded.operator_code,
                   tag = excluded.tag, time_zone = excluded.time_zone, version = excluded.version
             WHERE c.version < excluded.version OR (c.version = excluded.version AND $7)
            RETURNING client_id
            """,
            *cols,
            again,
        )
        changed = [r["client_id"] for r in rows]
    if deleted:
        await conn.execute(
            "INSERT INTO scheduler_deleted_clients SELECT unnest($1::bigint[])"
            " ON CONFLICT DO NOTHING",
            deleted,
        )
        await conn.execute("DELETE FROM scheduler_clients WHERE client_id = ANY($1)", deleted)
    return changed, deleted


async def project_opt_outs(
    conn: Connection, envelopes: Sequence[Envelope], *, again: bool = False
) -> list[tuple[str, bool]]:
    """Write a run of opt-out events (newest version per phone wins; a removal is a state, so
    an older opt-out arriving late changes nothing). Returns (phone, opted out) written;
    ``again`` as for ``project_clients``."""
    newest = newest_states(envelopes)
    if not newest:
        return []
    rows = await conn.fetch(
        """
        INSERT INTO scheduler_opt_outs AS o (phone, version, opted_out)
        SELECT * FROM unnest($1::text[], $2::int[], $3::bool[])
        ON CONFLICT (phone) DO UPDATE SET version = excluded.version,
                                          opted_out = excluded.opted_out
         WHERE o.version < excluded.version OR (o.version = excluded.version AND $4)
        RETURNING phone, opted_out
        """,
        list(newest),
        [state.version for state in newest.values()],
        [state.opted_out for state in newest.values()],
        again,
    )
    return [(r["phone"], r["opted_out"]) for r in rows]


async def project_mailing(conn: Connection, env: Envelope, *, again: bool = False) -> bool:
    """Write a mailing's state at its stream version; False when not newer than the stored one
    (nothing written); ``again`` as for ``project_clients``."""
    event = env.payload()
    assert isinstance(event, MailingScheduled | MailingUpdated)
    row = await conn.fetchrow(
        """
        INSERT INTO scheduler_mailings AS g (mailing_id, text, datetime_start, datetime_end,
            window_start, window_end, client_filter, version, source_mailing_id, source_states)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (mailing_id) DO UPDATE
           SET text = excluded.text, datetime_start = excluded.datetime_start,
               datetime_end = excluded.datetime_end, window_start = excluded.window_start,
               window_end = excluded.window_end, client_filter = excluded.client_filter,
               version = excluded.version, source_mailing_id = excluded.source_mailing_id,
               source_states = excluded.source_states, updated_at = now()
         WHERE g.version < excluded.version OR (g.version = excluded.version AND $11)
        RETURNING mailing_id
        """,
        event.mailing_id,
        event.text,
        event.datetime_start,
        event.datetime_end,
        event.send_interval_time_start,
        event.send_interval_time_end,
        event.client_filter,
        env.sequence or 0,
        event.source_mailing_id,
        source_states(event.source_statuses),
        again,
    )
    return row is not None


async def apply_mailing_state(
    conn: Connection,
    env: Envelope,
    now: datetime,
    *,
    again: bool = False,
    requested_at: datetime | None = None,
) -> None:
    """Write a mailing's state (``project_mailing``) and, unless it is stopped, ask for its
    audience to be resolved in the mode ``now`` calls for (``requested_at``: the job's place in
    the queue). Live, ``now`` is the clock when the event is handled; a rebuild passes the time
    the event was recorded, for both."""
    event = env.payload()
    assert isinstance(event, MailingScheduled | MailingUpdated)
    start_before = await conn.fetchval(
        "SELECT datetime_start FROM scheduler_mailings WHERE mailing_id = $1 FOR UPDATE",
        event.mailing_id,
    )
    if not await project_mailing(conn, env, again=again):
        return  # an older version than we already have
    mailing = await load_mailing(conn, event.mailing_id)
    assert mailing is not None
    if mailing.stopped:
        return
    mode = resolution_mode(
        created=isinstance(event, MailingScheduled),
        started=mailing.started(now),
        accepted_before_start=start_before is not None and env.time < start_before,
    )
    await request_resolution(conn, mailing.mailing_id, mode, requested_at=requested_at)


async def project_pause(conn: Connection, event: MailingPaused | MailingResumed) -> None:
    """Pausing holds an active mailing; resuming releases a paused one; nothing else changes."""
    new, old = (
        (MailingStatus.PAUSED, MailingStatus.ACTIVE)
        if isinstance(event, MailingPaused)
        else (MailingStatus.ACTIVE, MailingStatus.PAUSED)
    )
    await conn.execute(
        "UPDATE scheduler_mailings SET status = $2, updated_at = now()"
        " WHERE mailing_id = $1 AND status = $3",
        event.mailing_id,
        new.value,
        old.value,
    )


async def project_status(conn: Connection, mailing_id: int, status: MailingStatus) -> None:
    """A mailing stopped (cancelled or deleted): its unsent messages are still to be settled."""
    # The mailing may not be known yet (events of another stream raced ahead): remember it.
    await conn.execute(
        """
        INSERT INTO scheduler_mailings (mailing_id, text, datetime_start, datetime_end, status,
                                        version)
        VALUES ($1, '', 'epoch', 'epoch', $2, 0)
        ON CONFLICT (mailing_id) DO UPDATE SET status = $2, swept = false, updated_at = now()
        """,
        mailing_id,
        status.value,
    )


# --- the fold -----------------------------------------------------------------------------------

_RUNS = {"clients": CLIENT_EVENTS, "opt_outs": OPT_OUT_EVENTS}


def _run_of(event_type: str) -> str | None:
    return next((name for name, types in _RUNS.items() if event_type in types), None)


async def fold(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    """Fold a page of history into the scheduler's tables, in order; consecutive client events
    and consecutive opt-out events are written as one set-based step each (as live)."""
    run: list[Envelope] = []
    touched: set[int] = set()
    for env in envelopes:
        kind = _run_of(env.type)
        if run and kind != _run_of(run[0].type):
            await _write_run(conn, run)
            run = []
        if kind is not None:
            run.append(env)
            continue
        event = env.payload()
        if await _fold_one(conn, env, event):
            touched.add(event.mailing_id)  # type: ignore[attr-defined]
    if run:
        await _write_run(conn, run)
    if touched:
        # What the timer's sweep establishes: a stopped mailing with nothing left to settle.
        await conn.execute(
            f"""
            UPDATE scheduler_mailings g SET swept = NOT EXISTS (
                SELECT 1 FROM scheduler_messages m
                WHERE m.mailing_id = g.mailing_id AND m.state = '{_SCHEDULED}')
            WHERE g.mailing_id = ANY($1::bigint[]) AND g.status = ANY($2::text[])
            """,
            sorted(touched),
            _STOPPED,
        )


async def _write_run(conn: Connection, run: list[Envelope]) -> None:
    if _run_of(run[0].type) == "clients":
        await project_clients(conn, run)
    else:
        await project_opt_outs(conn, run)


async def _fold_one(conn: Connection, env: Envelope, event: Event) -> bool:
    """Fold one mailing or message event (False: not one the scheduler's tables hold)."""
    match event:
        case MailingScheduled() | MailingUpdated():
            # The audience resolution it asked for, pending until mailing.audience_resolved.
            with traced(env.correlationid, causation_id=str(env.id)):
                await apply_mailing_state(conn, env, env.time, requested_at=env.time)
        case MailingAudienceResolved():
            await _resolved(conn, event.mailing_id)
        case MailingPaused() | MailingResumed():
            await project_pause(conn, event)
        case MailingCancelled():
            await project_status(conn, event.mailing_id, MailingStatus.CANCELLED)
            await _resolved(conn, event.mailing_id)  # the timer drops it, with no event
        case MailingDeleted():
            await project_status(conn, event.mailing_id, MailingStatus.DELETED)
            await _resolved(conn, event.mailing_id)
            # The timer deletes them with no event (the mailing never started: nothing was
            # sent), whenever its sweep comes round.
            await conn.execute(
                f"DELETE FROM scheduler_messages WHERE mailing_id = $1 AND state = '{_SCHEDULED}'",
                event.mailing_id,
            )
        case MessagesScheduled():
            await _scheduled(conn, event)
        case MessagesRescheduled():
            await _rescheduled(conn, event)
        case MessagesWithdrawn():
            await conn.execute(
                "DELETE FROM scheduler_messages WHERE message_id = ANY($1::bigint[])",
                event.message_ids,
            )
        case MessagesCancelled():
            await _set_state(conn, event.message_ids, _CANCELLED)
        case MessagesRecovered():
            await conn.execute(
                f"UPDATE scheduler_messages SET state = '{_SCHEDULED}', handed_over_at = NULL"
                " WHERE message_id = ANY($1::bigint[])",
                event.message_ids,
            )
        case MessagesDue():
            await conn.execute(
                f"UPDATE scheduler_messages SET state = '{_HANDED_OVER}', handed_over_at = $2"
                " WHERE message_id = ANY($1::bigint[])",
                [m.message_id for m in event.messages],
                _handed_over_at(event, env.time),
            )
        case MessagesDelivered():
            await conn.execute(
                f"""
                UPDATE scheduler_messages m SET state = '{_DELIVERED}', attempts = u.attempt
                FROM unnest($1::bigint[], $2::int[]) AS u(message_id, attempt)
                WHERE m.message_id = u.message_id
                """,
                [m.message_id for m in event.messages],
                [m.attempt for m in event.messages],
            )
        case MessagesUndelivered():
            await conn.execute(
                f"""
                UPDATE scheduler_messages m SET state = '{_UNDELIVERED}', attempts = u.attempts,
                       last_error = u.error
                FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(message_id, attempts, error)
                WHERE m.message_id = u.message_id AND m.state <> '{_DELIVERED}'
                """,
                [m.message_id for m in event.messages],
                [m.attempts for m in event.messages],
                [m.error for m in event.messages],
            )
        case ClientsLeftOut():
            await _left_out(conn, event)
        case _:
            return False
    return True


async def _resolved(conn: Connection, mailing_id: int) -> None:
    await conn.execute("DELETE FROM scheduler_resolutions WHERE mailing_id = $1", mailing_id)


def _handed_over_at(event: MessagesDue, recorded: datetime) -> datetime:
    # Due events recorded before handed_over_at was carried: the hand-over's transaction
    # recorded them, so their record time is the hand-over's, give or take its length.
    return event.handed_over_at or recorded


async def _set_state(conn: Connection, message_ids: list[int], state: str) -> None:
    await conn.execute(
        "UPDATE scheduler_messages SET state = $2 WHERE message_id = ANY($1::bigint[])",
        message_ids,
        state,
    )


async def _scheduled(conn: Connection, event: MessagesScheduled) -> None:
    items = event.messages
    # Events recorded before closes_at was carried: the slot closed at the mailing's end (the
    # value migration scheduler_0002 gave the rows of that time).
    await conn.execute(
        """
        INSERT INTO scheduler_messages (message_id, mailing_id, client_id, due_at, closes_at)
        SELECT u.message_id, $1, u.client_id, u.due_at,
               coalesce(u.closes_at, (SELECT g.datetime_end FROM scheduler_mailings g
                                      WHERE g.mailing_id = $1))
        FROM unnest($2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
             AS u(message_id, client_id, due_at, closes_at)
        ON CONFLICT DO NOTHING
        """,
        event.mailing_id,
        [m.message_id for m in items],
        [m.client_id for m in items],
        [m.due_at for m in items],
        [m.closes_at for m in items],
    )


async def _rescheduled(conn: Connection, event: MessagesRescheduled) -> None:
    """A new slot; for a retry also the message waiting again, with its calls and last error."""
    items = event.messages
    await conn.execute(
        f"""
        UPDATE scheduler_messages m
           SET due_at = u.due_at, closes_at = coalesce(u.closes_at, m.closes_at),
               state = CASE WHEN u.attempts IS NULL THEN m.state ELSE '{_SCHEDULED}' END,
               attempts = coalesce(u.attempts, m.attempts),
               last_error = CASE WHEN u.attempts IS NULL THEN m.last_error ELSE u.error END,
               handed_over_at = CASE WHEN u.attempts IS NULL THEN m.handed_over_at END
        FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::int[], $5::text[])
             AS u(message_id, due_at, closes_at, attempts, error)
        WHERE m.message_id = u.message_id
        """,
        [m.message_id for m in items],
        [m.due_at for m in items],
        [m.closes_at for m in items],
        [m.attempts for m in items],
        [m.last_error for m in items],
    )


async def _left_out(conn: Connection, event: ClientsLeftOut) -> None:
    if event.cleared:
        await conn.execute(
            "DELETE FROM scheduler_left_out WHERE mailing_id = $1 AND client_id = ANY($2)",
            event.mailing_id,
            event.cleared,
        )
    if event.left_out:
        await conn.execute(
            "INSERT INTO scheduler_left_out (mailing_id, client_id, reason)"
            " SELECT $1, unnest($2::bigint[]), $3 ON CONFLICT DO NOTHING",
            event.mailing_id,
            event.left_out,
            event.reason or "",
        )


_TYPES = (
    CLIENT_EVENTS
    | OPT_OUT_EVENTS
    | frozenset(
        e.event_type
        for e in (
            MailingScheduled,
            MailingUpdated,
            MailingAudienceResolved,
            MailingPaused,
            MailingResumed,
            MailingCancelled,
            MailingDeleted,
            MessagesScheduled,
            MessagesRescheduled,
            MessagesWithdrawn,
            MessagesCancelled,
            MessagesRecovered,
            MessagesDue,
            MessagesDelivered,
            MessagesUndelivered,
            ClientsLeftOut,
        )
    )
)

PROJECTION = Projection(
    name=PROJECTION_NAME,
    tables=(
        "scheduler_clients",
        "scheduler_deleted_clients",
        "scheduler_opt_outs",
        "scheduler_mailings",
        "scheduler_messages",
        "scheduler_left_out",
        "scheduler_resolutions",
    ),
    # Live jobs are the queue's own state: kept where the rebuild has none (see above).
    carry=("scheduler_resolutions",),
    fold=fold,
    types=_TYPES,
)
