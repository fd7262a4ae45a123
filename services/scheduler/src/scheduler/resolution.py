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
from datetime import datetime

import asyncpg
import structlog

from scheduler.audience import parse_client_filter
from scheduler.domain import NO_SEND_MOMENT, Mailing, MessageState, Unsent, settled_state
from sms_events.batches import chunks, new_batch_id
from sms_events.contracts import (
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

__all__ = [
    "MESSAGES_PER_EVENT",
    "cancelled_events",
    "load_mailing",
    "load_mailings",
    "message_events",
    "resolve",
    "resolve_started",
    "retime_started",
    "scheduled_events",
    "settled_events",
    "withdrawn_events",
]

log = structlog.get_logger(__name__)

MESSAGES_PER_EVENT = 500

_SCHEDULED = MessageState.SCHEDULED.value

# The recipients among the clients in scope, with their send slot (NULL: no send moment).
_TARGET = """
    WITH zones(zone, due, closes) AS (
        SELECT * FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[])),
    target AS (
        SELECT c.client_id, z.due, z.closes
        FROM scheduler_clients c JOIN zones z ON z.zone = c.time_zone
        WHERE (cardinality($5::text[]) = 0 OR c.operator_code = ANY($5) OR c.tag = ANY($5))
          AND ($6::bigint[] IS NULL OR c.client_id = ANY($6))
    )
"""

_MAILING_COLUMNS = (
    "g.mailing_id, g.text, g.datetime_start, g.datetime_end, g.window_start, g.window_end,"
    " g.client_filter, g.status"
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
    conn: Connection,
    mailing: Mailing,
    items: list[str],
    client_ids: list[int] | None,
    now: datetime,
) -> _Slots:
    zones = [
        r["time_zone"]
        for r in await conn.fetch(
            "SELECT DISTINCT time_zone FROM scheduler_clients c"
            " WHERE (cardinality($1::text[]) = 0 OR c.operator_code = ANY($1) OR c.tag = ANY($1))"
            "   AND ($2::bigint[] IS NULL OR c.client_id = ANY($2))",
            items,
            client_ids,
        )
    ]
    return _slot_columns(mailing, zones, now)


async def resolve(
    conn: Connection,
    mailing: Mailing,
    now: datetime,
    *,
    client_ids: list[int] | None = None,
    follow_base: bool = True,
) -> list[Event]:
    """Bring the mailing's messages for ``client_ids`` (None: every client) in line with the
    base, and append the events saying what changed. Slots are computed from ``now``: a message
    is never due in a window that has already passed. With ``follow_base`` (before the start)
    leavers are withdrawn and movers rescheduled; without it only missing recipients are added
    (the first resolution of a mailing created after its start)."""
    items = sorted(parse_client_filter(mailing.client_filter))
    zones, opens, closes = await _zone_slots(conn, mailing, items, client_ids, now)
    args = (mailing.mailing_id, zones, opens, closes, items, client_ids)
    events: list[Event] = []
    added = await conn.fetch(
        _TARGET
        + """
        INSERT INTO scheduler_messages (mailing_id, client_id, due_at, closes_at)
        SELECT $1, client_id, due, closes FROM target WHERE due IS NOT NULL ORDER BY client_id
        ON CONFLICT (mailing_id, client_id) DO NOTHING
        RETURNING message_id, client_id, due_at, closes_at
        """,
        *args,
    )
    events += scheduled_events(MessagesScheduled, mailing.mailing_id, added)
    moved: list[asyncpg.Record] = []
    left: list[asyncpg.Record] = []
    if follow_base:
        moved = await conn.fetch(
            _TARGET
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
            _TARGET
            + f"""
            DELETE FROM scheduler_messages m
            WHERE m.mailing_id = $1 AND m.state = '{_SCHEDULED}'
              AND ($6::bigint[] IS NULL OR m.client_id = ANY($6))
              AND NOT EXISTS (
                  SELECT 1 FROM target t WHERE t.client_id = m.client_id AND t.due IS NOT NULL)
            RETURNING m.message_id
            """,
            *args,
        )
        events += withdrawn_events(mailing.mailing_id, [r["message_id"] for r in left])
    await _remember_left_out(conn, args)
    _log_changes(mailing.mailing_id, added, moved, left)
    if client_ids is None:
        recipients = await conn.fetchval(
            "SELECT count(*) FROM scheduler_messages WHERE mailing_id = $1", mailing.mailing_id
        )
        events.append(
            MailingAudienceResolved(
                mailing_id=mailing.mailing_id,
                batch_id=new_batch_id(),
                recipients=recipients,
                resolved_at=now,
            )
        )
    await append_new_streams(conn, events)
    return events


async def _remember_left_out(conn: Connection, args: tuple[object, ...]) -> None:
    """Who matches but has no send moment before the end is kept, with why, so that a later
    ``datetime_end`` can bring them in; whoever has a message or no longer matches is not."""
    await conn.execute(
        _TARGET
        + """
        , dropped AS (
            DELETE FROM scheduler_left_out o
            WHERE o.mailing_id = $1 AND ($6::bigint[] IS NULL OR o.client_id = ANY($6))
              AND NOT EXISTS (
                  SELECT 1 FROM target t WHERE t.client_id = o.client_id AND t.due IS NULL)
        )
        INSERT INTO scheduler_left_out (mailing_id, client_id, reason)
        SELECT $1, t.client_id, $7 FROM target t
        WHERE t.due IS NULL
          AND NOT EXISTS (SELECT 1 FROM scheduler_messages m
                          WHERE m.mailing_id = $1 AND m.client_id = t.client_id)
        ON CONFLICT (mailing_id, client_id) DO NOTHING
        """,
        *args,
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


async def retime_started(conn: Connection, mailing: Mailing, now: datetime) -> list[Event]:
    """A started mailing's end moved: every unsent message gets its slot again from ``now``,
    and clients of the fixed audience who were left out for want of a send moment before the
    old end get a message if the new end leaves them one."""
    zones_rows = await conn.fetch(
        "SELECT DISTINCT c.time_zone FROM scheduler_clients c"
        " WHERE c.client_id IN ("
        f"   SELECT m.client_id FROM scheduler_messages m"
        f"   WHERE m.mailing_id = $1 AND m.state = '{_SCHEDULED}'"
        "   UNION SELECT o.client_id FROM scheduler_left_out o WHERE o.mailing_id = $1)",
        mailing.mailing_id,
    )
    zones = [r["time_zone"] for r in zones_rows]
    events = await _retime(conn, mailing, zones, None, now)
    zones, opens, closes = _slot_columns(mailing, zones, now)
    added = await conn.fetch(
        """
        WITH zones(zone, due, closes) AS (
            SELECT * FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[])),
        joining AS (
            DELETE FROM scheduler_left_out o USING scheduler_clients c, zones z
            WHERE o.mailing_id = $1 AND c.client_id = o.client_id AND z.zone = c.time_zone
              AND z.due IS NOT NULL
            RETURNING o.client_id, z.due, z.closes
        )
        INSERT INTO scheduler_messages (mailing_id, client_id, due_at, closes_at)
        SELECT $1, client_id, due, closes FROM joining ORDER BY client_id
        ON CONFLICT (mailing_id, client_id) DO NOTHING
        RETURNING message_id, client_id, due_at, closes_at
        """,
        mailing.mailing_id,
        zones,
        opens,
        closes,
    )
    _log_changes(mailing.mailing_id, added, [], [])
    scheduled = scheduled_events(MessagesScheduled, mailing.mailing_id, added)
    await append_new_streams(conn, scheduled)
    return events + scheduled


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
    """Batch events for rows of ``scheduler_messages`` that got a slot."""
    messages = [
        ScheduledMessage(
            message_id=r["message_id"],
            client_id=r["client_id"],
            due_at=r["due_at"],
            closes_at=r["closes_at"],
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
