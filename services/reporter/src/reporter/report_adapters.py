"""The daily report's reads (a day's figures from the quarter-hour aggregates) and its
delivery record, ``reporter_daily_reports`` (claims, leases, outcomes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import asyncpg

from reporter.domain import PROJECTION_NAME
from reporter.queries import segments_per_day
from reporter.report import MAX_TABLE_ROWS, DailyReport, Figures, MailingLine, day_bounds
from reporter.stats import mailing_state
from sms_events.contracts import DailyReportSent
from sms_events.db import Connection
from sms_events.replay import writing
from sms_events.store import EventStore, appending

__all__ = [
    "Claim",
    "claim",
    "first_activity",
    "load_report",
    "mark_failed",
    "mark_sent",
    "report_row",
    "sent_days",
]

_ACTIVE = "(delivered <> 0 OR failed <> 0 OR cancelled <> 0 OR attempts <> 0)"


async def first_activity(pool: asyncpg.Pool) -> datetime | None:
    """The start of the earliest quarter hour in which anything happened."""
    value = await pool.fetchval(
        f"SELECT quarter FROM reporter_quarters WHERE {_ACTIVE} ORDER BY quarter LIMIT 1"
    )
    return value if isinstance(value, datetime) else None


async def load_report(pool: asyncpg.Pool, day: date, tz: str, now: datetime) -> DailyReport:
    """The figures of the local ``day`` in ``tz``: the sums of its quarter hours, for all
    mailings and for each mailing active that day, with the mailing's state at ``now``."""
    start, end = day_bounds(day, ZoneInfo(tz))
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        totals = await conn.fetchrow(
            "SELECT coalesce(sum(delivered), 0) AS delivered, coalesce(sum(failed), 0) AS failed,"
            " coalesce(sum(cancelled), 0) AS cancelled, coalesce(sum(attempts), 0) AS attempts"
            " FROM reporter_quarters WHERE quarter >= $1 AND quarter < $2",
            start,
            end,
        )
        segments = sum((await segments_per_day(conn, start, end, tz)).values())
        rows = await conn.fetch(
            """
            WITH day AS (
                SELECT mailing_id, sum(delivered) AS delivered, sum(failed) AS failed,
                       sum(cancelled) AS cancelled, sum(attempts) AS attempts
                  FROM reporter_mailing_quarters
                 WHERE quarter >= $1 AND quarter < $2
                 GROUP BY mailing_id
                HAVING sum(delivered) <> 0 OR sum(failed) <> 0 OR sum(cancelled) <> 0
                    OR sum(attempts) <> 0
            )
            SELECT d.*, d.delivered * coalesce(r.segments, 0) AS segments,
                   r.datetime_start, r.datetime_end, r.paused, r.cancelled_at,
                   r.resolved_at, r.scheduled_messages, count(*) OVER () AS active
              FROM day d JOIN reporter_mailings r USING (mailing_id)
             WHERE r.deleted_at IS NULL
             ORDER BY d.mailing_id
             LIMIT $3
            """,
            start,
            end,
            MAX_TABLE_ROWS,
        )
    assert totals is not None
    lines = [
        MailingLine(
            mailing_id=r["mailing_id"],
            state=mailing_state(
                now,
                datetime_start=r["datetime_start"],
                datetime_end=r["datetime_end"],
                paused=r["paused"],
                cancelled=r["cancelled_at"] is not None,
                resolved=r["resolved_at"] is not None,
                scheduled_messages=r["scheduled_messages"],
            ).value,
            datetime_start=r["datetime_start"],
            datetime_end=r["datetime_end"],
            figures=Figures(
                int(r["delivered"]),
                int(r["failed"]),
                int(r["cancelled"]),
                int(r["attempts"]),
                int(r["segments"]),
            ),
        )
        for r in rows
    ]
    active = int(rows[0]["active"]) if rows else 0
    return DailyReport(
        day=day,
        tz=tz,
        start=start,
        end=end,
        generated_at=now,
        totals=Figures(
            int(totals["delivered"]),
            int(totals["failed"]),
            int(totals["cancelled"]),
            int(totals["attempts"]),
            segments,
        ),
        mailings=lines,
        more_mailings=active - len(lines),
    )


async def sent_days(pool: asyncpg.Pool, first: date, last: date) -> set[date]:
    rows = await pool.fetch(
        "SELECT day FROM reporter_daily_reports WHERE day BETWEEN $1 AND $2 AND state = 'sent'",
        first,
        last,
    )
    return {r["day"] for r in rows}


async def report_row(pool: asyncpg.Pool, day: date) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM reporter_daily_reports WHERE day = $1", day)


@dataclass(frozen=True, slots=True)
class Claim:
    day: date
    owner: str
    attempt: int  # how many times this day has been claimed, this one included
    resend: int  # 0, or how many times it had been sent before (a forced resend)


# Who may claim a day. The scheduled path leaves sent days alone, and a day being sent (live
# lease) or waiting out a failure's backoff (claimed_until in the future). By hand, a failed
# day is tried at once, a sent one only when forced, and a live lease is still respected.
_SCHEDULED = "r.state <> 'sent' AND (r.claimed_until IS NULL OR r.claimed_until < now())"
_BY_HAND = "(r.state <> 'sending' OR r.claimed_until < now()) AND (r.state <> 'sent' OR $4)"


async def claim(
    pool: asyncpg.Pool,
    day: date,
    owner: str,
    lease_s: float,
    *,
    by_hand: bool = False,
    force: bool = False,
) -> Claim | None:
    """Take ``day`` for sending, atomically: one statement, so of several replicas (or a
    replica and the command) at most one gets a row back. None if someone else holds it,
    it is waiting out a backoff, or it was sent already."""
    async with pool.acquire() as conn, conn.transaction():
        await writing(conn, PROJECTION_NAME)  # a rebuild's swap carries the claim over
        row = await conn.fetchrow(
            f"""
            INSERT INTO reporter_daily_reports AS r
                (day, state, attempts, claimed_by, claimed_until)
            VALUES ($1, 'sending', 1, $2, now() + make_interval(secs => $3))
            ON CONFLICT (day) DO UPDATE SET
                state = 'sending', attempts = r.attempts + 1, claimed_by = EXCLUDED.claimed_by,
                claimed_until = EXCLUDED.claimed_until, updated_at = now()
            WHERE {_BY_HAND if by_hand else _SCHEDULED}
            RETURNING r.attempts, r.sent_at IS NOT NULL AS was_sent
            """,
            day,
            owner,
            lease_s,
            *([force] if by_hand else []),
        )
    if row is None:
        return None
    resend = row["attempts"] if row["was_sent"] else 0
    return Claim(day, owner, row["attempts"], resend)


async def mark_sent(pool: asyncpg.Pool, claim: Claim, message_id: str) -> bool:
    """Record the send right after the server's 250, with the ``report.sent`` event that
    makes it part of the history (a rebuild or a restore never sends the day again); False if
    the claim was lost meanwhile (the lease ran out and another took it over)."""
    async with pool.acquire() as conn, appending(conn):
        await writing(conn, PROJECTION_NAME)
        row = await conn.fetchrow(
            """
            UPDATE reporter_daily_reports SET state = 'sent', sent_at = now(), message_id = $3,
                   claimed_until = NULL, last_error = NULL, updated_at = now()
             WHERE day = $1 AND claimed_by = $2 AND state = 'sending'
            RETURNING sent_at, attempts
            """,
            claim.day,
            claim.owner,
            message_id,
        )
        if row is None:
            return False
        event = DailyReportSent(
            day=claim.day, sent_at=row["sent_at"], attempts=row["attempts"], message_id=message_id
        )
        await EventStore(pool).append(event.stream_id(), [event], conn=conn)
    return True


async def record_sent(conn: Connection, reports: Sequence[DailyReportSent]) -> None:
    """Fold ``report.sent`` events: each day sent, the newest send winning (a day being sent
    again by hand stays claimed until its own event comes)."""
    if not reports:
        return
    newest: dict[date, DailyReportSent] = {}
    for r in reports:  # one row per day in the statement: the newest send of each
        if r.day not in newest or newest[r.day].sent_at < r.sent_at:
            newest[r.day] = r
    reports = list(newest.values())
    await conn.execute(
        """
        INSERT INTO reporter_daily_reports AS r (day, state, attempts, sent_at, message_id)
        SELECT day, 'sent', attempts, sent_at, message_id
          FROM unnest($1::date[], $2::int[], $3::timestamptz[], $4::text[])
               AS e(day, attempts, sent_at, message_id)
         ORDER BY day
        ON CONFLICT (day) DO UPDATE SET
            state = 'sent', attempts = EXCLUDED.attempts, sent_at = EXCLUDED.sent_at,
            message_id = EXCLUDED.message_id, claimed_until = NULL, last_error = NULL
        WHERE r.sent_at IS NULL OR r.sent_at < EXCLUDED.sent_at
        """,
        [r.day for r in reports],
        [r.attempts for r in reports],
        [r.sent_at for r in reports],
        [r.message_id for r in reports],
    )


async def mark_failed(pool: asyncpg.Pool, claim: Claim, error: str, retry_in_s: float) -> None:
    """Record a failed attempt; the day is not claimed again before ``retry_in_s``."""
    await pool.execute(
        """
        UPDATE reporter_daily_reports SET
               state = CASE WHEN sent_at IS NULL THEN 'failed' ELSE 'sent' END,
               last_error = left($3, 500),
               claimed_until = CASE WHEN sent_at IS NULL
                                    THEN now() + make_interval(secs => $4) END,
               updated_at = now()
         WHERE day = $1 AND claimed_by = $2 AND state = 'sending'
        """,
        claim.day,
        claim.owner,
        error,
        retry_in_s,
    )
