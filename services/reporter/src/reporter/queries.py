"""Reads for the gateway: counters per mailing and the statistics (overall and per mailing),
which read only the aggregates: never the messages (their pages: ``reporter.message_pages``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from reporter.breakdown import DIMENSIONS, NO_TAG, RESOLUTION, UNKNOWN, latency
from reporter.domain import Status
from reporter.stats import delivery_rate, floor_hour, floor_minute
from sms_events.db import Connection
from sms_events.vocabulary import MailingState, mailing_state_sql

__all__ = [
    "COUNTER_FIELDS",
    "MAILING_STATE_SQL",
    "MAX_MINUTES",
    "MAX_VALUES",
    "TOP_FAILURES",
    "counters",
    "gauge_figures",
    "mailing_stats",
    "mailing_stats_on",
    "overview",
    "overview_on",
    "segments_per_day",
]

COUNTER_FIELDS = (
    "clients_count",
    "created_messages",
    "scheduled_messages",
    "delivered_messages",
    "undelivered_messages",
    "cancelled_messages",
    "attempts_total",
    "first_sent_at",
    "last_sent_at",
    "completed_at",
    "resolved_at",
)


async def counters(pool: asyncpg.Pool, mailing_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Counters of each known, not deleted mailing among ``mailing_ids``."""
    rows = await pool.fetch(
        f"SELECT r.mailing_id, {', '.join(f'r.{f}' for f in COUNTER_FIELDS)}"
        " FROM unnest($1::bigint[]) AS u(id) JOIN reporter_mailings r ON r.mailing_id = u.id"
        " WHERE r.deleted_at IS NULL",
        list(mailing_ids),
    )
    return {r["mailing_id"]: {f: r[f] for f in COUNTER_FIELDS} for r in rows}


# stats.mailing_state in SQL ($1: now). A NULL date compares as unknown, which CASE takes as
# false, as the Python rule does with None.
ALL_FINAL_SQL = "(resolved_at IS NOT NULL AND scheduled_messages = 0)"
"""Every message of a reporter_mailings row is final (``stats.mailing_state``'s ``resolved and
scheduled_messages == 0``)."""
MAILING_STATE_SQL = mailing_state_sql(
    "$1",
    start="datetime_start",
    end="datetime_end",
    paused="paused",
    cancelled="cancelled_at IS NOT NULL",
    all_messages_final=ALL_FINAL_SQL,
)
HOURS = 24
DAYS = 7  # days of segments_per_day, today last
TOP_FAILURES = 20
MAX_MINUTES = 1440
_STATUSES = [s.value for s in Status if s is not Status.WITHDRAWN]


def floor_day(moment: datetime) -> datetime:
    """Midnight of ``moment``'s day (UTC)."""
    return floor_hour(moment).replace(hour=0)


async def overview(pool: asyncpg.Pool, now: datetime) -> dict[str, Any]:
    """Clients, mailings by state, messages by status, delivery rate and sends per hour of the
    last 24 hours (the current hour last), from one snapshot of the aggregates."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await overview_on(conn, now)


async def overview_on(conn: Connection, now: datetime) -> dict[str, Any]:
    """``overview`` on ``conn``, in its transaction (the tables it finds on its search path)."""
    last_hour = floor_hour(now)
    first_hour = last_hour - timedelta(hours=HOURS - 1)
    totals = {r["name"]: r["value"] for r in await conn.fetch("SELECT * FROM reporter_totals")}
    states = await conn.fetch(
        f"SELECT {MAILING_STATE_SQL} AS state, count(*) AS n FROM reporter_mailings"
        " WHERE deleted_at IS NULL GROUP BY 1",
        now,
    )
    quarters = await conn.fetch(
        "SELECT quarter, delivered, failed FROM reporter_quarters"
        " WHERE quarter >= $1 AND quarter < $2",
        first_hour,
        last_hour + timedelta(hours=1),
    )
    first_day = floor_day(now) - timedelta(days=DAYS - 1)
    days = await segments_per_day(conn, first_day, floor_day(now) + timedelta(days=1))
    hours = {first_hour + timedelta(hours=i): [0, 0] for i in range(HOURS)}
    for r in quarters:
        counts = hours[floor_hour(r["quarter"])]
        counts[0] += r["delivered"]
        counts[1] += r["failed"]
    messages = {s: int(totals.get(s, 0)) for s in _STATUSES}
    by_state = {s.value: 0 for s in MailingState}
    by_state.update({r["state"]: r["n"] for r in states})
    return {
        "clients": int(totals.get("clients", 0)),
        "mailings": by_state,
        "messages": messages,
        "delivery_rate": delivery_rate(messages["DL"], messages["ND"]),
        "sends_per_hour": [
            {"hour": hour, "delivered": d, "failed": f} for hour, (d, f) in hours.items()
        ],
        "segments_per_day": [
            {
                "day": (first_day + timedelta(days=i)).date(),
                "segments": days.get(first_day + timedelta(days=i), 0),
            }
            for i in range(DAYS)
        ],
    }


async def segments_per_day(
    conn: Connection, start: datetime, end: datetime, tz: str = "UTC"
) -> dict[datetime, int]:
    """SMS segments delivered per local day (in ``tz``) of [start, end): each mailing's
    deliveries per quarter hour times its segments per message. Reads the quarters of the
    range (by the primary key), never a message."""
    rows = await conn.fetch(
        """
        SELECT date_trunc('day', q.quarter, $3) AS day, sum(q.delivered * r.segments) AS n
          FROM reporter_mailing_quarters q JOIN reporter_mailings r USING (mailing_id)
         WHERE q.quarter >= $1 AND q.quarter < $2 AND q.delivered <> 0
           AND r.deleted_at IS NULL AND r.segments IS NOT NULL
         GROUP BY 1
        """,
        start,
        end,
        tz,
    )
    return {r["day"]: int(r["n"]) for r in rows}


async def gauge_figures(pool: asyncpg.Pool, now: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """Messages by status (SC, DL, ND, CA) and mailings by state, every key present, for the
    reporter's gauges: the global totals row set and one row per mailing, never the messages."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        totals = {r["name"]: r["value"] for r in await conn.fetch("SELECT * FROM reporter_totals")}
        states = await conn.fetch(
            f"SELECT {MAILING_STATE_SQL} AS state, count(*) AS n FROM reporter_mailings"
            " WHERE deleted_at IS NULL GROUP BY 1",
            now,
        )
    messages = {s: int(totals.get(s, 0)) for s in _STATUSES}
    by_state = {s.value: 0 for s in MailingState}
    by_state.update({r["state"]: int(r["n"]) for r in states})
    return messages, by_state


async def mailing_stats(pool: asyncpg.Pool, mailing_id: int) -> dict[str, Any] | None:
    """One mailing's statistics, or None if the reporter does not know it (or it was
    deleted). Reads the mailing's counter row, its failure reasons and at most the last 1440
    minutes that had sends."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await mailing_stats_on(conn, mailing_id)


async def mailing_stats_on(conn: Connection, mailing_id: int) -> dict[str, Any] | None:
    """``mailing_stats`` on ``conn``, in its transaction (the tables on its search path)."""
    row = await conn.fetchrow(
        "SELECT * FROM reporter_mailings WHERE mailing_id = $1 AND deleted_at IS NULL",
        mailing_id,
    )
    if row is None:
        return None
    failures = await conn.fetch(
        "SELECT reason, attempts, final FROM reporter_mailing_failures"
        " WHERE mailing_id = $1 AND (attempts <> 0 OR final <> 0)"
        " ORDER BY attempts + final DESC, reason LIMIT $2",
        mailing_id,
        TOP_FAILURES,
    )
    span = await conn.fetchrow(
        "SELECT min(minute) AS first, max(minute) AS last FROM reporter_mailing_minutes"
        " WHERE mailing_id = $1 AND (delivered <> 0 OR failed <> 0)",
        mailing_id,
    )
    minutes: list[asyncpg.Record] = []
    first = last = None
    if span is not None and span["last"] is not None:
        last = span["last"]
        first = max(span["first"], last - timedelta(minutes=MAX_MINUTES - 1))
        minutes = await conn.fetch(
            "SELECT minute, delivered, failed FROM reporter_mailing_minutes"
            " WHERE mailing_id = $1 AND minute >= $2 AND minute <= $3",
            mailing_id,
            first,
            last,
        )
    delivered, undelivered = row["delivered_messages"], row["undelivered_messages"]
    started_at = row["first_sent_at"] or (span["first"] if span is not None else None)
    completed_at, start = row["completed_at"], row["datetime_start"]
    to_complete = None
    if completed_at is not None and start is not None:
        to_complete = (completed_at - start).total_seconds()
    return {
        "mailing_id": mailing_id,
        "messages": {
            "SC": row["scheduled_messages"],
            "DL": delivered,
            "ND": undelivered,
            "CA": row["cancelled_messages"],
        },
        "delivery_rate": delivery_rate(delivered, undelivered),
        "attempts_total": row["attempts_total"],
        "failures": [dict(r) for r in failures],
        "started_at": started_at,
        "completed_at": completed_at,
        "time_to_complete_s": to_complete if to_complete is None or to_complete >= 0 else None,
        "sends_per_minute": _minutes(minutes, first, last),
        "segments_per_message": row["segments"],
        "segments_sent": None if row["segments"] is None else delivered * row["segments"],
        **await _breakdown(conn, mailing_id),
    }


MAX_VALUES = 100  # values listed per dimension, the most messages first


async def _breakdown(conn: Connection, mailing_id: int) -> dict[str, Any]:
    """Statuses by dimension and latency percentiles, from the aggregates (reporter.breakdown):
    a few rows per value and per latency bucket, whatever the number of messages."""
    rows = await conn.fetch(
        """
        SELECT dimension, value, scheduled, delivered, undelivered, cancelled FROM (
            SELECT *, row_number() OVER (
                PARTITION BY dimension
                ORDER BY scheduled + delivered + undelivered + cancelled DESC, value) AS n
              FROM reporter_mailing_dimensions WHERE mailing_id = $1) d
         WHERE n <= $2 ORDER BY dimension, n
        """,
        mailing_id,
        MAX_VALUES,
    )
    by: dict[str, list[dict[str, Any]]] = {d: [] for d in DIMENSIONS}
    unknown = {"SC": 0, "DL": 0, "ND": 0, "CA": 0}
    for r in rows:
        counts = {
            "SC": r["scheduled"],
            "DL": r["delivered"],
            "ND": r["undelivered"],
            "CA": r["cancelled"],
        }
        if r["dimension"] == UNKNOWN:
            unknown = counts
            continue
        value = None if r["dimension"] == "tag" and r["value"] == NO_TAG else r["value"]
        by[r["dimension"]].append(
            {
                "value": value,
                "messages": counts,
                "delivery_rate": delivery_rate(counts["DL"], counts["ND"]),
            }
        )
    buckets = await conn.fetch(
        "SELECT bucket, messages FROM reporter_mailing_latency WHERE mailing_id = $1", mailing_id
    )
    found = latency({r["bucket"]: r["messages"] for r in buckets})
    return {
        "by_dimension": {**by, "unknown": unknown},
        "latency": None
        if found is None
        else {
            "settled": found.settled,
            **{f"p{p}_s": v for p, v in found.percentiles.items()},
            "max_s": found.max_s,
            "resolution": RESOLUTION,
        },
    }


def _minutes(
    rows: Sequence[asyncpg.Record], first: datetime | None, last: datetime | None
) -> list[dict[str, Any]]:
    if first is None or last is None:
        return []
    by_minute = {r["minute"]: (r["delivered"], r["failed"]) for r in rows}
    out = []
    minute = floor_minute(first)
    while minute <= last:
        delivered, failed = by_minute.get(minute, (0, 0))
        out.append({"minute": minute, "delivered": delivered, "failed": failed})
        minute += timedelta(minutes=1)
    return out
