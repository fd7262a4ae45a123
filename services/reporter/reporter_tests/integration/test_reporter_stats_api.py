"""The statistics endpoints on a real aiohttp server over the real database: shapes, zero
filling, caps, 404/400, the mailing state rule in SQL, and (reported, not asserted) how long
both take with 100,000 projected messages.

Run ``.venv/bin/pytest -q -s
services/reporter/reporter_tests/integration/test_reporter_stats_api.py``
to see the timings."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import REGISTRY

from reporter import gauges, queries
from reporter.stats import mailing_state
from sms_events.contracts import (
    Event,
    MailingAudienceResolved,
    MailingCancelled,
    MailingDeleted,
    MailingPaused,
    MailingScheduled,
)

from .reporter_support import (
    Client,
    delivered_at,
    envelope,
    failed,
    final_failures,
    handle,
    ids,
    new_id,
    scheduled,
)

T2 = datetime(2032, 8, 9, 12, 0, tzinfo=UTC)


def mailing_event(mailing_id: int, start: datetime, end: datetime) -> Event:
    return MailingScheduled(
        mailing_id=mailing_id,
        text="hello",
        datetime_start=start,
        datetime_end=end,
        updated_at=start - timedelta(days=1),
    )


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_mailing_stats_shape_and_figures(client: Client, pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(6)
    start = T2
    await handle(pool, mailing_event(mailing, start, start + timedelta(days=1)))
    await handle(pool, scheduled(mailing, msgs, due=start))
    await handle(
        pool,
        failed(mailing, msgs[:2], attempts=1, error="HTTP 503"),
        delivered_at(mailing, {msgs[0]: start + timedelta(minutes=1, seconds=5)}),
        delivered_at(mailing, {msgs[1]: start + timedelta(minutes=4)}),
        final_failures(mailing, {msgs[2]: (start + timedelta(minutes=4), "HTTP 400: bad")}),
    )
    resp = await client.get(f"/internal/v1/mailings/{mailing}/stats")
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "mailing_id": mailing,
        "messages": {"SC": 3, "DL": 2, "ND": 1, "CA": 0},
        "delivery_rate": 0.6667,
        "attempts_total": 3,
        "failures": [
            {"reason": "HTTP 503", "attempts": 2, "final": 0},
            {"reason": "HTTP 400: bad", "attempts": 0, "final": 1},
        ],
        "started_at": iso(start + timedelta(minutes=1, seconds=5)),
        "completed_at": None,
        "time_to_complete_s": None,
        "sends_per_minute": [
            {"minute": iso(start + timedelta(minutes=1)), "delivered": 1, "failed": 0},
            {"minute": iso(start + timedelta(minutes=2)), "delivered": 0, "failed": 0},
            {"minute": iso(start + timedelta(minutes=3)), "delivered": 0, "failed": 0},
            {"minute": iso(start + timedelta(minutes=4)), "delivered": 1, "failed": 1},
        ],
        "segments_per_message": 1,
        "segments_sent": 2,
        # Scheduled by events that carry no client values: all unknown.
        "by_dimension": {
            "operator_code": [],
            "tag": [],
            "time_zone": [],
            "unknown": {"SC": 3, "DL": 2, "ND": 1, "CA": 0},
        },
        # 65 s, 240 s, 240 s after the due time: buckets up to 79.4 s and 251.2 s.
        "latency": {
            "settled": 3,
            "p50_s": 251.189,
            "p90_s": 251.189,
            "p99_s": 251.189,
            "max_s": 251.189,
            "resolution": 0.259,
        },
    }
    # The rest go out an hour later: complete, with the time it took.
    done = start + timedelta(hours=1)
    await handle(pool, envelope(delivered_at(mailing, dict.fromkeys(msgs[3:], done)), at=done))
    body = await (await client.get(f"/internal/v1/mailings/{mailing}/stats")).json()
    assert body["completed_at"] == iso(done)
    assert body["time_to_complete_s"] == 3600.0
    assert len(body["sends_per_minute"]) == 60
    assert body["sends_per_minute"][-1] == {"minute": iso(done), "delivered": 3, "failed": 0}


async def test_mailing_stats_cap_minutes_and_failures(client: Client, pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(40)
    await handle(pool, scheduled(mailing, msgs, due=T2))
    first, last = T2, T2 + timedelta(minutes=1999)
    await handle(pool, delivered_at(mailing, {msgs[0]: first, msgs[1]: last}))
    await handle(
        pool,
        *[failed(mailing, msgs[2 + i : 3 + i], 1, error=f"reason {i:02}") for i in range(25)],
        failed(mailing, msgs[30:33], 1, error="reason 24"),
    )
    body = await (await client.get(f"/internal/v1/mailings/{mailing}/stats")).json()
    points = body["sends_per_minute"]
    assert len(points) == 1440
    assert points[0]["minute"] == iso(last - timedelta(minutes=1439))
    assert points[-1] == {"minute": iso(last), "delivered": 1, "failed": 0}
    reasons = [f["reason"] for f in body["failures"]]
    assert len(reasons) == 20
    assert reasons[0] == "reason 24"  # 4 attempts
    assert reasons[1:] == [f"reason {i:02}" for i in range(19)]  # ties by reason


async def test_mailing_stats_404_and_400(client: Client, pool: asyncpg.Pool) -> None:
    unknown = new_id()
    resp = await client.get(f"/internal/v1/mailings/{unknown}/stats")
    assert resp.status == 404
    assert await resp.json() == {"error": "not_found", "mailing_id": unknown}
    deleted = new_id()
    await handle(pool, scheduled(deleted, ids(1)))
    await handle(pool, MailingDeleted(mailing_id=deleted, deleted_at=T2))
    assert (await client.get(f"/internal/v1/mailings/{deleted}/stats")).status == 404
    for bad in ("x", "0", "-1", "99999999999999999999"):
        resp = await client.get(f"/internal/v1/mailings/{bad}/stats")
        assert resp.status == 400, bad
        body = await resp.json()
        assert body["error"] == "invalid_parameter" and body["parameter"] == "mailing_id"


async def test_overview_sends_per_hour_are_24_zero_filled_hours(pool: asyncpg.Pool) -> None:
    now = datetime(2033, 1, 2, 15, 20, tzinfo=UTC)
    mailing, msgs = new_id(), ids(5)
    await handle(pool, scheduled(mailing, msgs, due=now))
    await handle(
        pool,
        delivered_at(mailing, {msgs[0]: now - timedelta(minutes=10)}),  # the current hour
        delivered_at(mailing, {msgs[1]: now - timedelta(hours=5)}),
        delivered_at(
            mailing, {msgs[2]: datetime(2033, 1, 1, 16, 0, tzinfo=UTC)}
        ),  # the oldest hour
        delivered_at(mailing, {msgs[3]: datetime(2033, 1, 1, 15, 59, tzinfo=UTC)}),  # too old
        final_failures(mailing, {msgs[4]: (now - timedelta(hours=5), "timeout")}),
    )
    body = await queries.overview(pool, now)
    hours = body["sends_per_hour"]
    assert len(hours) == 24
    assert hours[0]["hour"] == datetime(2033, 1, 1, 16, tzinfo=UTC)
    assert hours[-1]["hour"] == datetime(2033, 1, 2, 15, tzinfo=UTC)
    by_hour = {
        h["hour"]: (h["delivered"], h["failed"]) for h in hours if h["delivered"] or h["failed"]
    }
    assert by_hour == {
        datetime(2033, 1, 1, 16, tzinfo=UTC): (1, 0),
        datetime(2033, 1, 2, 10, tzinfo=UTC): (1, 1),
        datetime(2033, 1, 2, 15, tzinfo=UTC): (1, 0),
    }


async def test_overview_counts_and_its_http_shape(client: Client, pool: asyncpg.Pool) -> None:
    before = await (await client.get("/internal/v1/stats")).json()
    mailing, msgs = new_id(), ids(4)
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, delivered_at(mailing, {msgs[0]: datetime.now(UTC)}))
    await handle(pool, final_failures(mailing, {msgs[1]: (datetime.now(UTC), "timeout")}))
    resp = await client.get("/internal/v1/stats")
    assert resp.status == 200
    after = await resp.json()
    assert set(after) == {
        "clients", "mailings", "messages", "delivery_rate", "sends_per_hour", "segments_per_day"
    }  # fmt: skip
    assert len(after["segments_per_day"]) == 7
    assert after["segments_per_day"][-1]["day"] == datetime.now(UTC).date().isoformat()
    assert set(after["mailings"]) == {"scheduled", "running", "paused", "finished", "cancelled"}
    moved = {k: after["messages"][k] - before["messages"][k] for k in ("SC", "DL", "ND", "CA")}
    assert moved == {"SC": 2, "DL": 1, "ND": 0 + 1, "CA": 0}
    dl, nd = after["messages"]["DL"], after["messages"]["ND"]
    assert after["delivery_rate"] == round(dl / (dl + nd), 4)
    assert sum(after["mailings"].values()) == sum(before["mailings"].values()) + 1
    assert len(after["sends_per_hour"]) == 24
    current = after["sends_per_hour"][-1]
    assert current["hour"].endswith(":00:00Z")
    assert current["delivered"] >= 1 and current["failed"] >= 1


async def test_mailing_states_are_computed_at_query_time(pool: asyncpg.Pool) -> None:
    now = datetime(2034, 6, 1, 12, 0, tzinfo=UTC)
    hour, day = timedelta(hours=1), timedelta(days=1)
    before = (await queries.overview(pool, now))["mailings"]
    made = Counter[str]()

    async def mailing(expected: str, start: datetime, end: datetime, *extra: Event) -> None:
        m = getattr(extra[0], "mailing_id", None) if extra else new_id()
        assert m is not None
        await handle(pool, mailing_event(m, start, end))
        await handle(pool, scheduled(m, ids(1), due=start))
        for e in extra:
            await handle(pool, e)
        made[expected] += 1

    await mailing("scheduled", now + hour, now + day)
    await mailing("running", now - hour, now + day)
    await mailing("finished", now - day, now - hour)
    m = new_id()
    await mailing(
        "paused", now - hour, now + day, MailingPaused(mailing_id=m, paused_at=now - hour)
    )
    m = new_id()
    await mailing(
        "cancelled", now - hour, now + day, MailingCancelled(mailing_id=m, cancelled_at=now)
    )
    m, msgs = new_id(), ids(1)  # started, resolved, nothing left to send
    await handle(pool, mailing_event(m, now - hour, now + day))
    await handle(pool, scheduled(m, msgs, due=now - hour))
    await handle(pool, delivered_at(m, {msgs[0]: now - hour}))
    await handle(
        pool,
        MailingAudienceResolved(mailing_id=m, batch_id="r", recipients=1, resolved_at=now - day),
    )
    made["finished"] += 1
    after = (await queries.overview(pool, now))["mailings"]
    assert {k: after[k] - before[k] for k in after} == {
        k: made[k] for k in ("scheduled", "running", "paused", "finished", "cancelled")
    }
    # The SQL rule and the Python rule agree on every mailing in the database.
    rows = await pool.fetch(
        f"SELECT mailing_id, {queries.MAILING_STATE_SQL} AS state, datetime_start, datetime_end,"
        " paused, cancelled_at, resolved_at, scheduled_messages FROM reporter_mailings"
        " WHERE deleted_at IS NULL",
        now,
    )
    for r in rows:
        python = mailing_state(
            now,
            datetime_start=r["datetime_start"],
            datetime_end=r["datetime_end"],
            paused=r["paused"],
            cancelled=r["cancelled_at"] is not None,
            resolved=r["resolved_at"] is not None,
            scheduled_messages=r["scheduled_messages"],
        )
        assert r["state"] == python.value, r["mailing_id"]


async def test_the_gauges_show_the_overviews_figures(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(3)
    await handle(pool, mailing_event(mailing, datetime.now(UTC) - timedelta(hours=1),
                                     datetime.now(UTC) + timedelta(days=1)))  # fmt: skip
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, delivered_at(mailing, {msgs[0]: datetime.now(UTC)}))
    stop = asyncio.Event()
    task = asyncio.create_task(gauges.refresh_gauges(pool, stop, every=0.05))
    try:
        now = datetime.now(UTC)
        overview = await queries.overview(pool, now)

        def shown() -> tuple[dict[str, float | None], dict[str, float | None]]:
            return (
                {s: REGISTRY.get_sample_value("reporter_messages", {"status": s})
                 for s in ("SC", "DL", "ND", "CA")},
                {s: REGISTRY.get_sample_value("reporter_mailings", {"state": s})
                 for s in overview["mailings"]},
            )  # fmt: skip

        deadline = time.monotonic() + 10
        while shown() != (overview["messages"], overview["mailings"]):
            assert time.monotonic() < deadline, shown()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert REGISTRY.get_sample_value("reporter_mailings", {"state": "running"}) >= 1  # type: ignore[operator]
    assert REGISTRY.get_sample_value("reporter_messages", {"status": "WD"}) is None


MESSAGES = 100_000
PER_ENVELOPE = 200
ENVELOPES_PER_BATCH = 50


async def test_both_endpoints_answer_in_milliseconds_with_100k_messages(
    client: Client, pool: asyncpg.Pool
) -> None:
    """Timing reported, not asserted."""
    mailing, msgs = new_id(), ids(MESSAGES)
    start = datetime(2035, 2, 3, 8, 0, tzinfo=UTC)
    await handle(pool, mailing_event(mailing, start, start + timedelta(days=2)))
    chunks = [msgs[i : i + PER_ENVELOPE] for i in range(0, MESSAGES, PER_ENVELOPE)]
    reasons = ["HTTP 503", "timeout", "HTTP 400: invalid phone", "connection reset", "HTTP 429"]
    phases: list[list[Event]] = [
        [scheduled(mailing, chunk, due=start) for chunk in chunks],
        [
            failed(mailing, chunk, attempts=1, error=reasons[i % len(reasons)])
            for i, chunk in enumerate(chunks)
        ],
        [
            delivered_at(mailing, {m: start + timedelta(seconds=m % 60_000) for m in chunk}, 2)
            if i % 10
            else final_failures(
                mailing,
                {m: (start + timedelta(seconds=m % 60_000), reasons[m % 5]) for m in chunk},
                2,
            )
            for i, chunk in enumerate(chunks)
        ],
    ]
    for events in phases:
        for i in range(0, len(events), ENVELOPES_PER_BATCH):
            await handle(pool, *events[i : i + ENVELOPES_PER_BATCH])

    async def timed(path: str, runs: int = 50) -> tuple[float, float, dict[str, object]]:
        samples, body = [], {}
        for _ in range(runs):
            t = time.perf_counter()
            resp = await client.get(path)
            body = await resp.json()
            samples.append((time.perf_counter() - t) * 1000)
            assert resp.status == 200
        samples.sort()
        return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], body

    overall = await timed("/internal/v1/stats")
    one = await timed(f"/internal/v1/mailings/{mailing}/stats")
    body = one[2]
    assert body["messages"] == {"SC": 0, "DL": 90_000, "ND": 10_000, "CA": 0}
    assert body["attempts_total"] == 2 * MESSAGES
    assert len(body["sends_per_minute"]) == 1000  # type: ignore[arg-type]
    print(
        f"\nstats endpoints with {MESSAGES:,} projected messages (HTTP round trip, 50 runs):"
        f" /internal/v1/stats median {overall[0]:.2f} ms p95 {overall[1]:.2f} ms;"
        f" /internal/v1/mailings/{{id}}/stats median {one[0]:.2f} ms p95 {one[1]:.2f} ms"
        f" ({len(body['sends_per_minute'])} minute points)"  # type: ignore[arg-type]
    )
