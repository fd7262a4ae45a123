"""Writes of the statistics aggregates: a few set-based upserts per batch, in the batch's
transaction (see stats.py for what they hold and adapters.py for why ids go through unnest).

Per-mailing rows are written under the mailing locks the batch already holds. The global
rows (totals, quarters) are shared by every batch of every mailing, so ``add_global`` comes
last, touches each row once, in key order: a replica waits for another only for the time
between that statement and the commit, and two replicas can never hold them crosswise."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from reporter.domain import MailingDelta
from reporter.stats import Activity, GlobalDelta, Tally
from sms_events.db import Connection

__all__ = ["add_global", "add_mailing_stats", "forget_mailings", "track_clients"]


async def add_mailing_stats(conn: Connection, tally: Tally) -> None:
    """Move the per-mailing aggregates by one batch's tally."""
    minutes = sorted((k, v) for k, v in tally.minutes.items() if any(v))
    if minutes:
        await conn.execute(
            """
            INSERT INTO reporter_mailing_minutes AS t (mailing_id, minute, delivered, failed)
            SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bigint[])
            ON CONFLICT (mailing_id, minute) DO UPDATE SET
                delivered = t.delivered + EXCLUDED.delivered, failed = t.failed + EXCLUDED.failed
            """,
            *_pair_columns(minutes),
        )
    quarters = sorted(((q, m), a) for (m, q), a in tally.quarters.items() if a)
    if quarters:
        await conn.execute(
            """
            INSERT INTO reporter_mailing_quarters AS t
                (quarter, mailing_id, delivered, failed, cancelled, attempts)
            SELECT * FROM unnest($1::timestamptz[], $2::bigint[], $3::bigint[], $4::bigint[],
                                 $5::bigint[], $6::bigint[])
            ON CONFLICT (quarter, mailing_id) DO UPDATE SET
                delivered = t.delivered + EXCLUDED.delivered,
                failed = t.failed + EXCLUDED.failed,
                cancelled = t.cancelled + EXCLUDED.cancelled,
                attempts = t.attempts + EXCLUDED.attempts
            """,
            [k[0] for k, _ in quarters],
            [k[1] for k, _ in quarters],
            *_activity_columns([a for _, a in quarters]),
        )
    failures = sorted((k, v) for k, v in tally.failures.items() if any(v))
    if failures:
        await conn.execute(
            """
            INSERT INTO reporter_mailing_failures AS t (mailing_id, reason, attempts, final)
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[])
            ON CONFLICT (mailing_id, reason) DO UPDATE SET
                attempts = t.attempts + EXCLUDED.attempts, final = t.final + EXCLUDED.final
            """,
            *_pair_columns(failures),
        )
    await _add_breakdown(conn, tally)


async def _add_breakdown(conn: Connection, tally: Tally) -> None:
    """Move the statistics by dimension and the latency histogram, then delete the rows left
    at zero: which rows exist then depends on the messages only, not on how the events were
    batched (a rebuild from the events finds the same ones)."""
    dims = sorted((k, v) for k, v in tally.dimensions.items() if any(v))
    if dims:
        columns = ([k[0] for k, _ in dims], [k[1] for k, _ in dims], [k[2] for k, _ in dims])
        await conn.execute(
            """
            INSERT INTO reporter_mailing_dimensions AS t
                (mailing_id, dimension, value, scheduled, delivered, undelivered, cancelled)
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[],
                                 $5::bigint[], $6::bigint[], $7::bigint[])
            ON CONFLICT (mailing_id, dimension, value) DO UPDATE SET
                scheduled = t.scheduled + EXCLUDED.scheduled,
                delivered = t.delivered + EXCLUDED.delivered,
                undelivered = t.undelivered + EXCLUDED.undelivered,
                cancelled = t.cancelled + EXCLUDED.cancelled
            """,
            *columns,
            *([v[i] for _, v in dims] for i in range(4)),
        )
        await conn.execute(
            """
            DELETE FROM reporter_mailing_dimensions t
             USING unnest($1::bigint[], $2::text[], $3::text[]) AS k(mailing_id, dimension, value)
             WHERE (t.mailing_id, t.dimension, t.value) = (k.mailing_id, k.dimension, k.value)
               AND t.scheduled = 0 AND t.delivered = 0 AND t.undelivered = 0 AND t.cancelled = 0
            """,
            *columns,
        )
    latency = sorted((k, n) for k, n in tally.latency.items() if n)
    if latency:
        keys = ([k[0] for k, _ in latency], [k[1] for k, _ in latency])
        await conn.execute(
            """
            INSERT INTO reporter_mailing_latency AS t (mailing_id, bucket, messages)
            SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::bigint[])
            ON CONFLICT (mailing_id, bucket) DO UPDATE SET messages = t.messages + EXCLUDED.messages
            """,
            *keys,
            [n for _, n in latency],
        )
        await conn.execute(
            """
            DELETE FROM reporter_mailing_latency t
             USING unnest($1::bigint[], $2::smallint[]) AS k(mailing_id, bucket)
             WHERE t.mailing_id = k.mailing_id AND t.bucket = k.bucket AND t.messages = 0
            """,
            *keys,
        )


async def forget_mailings(conn: Connection, mailing_ids: Collection[int]) -> GlobalDelta:
    """Drop the aggregates of mailings being deleted (rows locked, counters not yet zeroed);
    returns what the global rows must lose with them."""
    ids = sorted(mailing_ids)
    out = GlobalDelta()
    counters = await conn.fetch(
        """
        SELECT r.scheduled_messages, r.delivered_messages, r.undelivered_messages,
               r.cancelled_messages
          FROM unnest($1::bigint[]) AS u(id) JOIN reporter_mailings r ON r.mailing_id = u.id
        """,
        ids,
    )
    out.add_counters(
        (
            MailingDelta(
                scheduled=r["scheduled_messages"],
                delivered=r["delivered_messages"],
                undelivered=r["undelivered_messages"],
                cancelled=r["cancelled_messages"],
            )
            for r in counters
        ),
        sign=-1,
    )
    quarters = await conn.fetch(
        """
        DELETE FROM reporter_mailing_quarters q USING unnest($1::bigint[]) AS u(id)
        WHERE q.mailing_id = u.id
        RETURNING q.quarter, q.delivered, q.failed, q.cancelled, q.attempts
        """,
        ids,
    )
    lost: dict[datetime, Activity] = {}
    for r in quarters:
        lost.setdefault(r["quarter"], Activity()).add(
            Activity(r["delivered"], r["failed"], r["cancelled"], r["attempts"])
        )
    out.add_quarters(lost, sign=-1)
    await conn.execute(
        """
        WITH gone(id) AS (SELECT unnest($1::bigint[])),
             minutes AS (
                 DELETE FROM reporter_mailing_minutes m USING gone WHERE m.mailing_id = gone.id),
             dimensions AS (
                 DELETE FROM reporter_mailing_dimensions d USING gone WHERE d.mailing_id = gone.id),
             latency AS (
                 DELETE FROM reporter_mailing_latency l USING gone WHERE l.mailing_id = gone.id)
        DELETE FROM reporter_mailing_failures f USING gone WHERE f.mailing_id = gone.id
        """,
        ids,
    )
    return out


async def track_clients(
    conn: Connection, created: Collection[int], deleted: Mapping[int, datetime]
) -> int:
    """Record client creations and deletions; returns how the number of clients moves.

    Single statements with ON CONFLICT, so a replica handling the same client at the same time
    waits for the other's row and then sees it: the count stays exact under concurrency too.
    """
    change = 0
    if created:
        change += await conn.fetchval(
            """
            WITH added AS (
                INSERT INTO reporter_clients (client_id, created)
                SELECT id, true FROM unnest($1::bigint[]) AS u(id) ORDER BY id
                ON CONFLICT (client_id) DO NOTHING
                RETURNING 1)
            SELECT count(*) FROM added
            """,
            sorted(set(created)),
        )
    if deleted:
        ids = sorted(deleted)
        # The deletion's own time (not the clock's: a rebuild must find the same).
        # Updated rows were counted clients (created = true); inserted ones are tombstones.
        rows = await conn.fetch(
            """
            INSERT INTO reporter_clients AS c (client_id, created, deleted_at)
            SELECT id, false, at FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, at)
            ORDER BY id
            ON CONFLICT (client_id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at
                WHERE c.deleted_at IS NULL
            RETURNING c.created
            """,
            ids,
            [deleted[i] for i in ids],
        )
        change -= sum(1 for r in rows if r["created"])
    return change


async def add_global(conn: Connection, delta: GlobalDelta) -> None:
    """Move the global totals and quarter-hour rows (last in the batch, in key order)."""
    totals = sorted((k, v) for k, v in delta.totals.items() if v)
    if totals:
        await conn.execute(
            """
            INSERT INTO reporter_totals AS t (name, value)
            SELECT * FROM unnest($1::text[], $2::bigint[]) ORDER BY 1
            ON CONFLICT (name) DO UPDATE SET value = t.value + EXCLUDED.value
            """,
            [k for k, _ in totals],
            [v for _, v in totals],
        )
    quarters = sorted((q, a) for q, a in delta.quarters.items() if a)
    if quarters:
        await conn.execute(
            """
            INSERT INTO reporter_quarters AS t (quarter, delivered, failed, cancelled, attempts)
            SELECT * FROM unnest($1::timestamptz[], $2::bigint[], $3::bigint[], $4::bigint[],
                                 $5::bigint[])
                ORDER BY 1
            ON CONFLICT (quarter) DO UPDATE SET
                delivered = t.delivered + EXCLUDED.delivered,
                failed = t.failed + EXCLUDED.failed,
                cancelled = t.cancelled + EXCLUDED.cancelled,
                attempts = t.attempts + EXCLUDED.attempts
            """,
            [q for q, _ in quarters],
            *_activity_columns([a for _, a in quarters]),
        )


def _pair_columns(
    items: Sequence[tuple[tuple[int, object], list[int]]],
) -> tuple[list[object], ...]:
    """(mailing_id, key) -> [a, b] rows as the four unnest columns."""
    return (
        [k[0] for k, _ in items],
        [k[1] for k, _ in items],
        [v[0] for _, v in items],
        [v[1] for _, v in items],
    )


def _activity_columns(items: list[Activity]) -> tuple[list[int], ...]:
    return (
        [a.delivered for a in items],
        [a.failed for a in items],
        [a.cancelled for a in items],
        [a.attempts for a in items],
    )
