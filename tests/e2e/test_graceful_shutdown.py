"""SIGTERM to each service in turn in the middle of a mailing: each exits 0 after draining,
comes back, and the mailing ends with every message delivered exactly once.

The dispatcher holds up to DISPATCH_PREFETCH due batches (16 x 200 messages) when it is
stopped; at the rate limit here, sending them all would take 13 s, and past the drain time
(or the orchestrator's grace period) calls would be cut off unrecorded and sent again."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.e2e_support import create_mailing, eventually, mailing, messages, unique_tag
from tests.e2e.system_support import System

N = 4000
RATE = 250  # messages per second: the mailing lasts long enough to stop all four services
ORDER = ("dispatcher", "scheduler", "reporter", "api-gateway")

pytestmark = pytest.mark.service_env({"DISPATCH_RATE_LIMIT": str(RATE)})


def _import(api: httpx.Client, tag: str) -> None:
    rows = "".join(f"7903{i:07d},{tag},Europe/Moscow\n" for i in range(N))
    resp = api.post("/api/v1/clients/import", content=("phone,tag,time_zone\n" + rows).encode(),
                    headers={"Content-Type": "text/csv"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == N


def test_sigterm_to_each_service_mid_mailing_loses_and_repeats_nothing(system: System) -> None:
    tag = unique_tag()
    with system.api() as api, system.provider() as provider:
        _import(api, tag)
        provider.post("/_reset")
        provider.post("/_control", json={"latency_ms": 10})
        try:
            m = create_mailing(api, client_filter=tag)
            exits: dict[str, int | None] = {}
            took: dict[str, float] = {}
            for k, name in enumerate(ORDER, 1):
                # Stop each one while messages are being sent: a fifth more each time.
                def progressed(k: int = k) -> int:
                    seen = int(provider.get("/_inspect").json()["unique_ids"])
                    assert seen >= k * N // 6, seen
                    return seen

                seen = eventually(progressed, timeout=120, every=0.05)
                assert seen < N, f"the mailing finished before {name} was stopped: make it slower"
                started = time.monotonic()
                exits[name] = system.group.stop(name, timeout=60)
                took[name] = time.monotonic() - started
                system.start(name)
            # A graceful stop is a clean exit: 0, not a signal's status.
            assert exits == dict.fromkeys(ORDER, 0)
            # And a quick one: the dispatcher finishes the calls in flight and hands the rest
            # of its prefetched batches back, rather than sending them all at the rate limit.
            assert max(took.values()) < 10, took

            def all_delivered() -> None:
                got = mailing(api, m["id"])
                assert got["delivered_messages"] == N, got
                assert got["scheduled_messages"] == 0, got

            eventually(all_delivered, timeout=240, every=0.5)
            info = provider.get("/_inspect").json()
            assert info["unique_ids"] == N  # every msgId reached the provider
            # The dispatcher drains on SIGTERM: the sends in flight finish and are recorded
            # before it exits, so nothing is sent twice.
            assert info["duplicates"] == 0, info
            msgs = messages(api, m["id"])
            assert len(msgs) == len({x["id"] for x in msgs}) == N
            assert {x["status"] for x in msgs} == {"DL"}
            assert {x["attempts"] for x in msgs} == {1}
        finally:
            provider.post("/_control", json={"latency_ms": 0})
