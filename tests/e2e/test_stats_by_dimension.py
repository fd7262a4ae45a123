"""Statistics by dimension through every service: a mailing to clients in two operator codes,
tags and time zones, with the provider rejecting some, shows each value's statuses exactly as
its messages ended (a client edited after scheduling stays in its old bucket), and delivery
latency percentiles, ordered, over every settled message."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx

from tests.e2e.e2e_support import (
    assert_counter,
    create_client,
    create_mailing,
    eventually,
    iso,
    messages,
    now,
    unique_tag,
)
from tests.e2e.system_support import System

GROUPS = (("911", "Europe/Moscow"), ("922", "Asia/Tokyo"))
PER_GROUP = 8


def _phone(code: str) -> str:
    return f"7{code}{random.randint(0, 9_999_999):07d}"  # digits 2-4: the operator code


def _buckets(stats: dict[str, Any], dimension: str) -> dict[str | None, dict[str, int]]:
    return {b["value"]: b["messages"] for b in stats["by_dimension"][dimension]}


def test_statuses_by_operator_tag_and_zone_and_latency_percentiles(
    system: System, provider: httpx.Client
) -> None:
    tags = (unique_tag(), unique_tag())
    with system.api() as api:
        clients: dict[int, tuple[str, str, str]] = {}  # id -> (code, tag, zone) when scheduled
        for (code, zone), tag in zip(GROUPS, tags, strict=True):
            for _ in range(PER_GROUP):
                c = create_client(api, phone=_phone(code), tag=tag, time_zone=zone)
                assert c["operator_code"] == code
                clients[c["id"]] = (code, tag, zone)
        total = len(clients)
        start = now() + timedelta(seconds=4)
        m = create_mailing(api, client_filter=f"{tags[0]}, {tags[1]}", datetime_start=iso(start))
        eventually(lambda: assert_counter(api, m["id"], "scheduled_messages", total), 30)
        # Edited once its message is scheduled: the message keeps the values it had then.
        moved = next(iter(clients))
        edit = api.patch(f"/api/v1/clients/{moved}/", json={"time_zone": "America/New_York"})
        assert edit.status_code == 200, edit.text
        provider.post("/_control", json={"reject_rate": 0.4, "seed": 14}).raise_for_status()

        def settled() -> dict[str, Any]:
            stats = dict(api.get(f"/api/v1/mailings/{m['id']}/stats/").json())
            assert stats["messages"]["DL"] + stats["messages"]["ND"] == total
            return stats

        stats = eventually(settled, 60)

        ended = {x["client_id"]: x["status"] for x in messages(api, m["id"])}
        assert len(ended) == total
        statuses = Counter(ended.values())
        assert statuses["ND"] > 0 and statuses["DL"] > 0, statuses  # the provider failed some
        for i, dimension in enumerate(("operator_code", "tag", "time_zone")):
            want: dict[str, Counter[str]] = {}
            for client_id, status in ended.items():
                want.setdefault(clients[client_id][i], Counter())[status] += 1
            got = _buckets(stats, dimension)
            assert set(got) == set(want), dimension
            for value, counts in want.items():
                assert got[value] == {s: counts[s] for s in ("SC", "DL", "ND", "CA")}, value
        assert "America/New_York" not in _buckets(stats, "time_zone")
        assert stats["by_dimension"]["unknown"] == {"SC": 0, "DL": 0, "ND": 0, "CA": 0}

        latency = stats["latency"]
        assert latency["settled"] == total
        figures = [latency[k] for k in ("p50_s", "p90_s", "p99_s", "max_s")]
        assert figures == sorted(figures) and figures[0] > 0
        # From the due time (the start) to the answer: seconds here, not minutes.
        assert latency["max_s"] < 60 and latency["resolution"] == 0.259
