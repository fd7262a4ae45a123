"""Random event sequences, cut into random batches: after every commit the counters equal a
GROUP BY over reporter_messages, and the same events in another order end in the same
counts."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import timedelta

import asyncpg
import pytest

from sms_events.contracts import Event, MessagesRescheduled, ScheduledMessage
from sms_events.envelope import Envelope

from .reporter_support import (
    T0,
    assert_breakdown_consistent,
    breakdown,
    cancelled,
    client_values,
    counts,
    delivered,
    envelope,
    failed,
    handle,
    new_id,
    recount,
    scheduled,
    undelivered,
    withdrawn,
)

Step = Callable[[int, Sequence[int]], Event]


def rescheduled(mailing_id: int, message_ids: Sequence[int]) -> Event:
    return MessagesRescheduled(
        mailing_id=mailing_id,
        batch_id=f"r{new_id()}",
        messages=[
            ScheduledMessage(message_id=m, client_id=1, due_at=T0 + timedelta(hours=1))
            for m in message_ids
        ],
    )


def random_steps(
    rnd: random.Random, n_messages: int, n_events: int
) -> list[tuple[str, list[int], int]]:
    """(kind, message indexes, attempts) triples; scheduled comes first more often than not."""
    kinds = ["scheduled"] * 3 + ["rescheduled", "withdrawn", "cancelled", "delivered"]
    kinds += ["failed"] * 2 + ["undelivered"]
    steps = []
    for _ in range(n_events):
        picked = rnd.sample(range(n_messages), rnd.randint(1, min(6, n_messages)))
        steps.append((rnd.choice(kinds), picked, rnd.randint(1, 4)))
    return steps


def materialise(steps: list[tuple[str, list[int], int]], mailing: int, base: int) -> list[Event]:
    out: list[Event] = []
    for kind, picked, attempts in steps:
        msgs = [base + i for i in picked]
        if kind == "scheduled":
            out.append(scheduled(mailing, msgs, client=lambda m: client_values(m - base)))
        elif kind == "rescheduled":
            out.append(rescheduled(mailing, msgs))
        elif kind == "withdrawn":
            out.append(withdrawn(mailing, msgs))
        elif kind == "cancelled":
            out.append(cancelled(mailing, msgs))
        elif kind == "delivered":
            sent = T0 + timedelta(seconds=7**attempts)  # latencies in a few buckets
            out.append(delivered(mailing, msgs, attempt=attempts, sent=sent))
        elif kind == "failed":
            out.append(failed(mailing, msgs, attempts=attempts, error=f"e{attempts}"))
        else:
            out.append(undelivered(mailing, msgs, attempts=attempts))
    return out


async def play(
    pool: asyncpg.Pool, rnd: random.Random, envelopes: list[Envelope], mailing: int
) -> None:
    rest = envelopes
    while rest:
        size = rnd.randint(1, 8)
        batch, rest = rest[:size], rest[size:]
        await handle(pool, *batch)
        assert await counts(pool, mailing) == await recount(pool, mailing)
        await assert_breakdown_consistent(pool, mailing)


@pytest.mark.parametrize("seed", range(12))
async def test_random_sequences_keep_counters_equal_to_a_recount(
    pool: asyncpg.Pool, seed: int
) -> None:
    rnd = random.Random(seed)
    steps = random_steps(rnd, n_messages=rnd.randint(1, 25), n_events=rnd.randint(1, 40))
    in_order, shuffled = new_id(), new_id()
    base_a, base_b = new_id(), new_id()
    events_a = [envelope(e) for e in materialise(steps, in_order, base_a)]
    events_b = [envelope(e) for e in materialise(steps, shuffled, base_b)]
    # A redelivery by a consumer without the processed_events guard changes nothing either.
    events_b += rnd.sample(events_b, k=len(events_b) // 3)
    rnd.shuffle(events_b)
    await play(pool, rnd, events_a, in_order)
    await play(pool, rnd, events_b, shuffled)
    # Withdrawn is a tombstone and every status moves only up, so order does not matter.
    assert await counts(pool, in_order) == await counts(pool, shuffled)
    assert await breakdown(pool, in_order) == await breakdown(pool, shuffled)
    final_a = await pool.fetch(
        "SELECT message_id - $2 AS i, status, attempts FROM reporter_messages"
        " WHERE mailing_id = $1 ORDER BY 1",
        in_order,
        base_a,
    )
    final_b = await pool.fetch(
        "SELECT message_id - $2 AS i, status, attempts FROM reporter_messages"
        " WHERE mailing_id = $1 ORDER BY 1",
        shuffled,
        base_b,
    )
    assert [tuple(r) for r in final_a] == [tuple(r) for r in final_b]
