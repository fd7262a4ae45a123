"""PostgreSQL and RabbitMQ outages in the middle of a mailing: every service rides them out.

The services reach PostgreSQL and RabbitMQ through TCP proxies (``through_proxies``). Once a
quarter of the mailing has reached the provider, a proxy resets every open connection and
refuses new ones for a while, then accepts again. No service is restarted: each must notice,
keep retrying and reconnect by itself, and the mailing must end with every message delivered,
the counters exact, nothing dead-lettered, and no more duplicates at the provider than the
dispatcher had calls in flight (DISPATCH_CONCURRENCY).

The provider answers slowly and the dispatcher sends few at a time, so the mailing lasts
long enough to be hit in its middle; the scheduler hands few messages over at once, so events
keep flowing through both the database and the broker while the outage lasts.

Each scenario prints one ``outage_figures`` line (run with ``-s`` to see them): connections
reset, what was sent before and during the outage, the gateway's answer to a read while the
outage lasted (503 at once without the database), how long after the proxies were restored
the services were all ready, the provider got a request, and the mailing was complete, the
longest silence at the provider, and the duplicates.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.e2e_support import (
    counters,
    create_mailing,
    eventually,
    import_clients,
    mailing,
    messages,
    unique_tag,
)
from tests.e2e.system_support import System
from tests.support.tcp_proxy import TcpProxy

N = 2500
CONCURRENCY = 20  # DISPATCH_CONCURRENCY: also the bound on duplicates
LATENCY_MS = 100  # at most CONCURRENCY / latency = 200 messages a second: ~13 s of sending
SERVICES = ("api-gateway", "scheduler", "dispatcher", "reporter")

pytestmark = [
    pytest.mark.through_proxies,
    pytest.mark.service_env(
        {"DISPATCH_CONCURRENCY": str(CONCURRENCY), "SCHEDULER_MAX_IN_FLIGHT": "400"}
    ),
]


@dataclass
class Figures:
    scenario: str
    outage_s: float
    connections_reset: dict[str, int]
    sent_before: int  # distinct messages at the provider when the outage began
    gateway_during: tuple[int, float]  # a read from the gateway's database: status, seconds
    requests_during: int  # provider requests while it lasted
    ready_after_s: float  # restored -> every service's /readyz answers 200
    provider_after_s: float | None  # restored -> first provider request (None: none after)
    completed_after_s: float  # restored -> counters exact at the gateway
    longest_silence_s: float  # longest gap between provider requests from outage start on
    duplicates: int  # provider requests beyond the first per message
    duplicate_ids: int
    attempts_total: int  # the mailing's provider attempts, as the reporter counts them


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("target", "seconds", "prefix"),
    [("postgres", 15, 911), ("rabbitmq", 15, 912), ("both", 60, 913)],
    ids=["postgres-15s", "rabbitmq-15s", "both-60s"],
)
def test_an_outage_mid_mailing_loses_nothing(
    system: System, target: str, seconds: float, prefix: int
) -> None:
    proxies = {
        "postgres": [system.through.database],
        "rabbitmq": [system.through.broker],
        "both": [system.through.database, system.through.broker],
    }[target]
    tag = unique_tag()
    with system.api() as api, system.provider() as provider:
        import_clients(api, tag, N, prefix)
        provider.post("/_reset")
        provider.post("/_control", json={"latency_ms": LATENCY_MS})
        try:
            m = create_mailing(api, client_filter=tag)
            eventually(lambda: _sent_at_least(provider, N // 4), timeout=120, every=0.05)
            figures = _outage(system, provider, proxies, f"{target}-{seconds:g}s", seconds)

            def complete() -> dict[str, Any]:
                got = mailing(api, m["id"])
                assert counters(got) == {
                    "clients_count": N, "scheduled_messages": 0, "created_messages": N,
                    "delivered_messages": N, "undelivered_messages": 0, "cancelled_messages": 0,
                }, counters(got)  # fmt: skip
                return got

            eventually(complete, timeout=300, every=0.25)
            figures.completed_after_s = round(time.time() - _restored(proxies), 2)
            stats = eventually(lambda: _stats(api, m["id"]), timeout=30, every=0.5)
            figures.attempts_total = stats["attempts_total"]
            _from_journal(figures, provider, proxies)
            print(f"\noutage_figures {json.dumps(asdict(figures))}")
        finally:
            provider.post("/_control", json={"latency_ms": 0})

        # Without the database the gateway says so at once (503), rather than hanging.
        database_down = system.through.database in proxies
        assert figures.gateway_during[0] == (503 if database_down else 200), figures
        assert figures.gateway_during[1] < 5, figures
        msgs = messages(api, m["id"])
        assert len(msgs) == len({x["id"] for x in msgs}) == N
        assert {x["status"] for x in msgs} == {"DL"}
        info = provider.get("/_inspect").json()
        assert info["unique_ids"] == N, info  # every message reached the provider
        assert _dead_lettered(system) == 0
        # Last, so that a run failing only here is told apart: a duplicate is a call in flight
        # when the outage began whose outcome could not be recorded.
        assert info["duplicates"] <= CONCURRENCY, f"too many duplicates: {asdict(figures)}"


def _sent_at_least(provider: httpx.Client, n: int) -> int:
    seen = int(provider.get("/_inspect").json()["unique_ids"])
    assert seen >= n, seen
    return seen


def _outage(
    system: System, provider: httpx.Client, proxies: list[TcpProxy], name: str, seconds: float
) -> Figures:
    """Cut the proxies for ``seconds``; returns the figures known by the time every service
    is ready again."""
    with contextlib.ExitStack() as stack:
        outages = [stack.enter_context(p.outage()) for p in proxies]
        sent_before = int(provider.get("/_inspect").json()["unique_ids"])
        assert sent_before < N, "the mailing finished before the outage: make it slower"
        gateway_during = _read_clients(system)
        time.sleep(seconds - (time.time() - outages[0].began))
    restored = _restored(proxies)
    eventually(lambda: _all_ready(system), timeout=120, every=0.1)
    return Figures(
        scenario=name,
        outage_s=round(max(o.seconds for o in outages), 1),
        connections_reset={p.name: o.reset for p, o in zip(proxies, outages, strict=True)},
        sent_before=sent_before,
        gateway_during=gateway_during,
        requests_during=0,
        ready_after_s=round(time.time() - restored, 2),
        provider_after_s=None,
        completed_after_s=0.0,
        longest_silence_s=0.0,
        duplicates=0,
        duplicate_ids=0,
        attempts_total=0,
    )


def _read_clients(system: System) -> tuple[int, float]:
    """A read from the gateway's own database: its status and how long it took."""
    started = time.monotonic()
    with system.api() as api:
        status = api.get("/api/v1/clients/", params={"page_size": 1}).status_code
    return status, round(time.monotonic() - started, 2)


def _restored(proxies: list[TcpProxy]) -> float:
    ends = [p.outages[-1].ended for p in proxies]
    assert all(e is not None for e in ends)
    return max(e for e in ends if e is not None)


def _all_ready(system: System) -> None:
    for service in SERVICES:
        resp = httpx.get(f"{system.url(service)}/readyz", timeout=5)
        assert resp.status_code == 200, (service, resp.text)


def _stats(api: httpx.Client, mailing_id: int) -> dict[str, Any]:
    resp = api.get(f"/api/v1/mailings/{mailing_id}/stats/")
    assert resp.status_code == 200, resp.text
    body = dict(resp.json())
    assert body["messages"] == {"SC": 0, "DL": N, "ND": 0, "CA": 0}, body["messages"]
    return body


def _from_journal(figures: Figures, provider: httpx.Client, proxies: list[TcpProxy]) -> None:
    """Fill in the figures read from the provider's journal (its clock is this machine's)."""
    began = min(p.outages[-1].began for p in proxies)
    restored = _restored(proxies)
    journal = provider.get("/_inspect/messages").json()
    times = sorted(t for entry in journal.values() for t in entry["times"])
    info = provider.get("/_inspect").json()
    figures.duplicates = info["duplicates"]
    figures.duplicate_ids = info["duplicate_ids"]
    figures.requests_during = sum(1 for t in times if began <= t < restored)
    after = [t for t in times if t >= restored]
    figures.provider_after_s = round(after[0] - restored, 2) if after else None
    since = [began, *(t for t in times if t >= began)]
    figures.longest_silence_s = round(
        max((b - a for a, b in itertools.pairwise(since)), default=0), 2
    )


def _dead_lettered(system: System) -> float:
    total = 0.0
    for service in SERVICES:
        text = httpx.get(f"{system.url(service)}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "sms_consumer_dead_lettered_total":
                    total += sample.value
    return total
