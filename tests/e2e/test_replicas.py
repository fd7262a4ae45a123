"""Scale out is safe: one mailing through 2 schedulers, 3 dispatchers and 2 reporters, each a
process of its own, with one replica of each killed (kill -9) midway and restarted.

What is shared, and by what: relay leadership (an advisory lock), the scheduler's queue (one
active consumer, the others stand by: per-stream order), the timer (FOR UPDATE SKIP LOCKED),
the dispatchers' claims and the aggregate rate limit (PostgreSQL), the reporters' projection
(an order-independent fold). Every message must be delivered, the counters exact, the rate
limit held in aggregate, and the only duplicates the calls on the wire in the killed
dispatcher (at most its DISPATCH_CONCURRENCY)."""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest

from sms_events.testing.processes import SERVICES, free_port, wait_http_ok
from tests.e2e.e2e_support import create_mailing, eventually, import_clients, mailing, unique_tag
from tests.e2e.system_support import System

N = 3_000
RATE = 300  # messages per second, all dispatchers together: the mailing takes ~10 s
CONCURRENCY = 20  # per dispatcher; the bound on duplicates after one is killed
REPLICAS = {"scheduler": 2, "dispatcher": 3, "reporter": 2}

pytestmark = pytest.mark.service_env(
    {
        "DISPATCH_RATE_LIMIT": str(RATE),
        "DISPATCH_CONCURRENCY": str(CONCURRENCY),
        "DISPATCH_CLAIM_LEASE_S": "6",
        "DATABASE_POOL_MAX": "5",  # 8 processes share PostgreSQL's 100 connections with others
    }
)


def _start_replica(system: System, service: str, n: int) -> str:
    spec = next(s for s in SERVICES if s.name == service)
    name = f"{service}-{n}"
    port = free_port()
    system.group.start_module(name, spec.module, {spec.health_url_env[0]: str(port)})
    wait_http_ok(f"http://127.0.0.1:{port}/readyz", 60, system.group)
    return name


def _busiest_second(times: list[float]) -> int:
    """The most receipts within any one-second span."""
    times = sorted(times)
    most, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 1.0:
            lo += 1
        most = max(most, hi - lo + 1)
    return most


def test_one_mailing_through_replicas_survives_one_of_each_killed(system: System) -> None:
    extra = {
        service: [_start_replica(system, service, i) for i in range(2, count + 1)]
        for service, count in REPLICAS.items()
    }
    tag = unique_tag()
    with system.api() as api, system.provider() as provider:
        import_clients(api, tag, N, 903)
        provider.post("/_reset")
        provider.post("/_control", json={"latency_ms": 20})
        m = create_mailing(api, client_filter=tag)
        eventually(lambda: _at_least(provider, N // 3), timeout=120, every=0.05)

        # One of each, mid-mailing: the scheduler that started first (likely the active
        # consumer and the relay leader), a dispatcher with calls on the wire, a reporter.
        victims = ["scheduler", extra["dispatcher"][0], extra["reporter"][0]]
        for name in victims:
            system.group.kill9(name)
        killed_at = provider.get("/_inspect").json()["unique_ids"]
        assert killed_at < N, "the mailing finished before the kills: make it slower"
        for name in victims:  # dead on purpose: no longer watched as running
            system.group.running.pop(name)
        system.start("scheduler")
        for service, name in (("dispatcher", victims[1]), ("reporter", victims[2])):
            _start_replica(system, service, int(name.rsplit("-", 1)[1]))

        def exact() -> dict[str, int]:
            got = mailing(api, m["id"])
            assert got["delivered_messages"] == N, got
            assert got["scheduled_messages"] == 0 and got["undelivered_messages"] == 0, got
            return got

        eventually(exact, timeout=240, every=0.5)
        info = provider.get("/_inspect").json()
        journal = provider.get("/_inspect/messages").json()
        times = [t for entry in journal.values() for t in entry["times"]]
        span = max(times) - min(times)
        figures = {
            "sent_before_kills": killed_at,
            "duplicates": info["duplicates"],
            "rate_overall": round(len(times) / span, 1),
            "busiest_second": _busiest_second(times),
            "rate_limit": RATE,
        }
        with psycopg.connect(system.env.database_url) as conn:
            reasons = conn.execute(
                "SELECT m->>'error', count(*) FROM events, jsonb_array_elements(data->'messages') m"
                " WHERE type = 'messages.attempt_failed' GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
        figures["handed_back"] = dict(reasons)
        print(f"\nreplica_figures {json.dumps(figures)}")
        assert info["unique_ids"] == N
        assert info["duplicates"] <= CONCURRENCY, figures
        assert len(times) / span <= RATE * 1.05, figures
        # The limit is counted per time slot of the shared bucket: a second that straddles two
        # slots may hold a little more than the limit, never a burst.
        assert figures["busiest_second"] <= RATE * 1.5, figures


def _at_least(provider: httpx.Client, n: int) -> None:
    assert provider.get("/_inspect").json()["unique_ids"] >= n
