"""Resolving a mailing's recipients: who gets a message and when, computed per time zone.

Before the start the audience follows the client base: clients who come to match join,
clients who stop matching (or lose every send moment) leave, clients who move get a new slot.
From the start the audience is fixed: only unsent messages of clients who moved, or of a
mailing whose end moved, get a new slot (or are settled when no send moment is left).
Slots are always computed from now, so no message is due in a window that has passed.
``UNIQUE (mailing_id, client_id)`` makes every statement here safe to repeat after a crash or
a redelivered event.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from scheduler.domain import (
    NO_SEND_MOMENT,
    Mailing,
    MailingStatus,
    MessageState,
    ResolutionMode,
    Unsent,
    settled_state,
)
from sms_events.audience import matches_sql, parse_client_filter
from sms_events.batches import chunks, new_batch_id
from sms_events.contracts import (
    SCHEDULED_CLIENT_FIELDS,
    ClientsLeftOut,
    Event,
    MailingAudienceResolved,
    MessagesCancelled,
    MessagesRescheduled,
    MessagesScheduled,
    MessagesUndelivered,
    MessagesWithdrawn,
    ScheduledMessage,
    UndeliveredMessage,
)
from sms_events.db import Connection
from sms_events.store import append_new_streams
from sms_events.tracing import current_metadata, traced

__all__ = [
    "MESSAGES_PER_EVENT",
    "Scope",
    "cancelled_events",
    "follow_clients",
    "leave_audiences",
    "left_out_events",
    "load_mailing",
    "load_mailings",
    "message_events",
    "not_opted_out",
    "request_resolution",
    "resolve",
    "resolve_next_chunk",
    "resolve_started",
    "scheduled_events",
    "settled_events",
    "withdrawn_events",
]

log = structlog.get_logger(__name__)

MESSAGES_PER_EVENT = 500

_SCHEDULED = MessageState.SCHEDULED.value
_RUNNING = [MailingStatus.ACTIVE.value, MailingStatus.PAUSED.value]  # may still send


_FIRST_ID, _LAST_ID = -(2**63), 2**63 - 1


def _in_scope(alias: str, n: int, by_ids: bool) -> str:
    """SQL: the row's client is in the step's scope, given as parameters $n..$n+3 (a list of
    ids, an exclusive lower and an inclusive upper id bound, and whether only clients left out
    of the audience count; $1 is always the mailing). Written without ``$x IS NULL OR ...``,
    which would keep the planner from the client_id indexes: a chunk reads its range from the
    index, a run of client events its ids, never the whole table."""
    ids, after, up_to, left_out_only = (f"${i}" for i in range(n, n + 4))
    chosen = (
        f"{alias}.client_id = ANY({ids}::bigint[])"
        if by_ids
        else f"cardinality({ids}::bigint[]) = 0"
    )
    return (
        f"{chosen} AND {alias}.client_id > {after}::bigint"
        f" AND {alias}.client_id <= {up_to}::bigint"
        f" AND (NOT {left_out_only}::bool OR EXISTS (SELECT 1 FROM scheduler_left_out lo"
        f"      WHERE lo.mailing_id = $1 AND lo.client_id = {alias}.client_id))"
    )


def _matches(n: int) -> str:
    """SQL: client ``c`` matches the filter items in $n (``audience.matches_filter``)."""
    return matches_sql(n, "c")


def _from_source(n: int) -> str:
    """SQL: client ``c`` is in a follow-up's audience: a recipient of the mailing $n whose
    message is in one of the states $n+1 (always true when $n is NULL: not a follow-up). One
    probe of ``UNIQUE (mailing_id, client_id)`` per client of the chunk."""
    return (
        f"(${n}::bigint IS NULL OR EXISTS (SELECT 1 FROM scheduler_messages s"
        f" WHERE s.mailing_id = ${n} AND s.client_id = c.client_id"
        f" AND s.state = ANY(${n + 1}::text[])))"
    )


def not_opted_out(alias: str) -> str:
    """SQL: client ``alias``'s phone is not on the suppression list (a primary-key probe)."""
    return (
        "NOT EXISTS (SELECT 1 FROM scheduler_opt_outs o"
        f" WHERE o.phone = {alias}.phone AND o.opted_out)"
    )


def _target(by_ids: bool) -> str:
    """The recipients among the clients in scope, with their send slot (NULL: no send
    moment); a phone on the suppression list is never one. $1 mailing, $2-$4 zones and their
    slots, $5 filter items, $6-$9 scope, $10-$11 a follow-up's source mailing and states."""
    return f"""
    WITH zones(zone, due, closes) AS (
        SELECT * FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[])),
    target AS (
        SELECT c.client_id, z.due, z.closes
        FROM scheduler_clients c JOIN zones z ON z.zone = c.time_zone
        WHERE {_matches(5)} AND {_in_scope("c", 6, by_ids)} AND {_from_source(10)}
          AND {not_opted_out("c")}
    )
"""


@dataclass(frozen=True, slots=True)
class Scope:
    """The clients one resolution step looks at: a list of ids, a range of ids, or both."""

    client_ids: list[int] | None = None
    after: int | None = None
    up_to: int | None = None
    left_out_only: bool = False

    @property
    def by_ids(self) -> bool:
        return self.client_ids is not None

    def args(self) -> tuple[object, ...]:
        return (
            self.client_ids or [],
            _FIRST_ID if self.after is None else self.after,
            _LAST_ID if self.up_to is None else self.up_to,
            self.left_out_only,
        )


_MAILING_COLUMNS = (
    "g.mailing_id, g.text, g.datetime_start, g.datetime_end, g.window_start, g.window_end,"
    " g.client_filter, g.status, g.source_mailing_id, g.source_states"
)


async def load_mailing(conn: Connection, mailing_id: int) -> Mailing | None:
    row = await conn.fetchrow(
        f"SELECT {_MAILING_COLUMNS} FROM scheduler_mailings g WHERE g.mailing_id = $1",
        mailing_id,
    )
    return Mailing(**dict(row)) if row else None


async def load_mailings(conn: Connection, where: str, *args: object) -> list[Mailing]:
    """Every mailing matching ``where`` (SQL over ``scheduler_mailings g``), in one query."""
    rows = await conn.fetch(
        f"SELECT {_MAILING_COLUMNS} FROM scheduler_mailings g WHERE {where}", *args
    )
    return [Mailing(**dict(r)) for r in rows]


_Slots = tuple[list[str], list[datetime | None], list[datetime | None]]


def _slot_columns(mailing: Mailing, zones: list[str], now: datetime) -> _Slots:
    slots = mailing.slots(zones, now)
    opens = [s.opens if (s := slots[z]) else None for z in zones]
    closes = [s.closes if (s := slots[z]) else None for z in zones]
    return zones, opens, closes


async def _zone_slots(
    conn: Connection, mailing: Mailing, items: list[str], scope: Scope, now: datetime
) -> _Slots:
    zones = [
        r["time_zone"]
        for r in await conn.fetch(
            "SELECT DISTINCT c.time_zone FROM scheduler_clients c"
            f" WHERE {_matches(2)} AND {_in_scope('c', 3, scope.by_ids)}",
            mailing.mailing_id,
            items,
            *scope.args(),
        )
    ]
    return _slot_columns(mailing, zones, now)


async def resolve(
    conn: Connection,
    mailing: Mailing,
    now: datetime,
    *,
    scope: Scope | None = None,
    follow_base: bool = True,
) -> list[Event]:
    """Bring the mailing's messages for the clients in ``scope`` (default: every client) in
    line with the base, and append the events saying what changed. Slots are computed from
    ``now``: a message is never due in a window that has already passed. With ``follow_base``
    (before the start) leavers are withdrawn and movers rescheduled; without it only missing
    recipients are added. A whole audience is resolved chunk by chunk (``resolve_next_chunk``),
    so this runs on a bounded scope except for small mailings in tests."""
    scope = scope or Scope()
    items = sorted(parse_client_filter(mailing.client_filter))
    zones, opens, closes = await _zone_slots(conn, mailing, items, scope, now)
    args = (
        mailing.mailing_id,
        zones,
        opens,
        closes,
        items,
        *scope.args(),
        mailing.source_mailing_id,
        mailing.source_states,
    )
    target = _target(scope.by_ids)
    events: list[Event] = []
    added = await conn.fetch(
        target
        + """
        , added AS (
            INSERT INTO scheduler_messages (mailing_id, client_id, due_at, closes_at)
            SELECT $1, client_id, due, closes FROM target WHERE due IS NOT NULL
            ORDER BY client_id
            ON CONFLICT (mailing_id, client_id) DO NOTHING
            RETURNING message_id, client_id, due_at, closes_at)
        -- The client's values as the message is scheduled (the statistics by dimension).
        SELECT a.*, c.operator_code, c.tag, c.time_zone
          FROM added a JOIN scheduler_clients c USING (client_id) ORDER BY a.client_id
        """,
        *args,
    )
    events += scheduled_events(MessagesScheduled, mailing.mailing_id, added)
    moved: list[asyncpg.Record] = []
    left: list[asyncpg.Record] = []
    if follow_base:
        moved = await conn.fetch(
            target
            + f"""
            UPDATE scheduler_messages m SET due_at = t.due, closes_at = t.closes,
                   updated_at = now()
            FROM target t
            WHERE m.mailing_id = $1 AND m.client_id = t.client_id AND m.state = '{_SCHEDULED}'
              AND t.due IS NOT NULL AND (m.due_at <> t.due OR m.closes_at <> t.closes)
            RETURNING m.message_id, m.client_id, m.due_at, m.closes_at
            """,
            *args,
        )
        events += scheduled_events(MessagesRescheduled, mailing.mailing_id, moved)
        left = await conn.fetch(
            target
            + f"""
            DELETE FROM scheduler_messages m
            WHERE m.mailing_id = $1 AND m.state = '{_SCHEDULED}'
              AND {_in_scope("m", 6, scope.by_ids)}
              AND NOT EXISTS (
                  SELECT 1 FROM target t WHERE t.client_id = m.client_id AND t.due IS NOT NULL)
            RETURNING m.message_id
            """,
            *args,
        )
        events += withdrawn_events(mailing.mailing_id, [r["message_id"] for r in left])
    events += await _remember_left_out(conn, mailing.mailing_id, args, scope.by_ids)
    _log_changes(mailing.mailing_id, added, moved, left)
    await append_new_streams(conn, events)
    return events


async def _remember_left_out(
    conn: Connection, mailing_id: int, args: tuple[object, ...], by_ids: bool
) -> list[Event]:
    """Who matches but has no send moment before the end is kept, with why, so that a later
    ``datetime_end`` can bring them in; whoever has a message or no longer matches is not.
    Returns the events saying who came and went."""
    rows = await conn.fetch(
        _target(by_ids)
        + f"""
        , dropped AS (
            DELETE FROM scheduler_left_out o
            WHERE o.mailing_id = $1 AND {_in_scope("o", 6, by_ids)}
              AND NOT EXISTS (
                  SELECT 1 FROM target t WHERE t.client_id = o.client_id AND t.due IS NULL)
            RETURNING o.client_id
        ), added AS (
            INSERT INTO scheduler_left_out (mailing_id, client_id, reason)
            SELECT $1, t.client_id, $12 FROM target t
            WHERE t.due IS NULL
              AND NOT EXISTS (SELECT 1 FROM scheduler_messages m
                              WHERE m.mailing_id = $1 AND m.client_id = t.client_id)
            ON CONFLICT (mailing_id, client_id) DO NOTHING
            RETURNING client_id
        )
        SELECT client_id, false AS added FROM dropped
        UNION ALL SELECT client_id, true FROM added
        ORDER BY 1
        """,
        *args,
        NO_SEND_MOMENT,
    )
    return left_out_events(
        mailing_id,
        [r["client_id"] for r in rows if r["added"]],
        [r["client_id"] for r in rows if not r["added"]],
        NO_SEND_MOMENT,
    )


async def resolve_started(
    conn: Connection, mailing: Mailing, client_ids: list[int], now: datetime
) -> list[Event]:
    """After the start: unsent messages of clients who moved zone get a new slot from ``now``
    on, or are cancelled when their new zone leaves no send moment."""
    zones_rows = await conn.fetch(
        "SELECT DISTINCT c.time_zone FROM scheduler_clients c JOIN scheduler_messages m"
        f" USING (client_id) WHERE m.mailing_id = $1 AND m.state = '{_SCHEDULED}'"
        " AND c.client_id = ANY($2)",
        mailing.mailing_id,
        client_ids,
    )
    return await _retime(conn, mailing, [r["time_zone"] for r in zones_rows], client_ids, now)


async def follow_clients(conn: Connection, client_ids: list[int], now: datetime) -> None:
    """Clients changed (or came back from the suppression list): mailings not started yet
    follow the base; started ones reschedule clients who moved."""
    for mailing in await load_mailings(
        conn, "g.status = ANY($1::text[]) AND g.datetime_start > $2", _RUNNING, now
    ):
        await resolve(conn, mailing, now, scope=Scope(client_ids=client_ids))
    for mailing in await load_mailings(
        conn,
        "g.datetime_start <= $2 AND g.mailing_id IN (SELECT m.mailing_id FROM scheduler_messages m"
        " WHERE m.client_id = ANY($1) AND m.state = $3)",
        client_ids,
        now,
        _SCHEDULED,
    ):
        await resolve_started(conn, mailing, client_ids, now)


async def leave_audiences(
    conn: Connection, client_ids: list[int], now: datetime, reason: str
) -> None:
    """Clients deleted or opted out: in a mailing not started yet they simply leave the
    audience (messages withdrawn); in a started one their unsent messages are cancelled with
    ``reason`` (they were part of the fixed audience and stay counted). Messages with the
    dispatcher are refused there and cancelled when handed back."""
    left = await conn.fetch(
        """
        DELETE FROM scheduler_messages m USING scheduler_mailings g
        WHERE m.mailing_id = g.mailing_id AND m.client_id = ANY($1) AND m.state = $3
          AND g.datetime_start > $2
        RETURNING m.mailing_id, m.message_id
        """,
        client_ids,
        now,
        _SCHEDULED,
    )
    gone = await conn.fetch(
        """
        UPDATE scheduler_messages SET state = $3, updated_at = now()
        WHERE client_id = ANY($1) AND state = $2
        RETURNING mailing_id, message_id
        """,
        client_ids,
        _SCHEDULED,
        MessageState.CANCELLED.value,
    )
    cleared: dict[int, list[int]] = defaultdict(list)
    for r in await conn.fetch(
        "DELETE FROM scheduler_left_out WHERE client_id = ANY($1) RETURNING mailing_id, client_id",
        client_ids,
    ):
        cleared[r["mailing_id"]].append(r["client_id"])
    events: list[Event] = []
    for mailing_id, ids in cleared.items():
        events += left_out_events(mailing_id, [], sorted(ids), None)
    for mailing_id, ids in _by_mailing(left).items():
        events += withdrawn_events(mailing_id, ids)
    for mailing_id, ids in _by_mailing(gone).items():
        events += cancelled_events(mailing_id, ids, reason)
    await append_new_streams(conn, events)


def _by_mailing(rows: list[asyncpg.Record]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = defaultdict(list)
    for r in rows:
        grouped[r["mailing_id"]].append(r["message_id"])
    return grouped


async def request_resolution(
    conn: Connection,
    mailing_id: int,
    mode: ResolutionMode,
    *,
    requested_at: datetime | None = None,
) -> None:
    """Ask for the mailing's audience to be resolved (``resolve_next_chunk`` does it). One
    asked for while another is under way restarts from the first client in the wider mode:
    every chunk is safe to repeat. Jobs are taken oldest ``requested_at`` first (default:
    the transaction's time)."""
    current = await conn.fetchval(
        "SELECT mode FROM scheduler_resolutions WHERE mailing_id = $1 FOR UPDATE", mailing_id
    )
    if current is not None:
        mode = mode.widest(ResolutionMode(current))
    trace = current_metadata()
    await conn.execute(
        """
        INSERT INTO scheduler_resolutions AS r
            (mailing_id, mode, correlation_id, causation_id, requested_at)
        VALUES ($1, $2, $3, $4, coalesce($5, now()))
        ON CONFLICT (mailing_id) DO UPDATE
           SET mode = excluded.mode, after_client = NULL, requested_at = excluded.requested_at,
               correlation_id = excluded.correlation_id, causation_id = excluded.causation_id
        """,
        mailing_id,
        mode.value,
        trace.get("correlation_id"),
        trace.get("causation_id"),
        requested_at,
    )


async def resolve_next_chunk(conn: Connection, now: datetime, *, chunk: int) -> bool:
    """Resolve the next ``chunk`` clients (by id) of the oldest resolution asked for, and move
    its cursor on, in the caller's transaction; at the last chunk append
    ``mailing.audience_resolved`` and drop the request. False when nothing was asked for.

    Each chunk commits on its own, so no transaction grows with the base, other mailings keep
    flowing in between, and a scheduler killed midway resumes at the cursor (the chunk it was
    in is done again; ``UNIQUE (mailing_id, client_id)`` keeps one message per recipient)."""
    job = await conn.fetchrow(
        "SELECT mailing_id, mode, after_client, correlation_id, causation_id"
        " FROM scheduler_resolutions ORDER BY requested_at LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    if job is None:
        return False
    with traced(job["correlation_id"], causation_id=job["causation_id"]):
        await _resolve_chunk(conn, job, now, chunk)
    return True


async def _resolve_chunk(conn: Connection, job: asyncpg.Record, now: datetime, chunk: int) -> None:
    mailing_id, after = job["mailing_id"], job["after_client"]
    mailing = await load_mailing(conn, mailing_id)
    if mailing is None or mailing.stopped:
        await conn.execute("DELETE FROM scheduler_resolutions WHERE mailing_id = $1", mailing_id)
        return
    up_to = await conn.fetchval(
        "SELECT client_id FROM scheduler_clients WHERE ($1::bigint IS NULL OR client_id > $1)"
        " ORDER BY client_id OFFSET $2 LIMIT 1",
        after,
        chunk - 1,
    )
    mode = ResolutionMode(job["mode"])
    scope = Scope(after=after, up_to=up_to, left_out_only=mode is ResolutionMode.LEFT_OUT)
    await resolve(conn, mailing, now, scope=scope, follow_base=mode is ResolutionMode.FOLLOW_BASE)
    if up_to is not None:
        await conn.execute(
            "UPDATE scheduler_resolutions SET after_client = $2 WHERE mailing_id = $1",
            mailing_id,
            up_to,
        )
        return
    recipients = await conn.fetchval(
        "SELECT count(*) FROM scheduler_messages WHERE mailing_id = $1", mailing_id
    )
    event = MailingAudienceResolved(
        mailing_id=mailing_id, batch_id=new_batch_id(), recipients=recipients, resolved_at=now
    )
    await append_new_streams(conn, [event])
    await conn.execute("DELETE FROM scheduler_resolutions WHERE mailing_id = $1", mailing_id)
    log.info("audience_resolved", mailing_id=mailing_id, recipients=recipients, mode=mode.value)


async def _retime(
    conn: Connection,
    mailing: Mailing,
    zones: list[str],
    client_ids: list[int] | None,
    now: datetime,
) -> list[Event]:
    """New slots from ``now`` for the unsent messages of clients in ``zones`` (only
    ``client_ids`` when given); a message whose zone has no send moment left is settled."""
    if not zones:
        return []
    zones, opens, closes = _slot_columns(mailing, zones, now)
    rows = await conn.fetch(
        f"""
        WITH zones(zone, due, closes) AS (
            SELECT * FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]))
        UPDATE scheduler_messages m
           SET due_at = coalesce(z.due, m.due_at), closes_at = coalesce(z.closes, m.closes_at),
               state = CASE WHEN z.due IS NULL
                            THEN CASE WHEN m.attempts > 0 THEN $6 ELSE $7 END
                            ELSE m.state END,
               updated_at = now()
        FROM scheduler_clients c JOIN zones z ON z.zone = c.time_zone
        WHERE m.mailing_id = $1 AND m.state = '{_SCHEDULED}' AND m.client_id = c.client_id
          AND ($5::bigint[] IS NULL OR c.client_id = ANY($5))
          AND (z.due IS NULL OR m.due_at <> z.due OR m.closes_at <> z.closes)
        RETURNING m.message_id, m.client_id, m.due_at, m.closes_at, m.state, m.attempts,
                  coalesce(m.last_error, '') AS last_error
        """,
        mailing.mailing_id,
        zones,
        opens,
        closes,
        client_ids,
        settled_state(1).value,
        settled_state(0).value,
    )
    moved = [r for r in rows if r["state"] == _SCHEDULED]
    gone = [r for r in rows if r["state"] != _SCHEDULED]
    _log_changes(mailing.mailing_id, [], moved, [], cancelled=len(gone))
    events: list[Event] = list(scheduled_events(MessagesRescheduled, mailing.mailing_id, moved))
    events += settled_events(
        mailing.mailing_id,
        [Unsent(r["message_id"], r["attempts"], r["last_error"] or NO_SEND_MOMENT) for r in gone],
        now,
    )
    await append_new_streams(conn, events)
    return events


def withdrawn_events(mailing_id: int, message_ids: list[int]) -> list[Event]:
    return [
        MessagesWithdrawn(mailing_id=mailing_id, batch_id=new_batch_id(), message_ids=list(part))
        for part in chunks(message_ids, MESSAGES_PER_EVENT)
    ]


def left_out_events(
    mailing_id: int, left_out: list[int], cleared: list[int], reason: str | None
) -> list[Event]:
    """Clients of the audience left out for want of a send moment, and clients no longer left
    out, in bounded batches."""
    return [
        *(
            ClientsLeftOut(
                mailing_id=mailing_id, batch_id=new_batch_id(), left_out=list(p), reason=reason
            )
            for p in chunks(left_out, MESSAGES_PER_EVENT)
        ),
        *(
            ClientsLeftOut(mailing_id=mailing_id, batch_id=new_batch_id(), cleared=list(p))
            for p in chunks(cleared, MESSAGES_PER_EVENT)
        ),
    ]


def cancelled_events(mailing_id: int, message_ids: list[int], reason: str) -> list[Event]:
    return [
        MessagesCancelled(
            mailing_id=mailing_id, batch_id=new_batch_id(), message_ids=list(part), reason=reason
        )
        for part in chunks(message_ids, MESSAGES_PER_EVENT)
    ]


def settled_events(mailing_id: int, unsent: Sequence[Unsent], now: datetime) -> list[Event]:
    """What the settling of messages with no send moment left says: ND with the last error for
    those the provider was tried for, CA for the others."""
    tried = [u for u in unsent if settled_state(u.attempts) is MessageState.UNDELIVERED]
    events: list[Event] = [
        MessagesUndelivered(
            mailing_id=mailing_id,
            batch_id=new_batch_id(),
            messages=[
                UndeliveredMessage(
                    message_id=u.message_id, attempts=u.attempts, error=u.error, failed_at=now
                )
                for u in part
            ],
        )
        for part in chunks(tried, MESSAGES_PER_EVENT)
    ]
    by_reason: dict[str, list[int]] = defaultdict(list)
    for u in unsent:
        if u.attempts == 0:
            by_reason[u.error or NO_SEND_MOMENT].append(u.message_id)
    for reason, ids in by_reason.items():
        events += cancelled_events(mailing_id, ids, reason)
    return events


def scheduled_events(
    kind: type[MessagesScheduled] | type[MessagesRescheduled],
    mailing_id: int,
    rows: Sequence[asyncpg.Record],
) -> list[Event]:
    """Batch events for rows of ``scheduler_messages`` that got a slot (with the client's
    values when the rows carry them: new messages)."""
    messages = [
        ScheduledMessage(
            message_id=r["message_id"],
            client_id=r["client_id"],
            due_at=r["due_at"],
            closes_at=r["closes_at"],
            **{k: r[k] for k in SCHEDULED_CLIENT_FIELDS if k in r},
        )
        for r in rows
    ]
    return message_events(kind, mailing_id, messages)


def message_events(
    kind: type[MessagesScheduled] | type[MessagesRescheduled],
    mailing_id: int,
    messages: Sequence[ScheduledMessage],
) -> list[Event]:
    return [
        kind(mailing_id=mailing_id, batch_id=new_batch_id(), messages=list(part))
        for part in chunks(messages, MESSAGES_PER_EVENT)
    ]


def _log_changes(
    mailing_id: int,
    added: list[asyncpg.Record],
    moved: list[asyncpg.Record],
    left: list[asyncpg.Record],
    *,
    cancelled: int = 0,
) -> None:
    """One INFO line per mailing and step; a DEBUG line per message only when DEBUG is on."""
    if not (added or moved or left or cancelled):
        return
    log.info(
        "audience_changed",
        mailing_id=mailing_id,
        scheduled=len(added),
        rescheduled=len(moved),
        withdrawn=len(left),
        cancelled=cancelled,
    )
    if log.is_enabled_for(logging.DEBUG):
        for r in (*added, *moved):
            log.debug(
                "message_scheduled",
                message_id=r["message_id"],
                mailing_id=mailing_id,
                attempt=1,
                due_at=r["due_at"].isoformat(),
            )
