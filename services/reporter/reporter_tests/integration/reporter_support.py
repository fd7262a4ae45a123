"""Helpers for the reporter's integration tests: unique ids, envelopes from contract models,
running the batch handler, and reading rows and counters back."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from reporter.api import ROUTES
from reporter.breakdown import latency_bucket
from reporter.handlers import handle_batch
from sms_events.broker import Broker
from sms_events.contracts import (
    DeliveredMessage,
    Event,
    FailedAttempt,
    MessageAttemptsFailed,
    MessagesCancelled,
    MessagesDelivered,
    MessagesScheduled,
    MessagesUndelivered,
    MessagesWithdrawn,
    ScheduledMessage,
    UndeliveredMessage,
)
from sms_events.envelope import Envelope
from sms_events.runtime import RUNTIME, Runtime
from sms_events.settings import ServiceSettings
from sms_events.testing.factories import envelope_for

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
COUNTERS = (
    "created_messages",
    "scheduled_messages",
    "delivered_messages",
    "undelivered_messages",
    "cancelled_messages",
    "attempts_total",
)
_rng = random.SystemRandom()


Client = TestClient[web.Request, web.Application]


def reporter_app(settings: ServiceSettings, pool: asyncpg.Pool, broker: Broker) -> web.Application:
    """The reporter's HTTP API as the service serves it, on the test's pool and broker (the
    ``client`` fixture of this package's conftest serves it)."""
    app = web.Application()
    app[RUNTIME] = Runtime("reporter", settings, pool, broker, asyncio.Event())
    app.add_routes(ROUTES)
    return app


def new_id() -> int:
    """A mailing or message id no other test (or run) uses."""
    return _rng.randrange(10**12, 2**62)


def ids(n: int) -> list[int]:
    """``n`` consecutive fresh message ids."""
    base = new_id()
    return list(range(base, base + n))


def envelope(event: Event, at: datetime | None = None) -> Envelope:
    env = envelope_for(event)
    return dataclasses.replace(env, time=at) if at is not None else env


async def handle(pool: asyncpg.Pool, *items: Event | Envelope) -> None:
    """Project one batch, as the consumer would, in one transaction."""
    envelopes = [i if isinstance(i, Envelope) else envelope(i) for i in items]
    async with pool.acquire() as conn, conn.transaction():
        await handle_batch(conn, envelopes)


# --- event builders ------------------------------------------------------------------------------


def scheduled(
    mailing_id: int,
    message_ids: Sequence[int],
    due: datetime = T0,
    client: Callable[[int], dict[str, Any]] | None = None,
) -> Event:
    """``client``: the client's values each message carries (message id -> fields); without
    it, none, as in events from before they were carried."""
    return MessagesScheduled(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        messages=[
            ScheduledMessage(
                message_id=m,
                client_id=m % 1_000_000 + 1,
                due_at=due,
                **(client(m) if client is not None else {}),
            )
            for m in message_ids
        ],
    )


def client_values(i: int) -> dict[str, Any]:
    """Varied client values for the ``i``th message: 3 operators, a tag or none, 2 zones."""
    return {
        "operator_code": f"9{i % 3}0",
        "tag": "vip" if i % 2 else None,
        "time_zone": "Asia/Tokyo" if (i // 2) % 2 else "Europe/Moscow",
    }


def delivered(
    mailing_id: int, message_ids: Sequence[int], attempt: int = 1, sent: datetime = T0
) -> Event:
    return MessagesDelivered(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        messages=[
            DeliveredMessage(message_id=m, attempt=attempt, sent_at=sent) for m in message_ids
        ],
    )


def failed(
    mailing_id: int, message_ids: Sequence[int], attempts: int = 1, error: str = "timeout"
) -> Event:
    return MessageAttemptsFailed(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        messages=[
            FailedAttempt(
                message_id=m,
                attempts=attempts,
                error=error,
                retry_at=T0 + timedelta(seconds=30 * attempts),
            )
            for m in message_ids
        ],
    )


def undelivered(
    mailing_id: int, message_ids: Sequence[int], attempts: int = 3, error: str = "rejected"
) -> Event:
    return MessagesUndelivered(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        messages=[
            UndeliveredMessage(
                message_id=m, attempts=attempts, error=error, failed_at=T0 + timedelta(minutes=5)
            )
            for m in message_ids
        ],
    )


def delivered_at(mailing_id: int, sends: dict[int, datetime], attempt: int = 1) -> Event:
    """Deliveries each at its own send time (message id -> sent_at)."""
    return MessagesDelivered(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        messages=[
            DeliveredMessage(message_id=m, attempt=attempt, sent_at=at) for m, at in sends.items()
        ],
    )


def final_failures(
    mailing_id: int, at: dict[int, tuple[datetime, str]], attempts: int = 1
) -> Event:
    """Final failures each at its own time and with its own error (message id -> (time, error))."""
    return MessagesUndelivered(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        messages=[
            UndeliveredMessage(message_id=m, attempts=attempts, error=e, failed_at=t)
            for m, (t, e) in at.items()
        ],
    )


def cancelled(mailing_id: int, message_ids: Sequence[int]) -> Event:
    return MessagesCancelled(
        mailing_id=mailing_id,
        batch_id=f"b{new_id()}",
        message_ids=list(message_ids),
        reason="mailing cancelled",
    )


def withdrawn(mailing_id: int, message_ids: Sequence[int]) -> Event:
    return MessagesWithdrawn(
        mailing_id=mailing_id, batch_id=f"b{new_id()}", message_ids=list(message_ids)
    )


# --- reading back --------------------------------------------------------------------------------


async def counters(pool: asyncpg.Pool, mailing_id: int) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM reporter_mailings WHERE mailing_id = $1", mailing_id)
    assert row is not None, f"no reporter_mailings row for {mailing_id}"
    return dict(row)


async def counts(pool: asyncpg.Pool, mailing_id: int) -> dict[str, int]:
    """Just the counters that must equal a recount of the rows."""
    row = await counters(pool, mailing_id)
    return {k: row[k] for k in COUNTERS}


async def recount(pool: asyncpg.Pool, mailing_id: int) -> dict[str, int]:
    """The same counters computed from reporter_messages with a GROUP BY."""
    rows = await pool.fetch(
        "SELECT status::text AS status, count(*) AS n, sum(attempts) AS attempts"
        " FROM reporter_messages WHERE mailing_id = $1 GROUP BY status",
        mailing_id,
    )
    by = {r["status"]: r for r in rows}
    return {
        "created_messages": sum(r["n"] for r in rows),
        "scheduled_messages": by["SC"]["n"] if "SC" in by else 0,
        "delivered_messages": by["DL"]["n"] if "DL" in by else 0,
        "undelivered_messages": by["ND"]["n"] if "ND" in by else 0,
        "cancelled_messages": by["CA"]["n"] if "CA" in by else 0,
        "attempts_total": sum(int(r["attempts"]) for r in rows),
    }


async def messages(pool: asyncpg.Pool, mailing_id: int) -> dict[int, dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT *, status::text AS status FROM reporter_messages WHERE mailing_id = $1",
        mailing_id,
    )
    return {r["message_id"]: dict(r) for r in rows}


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it returns True; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


# --- statistics aggregates -----------------------------------------------------------------------


async def commit_once(pool: asyncpg.Pool, consumer: str, *items: Event | Envelope) -> None:
    """Project a batch as the consumer does, processed_events guard included: an envelope
    this ``consumer`` has handled before changes nothing (a redelivery)."""
    envelopes = [i if isinstance(i, Envelope) else envelope(i) for i in items]
    async with pool.acquire() as conn, conn.transaction():
        fresh = {
            r["event_id"]
            for r in await conn.fetch(
                "INSERT INTO processed_events (consumer, event_id)"
                " SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id",
                consumer,
                list({e.id for e in envelopes}),
            )
        }
        kept = []
        for env in envelopes:
            if env.id in fresh:
                fresh.discard(env.id)
                kept.append(env)
        if kept:
            await handle_batch(conn, kept)


async def aggregates(pool: asyncpg.Pool, mailing_id: int) -> dict[str, Any]:
    """A mailing's aggregate rows (non-zero ones), keyed for comparison."""
    minutes = await pool.fetch(
        "SELECT minute, delivered, failed FROM reporter_mailing_minutes"
        " WHERE mailing_id = $1 AND (delivered <> 0 OR failed <> 0) ORDER BY minute",
        mailing_id,
    )
    quarters = await pool.fetch(
        "SELECT quarter, delivered, failed, cancelled, attempts FROM reporter_mailing_quarters"
        " WHERE mailing_id = $1 AND (delivered <> 0 OR failed <> 0 OR cancelled <> 0"
        " OR attempts <> 0) ORDER BY quarter",
        mailing_id,
    )
    failures = await pool.fetch(
        "SELECT reason, attempts, final FROM reporter_mailing_failures"
        " WHERE mailing_id = $1 AND (attempts <> 0 OR final <> 0) ORDER BY reason",
        mailing_id,
    )
    return {
        "minutes": {r["minute"]: (r["delivered"], r["failed"]) for r in minutes},
        "quarters": {r["quarter"]: tuple(r)[1:] for r in quarters},
        "failures": {r["reason"]: (r["attempts"], r["final"]) for r in failures},
    }


async def recount_aggregates(pool: asyncpg.Pool, mailing_id: int) -> dict[str, Any]:
    """What the state-based aggregates must be, recounted from reporter_messages."""
    minutes = await pool.fetch(
        "SELECT date_trunc('minute', datetime_send AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m,"
        " count(*) FILTER (WHERE status = 'DL') AS d, count(*) FILTER (WHERE status = 'ND') AS f"
        " FROM reporter_messages WHERE mailing_id = $1 AND status IN ('DL', 'ND')"
        " GROUP BY 1 ORDER BY 1",
        mailing_id,
    )
    quarters = await pool.fetch(
        "SELECT date_bin('15 minutes', coalesce(cancelled_at, datetime_send),"
        "                timestamptz '2000-01-01 00:00+00') AS q,"
        " count(*) FILTER (WHERE status = 'DL') AS d, count(*) FILTER (WHERE status = 'ND') AS f,"
        " count(*) FILTER (WHERE status = 'CA') AS c"
        " FROM reporter_messages WHERE mailing_id = $1"
        " AND (status IN ('DL', 'ND') OR (status = 'CA' AND cancelled_at IS NOT NULL))"
        " GROUP BY 1 ORDER BY 1",
        mailing_id,
    )
    finals = await pool.fetch(
        "SELECT reporter_reason(last_error) AS reason, count(*) AS n FROM reporter_messages"
        " WHERE mailing_id = $1 AND status = 'ND' GROUP BY 1",
        mailing_id,
    )
    return {
        "minutes": {r["m"]: (r["d"], r["f"]) for r in minutes},
        "quarters": {r["q"]: (r["d"], r["f"], r["c"]) for r in quarters},
        "finals": {r["reason"]: r["n"] for r in finals},
    }


async def assert_aggregates_consistent(pool: asyncpg.Pool, mailing_id: int) -> None:
    """The mailing's aggregates equal a recount of its messages; attempts per quarter add up
    to attempts_total; and the global rows equal the sum over all mailings."""
    got, want = await aggregates(pool, mailing_id), await recount_aggregates(pool, mailing_id)
    assert got["minutes"] == want["minutes"]
    assert {q: a[:3] for q, a in got["quarters"].items() if any(a[:3])} == want["quarters"]
    assert {r: f for r, (_, f) in got["failures"].items() if f} == want["finals"]
    attempts = sum(a[3] for a in got["quarters"].values())
    assert attempts == (await counters(pool, mailing_id))["attempts_total"]
    await assert_breakdown_consistent(pool, mailing_id)
    await assert_global_consistent(pool)


async def assert_global_consistent(pool: asyncpg.Pool) -> None:
    totals = {r["name"]: r["value"] for r in await pool.fetch("SELECT * FROM reporter_totals")}
    sums = await pool.fetchrow(
        "SELECT coalesce(sum(scheduled_messages), 0) AS sc, coalesce(sum(delivered_messages), 0)"
        " AS dl, coalesce(sum(undelivered_messages), 0) AS nd,"
        " coalesce(sum(cancelled_messages), 0) AS ca FROM reporter_mailings"
    )
    assert sums is not None
    assert (totals["SC"], totals["DL"], totals["ND"], totals["CA"]) == tuple(sums)
    clients = await pool.fetchval(
        "SELECT count(*) FROM reporter_clients WHERE created AND deleted_at IS NULL"
    )
    assert totals["clients"] == clients
    mismatched = await pool.fetch(
        """
        WITH summed AS (
            SELECT quarter, sum(delivered) AS d, sum(failed) AS f, sum(cancelled) AS c,
                   sum(attempts) AS a
              FROM reporter_mailing_quarters GROUP BY quarter)
        SELECT * FROM summed FULL JOIN reporter_quarters g USING (quarter)
        WHERE (coalesce(d, 0), coalesce(f, 0), coalesce(c, 0), coalesce(a, 0))
              IS DISTINCT FROM (coalesce(g.delivered, 0), coalesce(g.failed, 0),
                                coalesce(g.cancelled, 0), coalesce(g.attempts, 0))
        """
    )
    assert mismatched == []


async def breakdown(pool: asyncpg.Pool, mailing_id: int) -> dict[str, Any]:
    """A mailing's statistics by dimension and latency histogram, as stored."""
    dims = await pool.fetch(
        "SELECT dimension, value, scheduled, delivered, undelivered, cancelled"
        " FROM reporter_mailing_dimensions WHERE mailing_id = $1",
        mailing_id,
    )
    latency = await pool.fetch(
        "SELECT bucket, messages FROM reporter_mailing_latency WHERE mailing_id = $1", mailing_id
    )
    return {
        "dimensions": {(r[0], r[1]): tuple(r)[2:] for r in dims},
        "latency": {r["bucket"]: r["messages"] for r in latency},
    }


async def recount_breakdown(pool: asyncpg.Pool, mailing_id: int) -> dict[str, Any]:
    """The same, recounted from reporter_messages: a GROUP BY for the dimensions, the latency
    rule applied to each settled message for the histogram."""
    dims = await pool.fetch(
        """
        SELECT d.dimension, d.value,
               count(*) FILTER (WHERE m.status = 'SC'), count(*) FILTER (WHERE m.status = 'DL'),
               count(*) FILTER (WHERE m.status = 'ND'), count(*) FILTER (WHERE m.status = 'CA')
          FROM reporter_messages m
          CROSS JOIN LATERAL (VALUES
              ('operator_code', m.operator_code), ('tag', coalesce(m.tag, '')),
              ('time_zone', m.time_zone)) AS d(dimension, value)
         WHERE m.mailing_id = $1 AND m.operator_code IS NOT NULL
         GROUP BY 1, 2
        UNION ALL
        SELECT 'unknown', '',
               count(*) FILTER (WHERE status = 'SC'), count(*) FILTER (WHERE status = 'DL'),
               count(*) FILTER (WHERE status = 'ND'), count(*) FILTER (WHERE status = 'CA')
          FROM reporter_messages WHERE mailing_id = $1 AND operator_code IS NULL
        HAVING count(*) > 0
        """,
        mailing_id,
    )
    settled = await pool.fetch(
        "SELECT first_due_at, datetime_send FROM reporter_messages WHERE mailing_id = $1"
        " AND status IN ('DL', 'ND') AND first_due_at IS NOT NULL AND datetime_send IS NOT NULL",
        mailing_id,
    )
    latency = Counter(
        latency_bucket((r["datetime_send"] - r["first_due_at"]).total_seconds()) for r in settled
    )
    return {"dimensions": {(r[0], r[1]): tuple(r)[2:] for r in dims}, "latency": dict(latency)}


async def assert_breakdown_consistent(pool: asyncpg.Pool, mailing_id: int) -> None:
    """The mailing's statistics by dimension and latency equal a recount of its messages,
    with no row left at zero."""
    assert await breakdown(pool, mailing_id) == await recount_breakdown(pool, mailing_id)
