"""Consumers forget the ids of events they handled once those are older than the retention."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import asyncpg

from sms_events.consumer import prune_processed


async def test_only_ids_older_than_the_retention_are_forgotten_and_only_the_consumers_own(
    pool: asyncpg.Pool,
) -> None:
    mine, other = f"c-{uuid4().hex}", f"c-{uuid4().hex}"
    old = [uuid4() for _ in range(12)]
    recent = [uuid4() for _ in range(3)]
    await pool.execute(
        "INSERT INTO processed_events (consumer, event_id, processed_at)"
        " SELECT $1, unnest($2::uuid[]), now() - interval '8 days'",
        mine,
        old,
    )
    await pool.execute(
        "INSERT INTO processed_events (consumer, event_id) SELECT $1, unnest($2::uuid[])",
        mine,
        recent,
    )
    await pool.execute(
        "INSERT INTO processed_events (consumer, event_id, processed_at)"
        " SELECT $1, unnest($2::uuid[]), now() - interval '8 days'",
        other,
        old,
    )
    # Small chunks: the loop must go on until a chunk comes back short.
    assert await prune_processed(pool, mine, timedelta(days=7), chunk=5) == len(old)
    kept = await pool.fetch("SELECT consumer, event_id FROM processed_events"
                            " WHERE consumer = ANY($1)", [mine, other])  # fmt: skip
    assert sorted((r["consumer"], r["event_id"]) for r in kept) == sorted(
        [(mine, e) for e in recent] + [(other, e) for e in old]
    )
