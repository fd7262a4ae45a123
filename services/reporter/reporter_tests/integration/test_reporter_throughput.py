"""Throughput of the projection (reported, not asserted): 100,000 messages scheduled, then
delivered, in envelopes of 200 messages, 50 envelopes per batch (10,000 messages a commit).

Run ``.venv/bin/pytest -q -s
services/reporter/reporter_tests/integration/test_reporter_throughput.py``
to see the figures."""

from __future__ import annotations

import time

import asyncpg

from .reporter_support import counts, delivered, envelope, handle, ids, new_id, recount, scheduled

MESSAGES = 100_000
PER_ENVELOPE = 200
ENVELOPES_PER_BATCH = 50


async def test_projects_100k_messages_and_reports_the_rate(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(MESSAGES)
    chunks = [msgs[i : i + PER_ENVELOPE] for i in range(0, MESSAGES, PER_ENVELOPE)]
    rates = {}
    for phase, build in (("scheduled", scheduled), ("delivered", delivered)):
        envelopes = [envelope(build(mailing, chunk)) for chunk in chunks]
        started = time.perf_counter()
        for i in range(0, len(envelopes), ENVELOPES_PER_BATCH):
            await handle(pool, *envelopes[i : i + ENVELOPES_PER_BATCH])
        rates[phase] = MESSAGES / (time.perf_counter() - started)
    print(
        f"\nreporter projection: {MESSAGES} messages, {PER_ENVELOPE}/envelope, "
        f"{ENVELOPES_PER_BATCH} envelopes/batch: "
        + ", ".join(f"{phase} {rate:,.0f} msg/s" for phase, rate in rates.items())
    )
    expected = {
        "created_messages": MESSAGES,
        "scheduled_messages": 0,
        "delivered_messages": MESSAGES,
        "undelivered_messages": 0,
        "cancelled_messages": 0,
        "attempts_total": MESSAGES,
    }
    assert await counts(pool, mailing) == expected
    assert await recount(pool, mailing) == expected
