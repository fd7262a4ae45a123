"""Resolving a mailing's recipients: who gets a message and when, computed per time zone.

Before the start the audience follows the client base: clients who come to match join,
clients who stop matching (or lose every send moment) leave, clients who move get a new due
time. From the start the audience is fixed: only unsent messages of clients who moved are
rescheduled (or cancelled when no send moment is left). ``UNIQUE (mailing_id, client_id)``
makes every statement here safe to repeat after a crash or a redelivered event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time

import asyncpg
import structlog

from scheduler.audience import parse_client_filter
from scheduler.window import send_times_by_zone, send_window
from sms_events.batches import chunks, new_batch_id
from sms_events.contracts import (
    Event,
    MailingAudienceResolved,
    MessagesCancelled,
    MessagesRescheduled,
    MessagesScheduled,
    MessagesWithdrawn,
    ScheduledMessage,
)
from sms_events.db import Connection
from sms_events.store import append_new_streams

__all__ = [
    "MESSAGES_PER_EVENT",
    "Mailing",
    "cancelled_events",
    "load_mailing",
    "load_mailings",
    "resolve",
    "resolve_started",
    "withdrawn_events",
]

log = structlog.get_logger(__name__)

MESSAGES_PER_EVENT = 500

# The recipients among the clients in scope, with their due time (NULL: no send moment).
_TARGET = """
    WITH zones(zone, due) AS (SELECT * FROM unnest($2::text[], $3::timestamptz[])),
    target AS (
        SELECT c.client_id, z.due
        FROM scheduler_clients c JOIN zones z ON z.zone = c.time_zone
        WHERE (cardinality($4::text[]) = 0 OR c.operator_code = ANY($4) OR c.tag = ANY($4))
          AND ($5::bigint[] IS NULL OR c.client_id = ANY($5))
    )
"""


@dataclass(frozen=True, slots=True)
class Mailing:
    mailing_id: int
    text: str
    datetime_start: datetime
    datetime_end: datetime
    window_start: time | None
    window_end: time | None
    client_filter: str | None
    status: str

    def started(self, now: datetime) -> bool:
        return now >= self.datetime_start


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


async def _zone_dues(
    conn: Connection,
    mailing: Mailing,
    items: list[str],
    client_ids: list[int] | None,
    not_before: datetime | None,
) -> tuple[list[str], list[datetime | None]]:
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
    dues = send_times_by_zone(
        mailing.datetime_start,
        mailing.datetime_end,
        send_window(mailing.window_start, mailing.window_end),
        zones,
        not_before=not_before,
    )
    return zones, [dues[z] for z in zones]


async def resolve(
    conn: Connection,
    mailing: Mailing,
    *,
    client_ids: list[int] | None = None,
    follow_base: bool = True,
) -> list[Event]:
    """Bring the mailing's messages for ``client_ids`` (None: every client) in line with the
    base, and append the events saying what changed. With ``follow_base`` (before the start)
    leavers are withdrawn and movers rescheduled; without it only missing recipients are added
    (the first resolution of a mailing created after its start)."""
    items = sorted(parse_client_filter(mailing.client_filter))
    zones, dues = await _zone_dues(conn, mailing, items, client_ids, None)
    args = (mailing.mailing_id, zones, dues, items, client_ids)
    events: list[Event] = []
    added = await conn.fetch(
        _TARGET
        + """
        INSERT INTO scheduler_messages (mailing_id, client_id, due_at)
        SELECT $1, client_id, due FROM target WHERE due IS NOT NULL ORDER BY client_id
        ON CONFLICT (mailing_id, client_id) DO NOTHING
        RETURNING message_id, client_id, due_at
        """,
        *args,
    )
    events += _scheduled_events(MessagesScheduled, mailing.mailing_id, added)
    moved: list[asyncpg.Record] = []
    left: list[asyncpg.Record] = []
    if follow_base:
        moved = await conn.fetch(
            _TARGET
            + """
            UPDATE scheduler_messages m SET due_at = t.due, updated_at = now()
            FROM target t
            WHERE m.mailing_id = $1 AND m.client_id = t.client_id AND m.state = 'scheduled'
              AND t.due IS NOT NULL AND m.due_at <> t.due
            RETURNING m.message_id, m.client_id, m.due_at
            """,
            *args,
        )
        events += _scheduled_events(MessagesRescheduled, mailing.mailing_id, moved)
        left = await conn.fetch(
            _TARGET
            + """
            DELETE FROM scheduler_messages m
            WHERE m.mailing_id = $1 AND m.state = 'scheduled'
              AND ($5::bigint[] IS NULL OR m.client_id = ANY($5))
              AND NOT EXISTS (
                  SELECT 1 FROM target t WHERE t.client_id = m.client_id AND t.due IS NOT NULL)
            RETURNING m.message_id
            """,
            *args,
        )
        events += withdrawn_events(mailing.mailing_id, [r["message_id"] for r in left])
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
                resolved_at=datetime.now(UTC),
            )
        )
    await append_new_streams(conn, events)
    return events


async def resolve_started(
    conn: Connection, mailing: Mailing, client_ids: list[int], now: datetime
) -> list[Event]:
    """After the start: unsent messages of clients who moved zone get a new due time from
    ``now`` on, or are cancelled when their new zone leaves no send moment."""
    zones_rows = await conn.fetch(
        "SELECT DISTINCT c.time_zone FROM scheduler_clients c JOIN scheduler_messages m"
        " USING (client_id) WHERE m.mailing_id = $1 AND m.state = 'scheduled'"
        " AND c.client_id = ANY($2)",
        mailing.mailing_id,
        client_ids,
    )
    zones = [r["time_zone"] for r in zones_rows]
    if not zones:
        return []
    by_zone = send_times_by_zone(
        mailing.datetime_start,
        mailing.datetime_end,
        send_window(mailing.window_start, mailing.window_end),
        zones,
        not_before=now,
    )
    rows = await conn.fetch(
        """
        WITH zones(zone, due) AS (SELECT * FROM unnest($2::text[], $3::timestamptz[]))
        UPDATE scheduler_messages m
           SET due_at = coalesce(z.due, m.due_at),
               state = CASE WHEN z.due IS NULL THEN 'cancelled' ELSE 'scheduled' END,
               updated_at = now()
        FROM scheduler_clients c JOIN zones z ON z.zone = c.time_zone
        WHERE m.mailing_id = $1 AND m.state = 'scheduled' AND m.client_id = c.client_id
          AND c.client_id = ANY($4) AND (z.due IS NULL OR m.due_at <> z.due)
        RETURNING m.message_id, m.client_id, m.due_at, m.state
        """,
        mailing.mailing_id,
        zones,
        [by_zone[z] for z in zones],
        client_ids,
    )
    moved = [r for r in rows if r["state"] == "scheduled"]
    gone = [r["message_id"] for r in rows if r["state"] == "cancelled"]
    _log_changes(mailing.mailing_id, [], moved, [], cancelled=len(gone))
    events: list[Event] = list(_scheduled_events(MessagesRescheduled, mailing.mailing_id, moved))
    events += cancelled_events(mailing.mailing_id, gone, "no send time left before the end")
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


def _scheduled_events(
    kind: type[MessagesScheduled] | type[MessagesRescheduled],
    mailing_id: int,
    rows: list[asyncpg.Record],
) -> list[Event]:
    return [
        kind(
            mailing_id=mailing_id,
            batch_id=new_batch_id(),
            messages=[
                ScheduledMessage(
                    message_id=r["message_id"], client_id=r["client_id"], due_at=r["due_at"]
                )
                for r in part
            ],
        )
        for part in chunks(rows, MESSAGES_PER_EVENT)
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
