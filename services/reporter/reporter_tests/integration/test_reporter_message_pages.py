"""Keyset pages of a mailing's messages through the internal API, on projected messages: walks
forward and back see every message once and in order, the totals are the counters (equal to a
recount), and a deep page is an index scan that stops after the page (EXPLAIN on PostgreSQL).

Run ``.venv/bin/pytest -q -s
services/reporter/reporter_tests/integration/test_reporter_message_pages.py``
to see the timings of the first page and of a page 900 pages deep."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from reporter.domain import Status
from reporter.message_pages import Newer, Older, PageNumber, other_side_query, page_query

from .reporter_support import (
    Client,
    cancelled,
    delivered,
    failed,
    handle,
    new_id,
    scheduled,
    undelivered,
    withdrawn,
)

STATUSES = (None, "SC", "DL", "ND", "CA")
CHUNK = 500  # messages per event


def _chunks(items: Sequence[int]) -> list[Sequence[int]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


async def project_mailing(
    pool: asyncpg.Pool, mailing_id: int, message_ids: list[int], *, withdraw: bool = True
) -> None:
    """Schedule every message, then give each a fate by its index: 4 in 10 delivered, 1 failed
    for good, 1 cancelled, 1 withdrawn (its row goes; if ``withdraw``, else still scheduled),
    3 still scheduled (one after a failed attempt)."""
    fates: dict[int, list[int]] = {k: [] for k in range(10)}
    for i, message_id in enumerate(message_ids):
        fates[i % 10].append(message_id)
    for chunk in _chunks(message_ids):
        await handle(pool, scheduled(mailing_id, chunk))
    for kinds, build in (
        ((0, 1, 2, 3), delivered),
        ((4,), undelivered),
        ((5,), cancelled),
        ((6,) if withdraw else (), withdrawn),
        ((7,), failed),
    ):
        chosen = [m for k in kinds for m in fates[k]]
        for chunk in _chunks(chosen):
            await handle(pool, build(mailing_id, chunk))


async def truth(pool: asyncpg.Pool, mailing_id: int, status: str | None) -> list[int]:
    """The dumbest correct answer: every id the filter selects, newest first, and the count."""
    rows = await pool.fetch(
        "SELECT message_id FROM reporter_messages WHERE mailing_id = $1"
        " AND ($2::text IS NULL OR status = $2) ORDER BY message_id DESC",
        mailing_id,
        status,
    )
    return [r["message_id"] for r in rows]


async def get_page(client: Client, mailing_id: int, **query: Any) -> dict[str, Any]:
    params = {k: str(v) for k, v in query.items() if v is not None}
    resp = await client.get(f"/internal/v1/mailings/{mailing_id}/messages", params=params)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def ids_of(page: dict[str, Any]) -> list[int]:
    return [m["id"] for m in page["results"]]


async def walk(
    client: Client, mailing_id: int, status: str | None, size: int
) -> tuple[list[list[int]], list[list[int]], set[int]]:
    """Pages from the first by next_before to the end, then back by previous_after; the counts
    every page reported."""
    page = await get_page(client, mailing_id, status=status, page_size=size)
    forward, counts = [ids_of(page)], {page["count"]}
    while page["next_before"] is not None:
        page = await get_page(
            client, mailing_id, status=status, page_size=size, before=page["next_before"]
        )
        forward.append(ids_of(page))
        counts.add(page["count"])
    backward = [forward[-1]]
    while page["previous_after"] is not None:
        page = await get_page(
            client, mailing_id, status=status, page_size=size, after=page["previous_after"]
        )
        backward.append(ids_of(page))
        counts.add(page["count"])
    return forward, backward, counts


@pytest.fixture(scope="module")
async def mailing(pool: asyncpg.Pool) -> tuple[int, list[int]]:
    """3,000 messages with gaps between their ids, and a neighbour mailing whose ids fall in
    the gaps (a keyset must keep to its own mailing)."""
    mailing_id, neighbour, base = new_id(), new_id(), new_id()
    message_ids = [base + 3 * i for i in range(3000)]
    await project_mailing(pool, mailing_id, message_ids)
    await project_mailing(pool, neighbour, [m + 1 for m in message_ids[:1000]])
    return mailing_id, message_ids


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("size", [100, 7])
async def test_walking_forward_and_back_sees_every_message_once_in_order(
    client: Client, pool: asyncpg.Pool, mailing: tuple[int, list[int]], status: str | None,
    size: int,
) -> None:  # fmt: skip
    mailing_id, _ = mailing
    expected = await truth(pool, mailing_id, status)
    assert len(expected) > 2 * size
    forward, backward, counts = await walk(client, mailing_id, status, size)
    assert [m for page in forward for m in page] == expected
    assert all(len(page) == size for page in forward[:-1]) and 0 < len(forward[-1]) <= size
    assert list(reversed(backward)) == forward  # the same pages, back to the first one
    assert counts == {len(expected)}


async def test_the_totals_are_the_counters_and_equal_a_recount(
    client: Client, pool: asyncpg.Pool, mailing: tuple[int, list[int]]
) -> None:
    mailing_id, message_ids = mailing
    recount = {s: len(await truth(pool, mailing_id, s)) for s in STATUSES}
    assert recount[None] == 2700  # the withdrawn tenth is gone
    assert [recount[s] for s in ("SC", "DL", "ND", "CA")] == [900, 1200, 300, 300]
    for status, n in recount.items():
        for query in ({}, {"page": 3}, {"before": message_ids[1500]}, {"after": 0}):
            assert (await get_page(client, mailing_id, status=status, **query))["count"] == n


async def test_a_page_jump_links_to_its_neighbours_by_id(
    client: Client, pool: asyncpg.Pool, mailing: tuple[int, list[int]]
) -> None:
    mailing_id, _ = mailing
    expected = await truth(pool, mailing_id, "DL")
    third = await get_page(client, mailing_id, status="DL", page_size=50, page=3)
    assert ids_of(third) == expected[100:150]
    assert (third["next_before"], third["previous_after"]) == (expected[149], expected[100])
    following = await get_page(client, mailing_id, status="DL", page_size=50, before=expected[149])
    assert ids_of(following) == expected[150:200]
    back = await get_page(client, mailing_id, status="DL", page_size=50, after=expected[100])
    assert ids_of(back) == expected[50:100]
    first = await get_page(client, mailing_id, status="DL", page_size=50)
    assert first["previous_after"] is None and first["next_before"] == expected[49]
    last = await get_page(client, mailing_id, status="DL", page_size=50, page=24)
    assert ids_of(last) == expected[1150:] and last["next_before"] is None


async def test_a_neighbour_emptied_since_the_link_was_made_points_back(
    client: Client, pool: asyncpg.Pool
) -> None:
    mailing_id, base = new_id(), new_id()
    message_ids = [base + 10 * i for i in range(6)]
    await handle(pool, scheduled(mailing_id, message_ids))
    first = await get_page(client, mailing_id, status="SC", page_size=2)
    assert ids_of(first) == message_ids[:3:-1] and first["next_before"] == message_ids[4]
    await handle(pool, delivered(mailing_id, message_ids[:4]))  # every older one leaves SC
    gone = await get_page(client, mailing_id, status="SC", before=first["next_before"])
    assert (gone["count"], gone["results"], gone["next_before"]) == (2, [], None)
    back = await get_page(client, mailing_id, status="SC", after=gone["previous_after"])
    assert ids_of(back) == message_ids[:3:-1] and back["previous_after"] is None
    beyond = await get_page(client, mailing_id, after=message_ids[-1])
    assert (beyond["results"], beyond["previous_after"]) == ([], None)
    again = await get_page(client, mailing_id, before=beyond["next_before"], page_size=6)
    assert ids_of(again) == message_ids[::-1]


# --- a 100,000-message mailing: the plans and the timings ----------------------------------------

BIG = 100_000
SIZE = 100
DEPTH = 900  # pages


@pytest.fixture(scope="module")
async def big(pool: asyncpg.Pool) -> tuple[int, list[int]]:
    mailing_id, base = new_id(), new_id()
    message_ids = list(range(base, base + BIG))
    await project_mailing(pool, mailing_id, message_ids, withdraw=False)
    await pool.execute("ANALYZE reporter_messages")  # what autovacuum does on a live table
    return mailing_id, message_ids


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in plan_nodes(child))]


async def explain(
    conn: asyncpg.Connection, sql: str, args: Sequence[Any], *, generic: bool
) -> dict[str, Any]:
    """EXPLAIN ANALYZE of ``sql``: as asyncpg's first runs plan it (the arguments known), or
    as the generic plan PostgreSQL may switch a prepared statement to after five runs."""
    options = "ANALYZE, BUFFERS, FORMAT JSON"
    if not generic:
        raw = await conn.fetchval(f"EXPLAIN ({options}) {sql}", *args)
    else:
        name = f"q{new_id()}"
        await conn.execute(f"PREPARE {name} AS {sql}")
        literals = ", ".join(f"'{a}'" if isinstance(a, str) else str(a) for a in args)
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        try:
            raw = await conn.fetchval(f"EXPLAIN ({options}) EXECUTE {name}({literals})")
        finally:
            await conn.execute("RESET plan_cache_mode")
            await conn.execute(f"DEALLOCATE {name}")
    # The pool's codec may have decoded the json already.
    plan: dict[str, Any] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    return plan


def blocks(node: dict[str, Any]) -> int:
    return int(node["Shared Hit Blocks"] + node["Shared Read Blocks"])


# A page of 101 rows touches a few index pages and the heap pages of its rows; reading the
# mailing up to the page would touch hundreds (the OFFSET plan below: thousands).
MOST_BLOCKS = 40


def assert_reads_at_most(plan: dict[str, Any], most_rows: int, what: str) -> None:
    """No scan of the table, and no scan reading more than ``most_rows`` rows."""
    nodes = plan_nodes(plan)
    shape = [what, *(f"{n['Node Type']} {n.get('Index Name', '')}" for n in nodes)]
    assert not any("Seq Scan" in k or "Bitmap" in k for k in shape), shape
    for scan in (n for n in nodes if "Index Name" in n):
        read = scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0)
        assert read <= most_rows, (shape, read)


def assert_walks_the_index(plan: dict[str, Any], index: str, what: str) -> None:
    """A Limit straight over the mailing's index (the index gives the order, nothing sorts),
    reading a few blocks."""
    nodes = plan_nodes(plan)
    shape = [what, *(f"{n['Node Type']} {n.get('Index Name', '')}" for n in nodes)]
    assert [n["Node Type"] for n in nodes] in (
        ["Limit", "Index Scan"],
        ["Limit", "Index Only Scan"],
    ), shape
    assert nodes[1]["Index Name"] == index, shape
    assert blocks(nodes[1]) <= MOST_BLOCKS, (shape, blocks(nodes[1]))


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("status", [None, Status.DELIVERED, Status.SCHEDULED, Status.CANCELLED])
async def test_a_deep_page_is_an_index_scan_that_stops_after_the_page(
    pool: asyncpg.Pool, big: tuple[int, list[int]], status: Status | None, generic: bool
) -> None:
    """On a mailing holding most of the table (where the planner would rather walk the
    primary key), a page 900 pages deep and its probe read the mailing's index from the
    boundary and stop: no Sort, no OFFSET, a few blocks.

    At the ends of the list (nothing older than the oldest message, nothing newer than the
    newest) the planner may instead take the few messages of any mailing beyond the boundary
    from the primary key and sort them, when the statistics say they are few: never more than
    those, and never the mailing's own messages on the near side."""
    mailing_id, message_ids = big
    expected = await truth(pool, mailing_id, None if status is None else status.value)
    index = "reporter_messages_by_mailing" + ("" if status is None else "_status")
    deep = expected[len(expected) * 9 // 10]  # 900 pages of 100 deep without a filter
    async with pool.acquire() as conn:
        for position in (Older(deep), Newer(deep)):
            page, probe = await explain_both(conn, mailing_id, status, position, generic)
            assert page["Actual Rows"] == SIZE + 1
            assert_walks_the_index(page, index, f"page {position}")
            assert_walks_the_index(probe, index, f"probe {position}")
        for position, side in ((Older(message_ids[0]), "<"), (Newer(message_ids[-1]), ">")):
            others: int = await conn.fetchval(
                f"SELECT count(*) FROM reporter_messages WHERE message_id {side} $1",
                position.than,
            )
            page, probe = await explain_both(conn, mailing_id, status, position, generic)
            assert_reads_at_most(page, SIZE + 1 + others, f"page {position}")
            assert_reads_at_most(probe, 1 + others, f"probe {position}")


async def explain_both(
    conn: asyncpg.Connection,
    mailing_id: int,
    status: Status | None,
    position: Older | Newer,
    generic: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The plans of the page at ``position`` and of its probe."""
    sql, args = page_query(mailing_id, status, position, SIZE)
    assert "OFFSET" not in sql
    page = await explain(conn, sql, args, generic=generic)
    sql, args = other_side_query(mailing_id, status, position)
    return page, await explain(conn, sql, args, generic=generic)


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.2f} ms"


async def test_timings_of_the_first_and_a_deep_page(
    client: Client, pool: asyncpg.Pool, big: tuple[int, list[int]]
) -> None:
    """Printed for the record, not asserted: the first page, the page 900 pages deep reached
    by its cursor (?before=) and the same page by number (OFFSET), median of 31 requests."""
    mailing_id, _ = big
    expected = await truth(pool, mailing_id, None)
    number = DEPTH + 1
    queries: dict[str, dict[str, Any]] = {
        "first page": {},
        f"page {number} by cursor": {"before": expected[DEPTH * SIZE - 1]},
        f"page {number} by OFFSET": {"page": number},
    }
    timings: dict[str, list[float]] = {name: [] for name in queries}
    for _ in range(31):
        for name, query in queries.items():
            started = time.perf_counter()
            page = await get_page(client, mailing_id, page_size=SIZE, **query)
            timings[name].append(time.perf_counter() - started)
            assert page["count"] == len(expected)
    deep = await get_page(client, mailing_id, page_size=SIZE, **queries[f"page {number} by cursor"])
    assert ids_of(deep) == expected[DEPTH * SIZE : (DEPTH + 1) * SIZE]
    async with pool.acquire() as conn:
        plans = {
            name: await explain(conn, *page_query(mailing_id, None, position, SIZE), generic=False)
            for name, position in (
                ("cursor", Older(expected[DEPTH * SIZE - 1])),
                ("OFFSET", PageNumber(number)),
            )
        }
    read = {name: (plan_nodes(p)[-1]["Actual Rows"], blocks(p)) for name, p in plans.items()}
    print(
        f"\nmessage pages of a {BIG:,}-message mailing, {SIZE} a page, through the reporter's"
        " API (median of 31): "
        + ", ".join(f"{name} {_median_ms(samples)}" for name, samples in timings.items())
        + "; rows read, blocks: "
        + ", ".join(f"{name} {rows:,}, {n:,}" for name, (rows, n) in read.items())
    )
