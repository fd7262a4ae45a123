"""`make bench`: import N clients, run one mailing to all of them against the fake provider with
20 ms latency, and print end-to-end throughput next to the bare-client ceiling.

Runs on its own database and queue names (never the development ones) and cleans up after.
Figures are printed, never asserted: speed is shown here, not in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from fake_provider.load import run_load
from sms_events.testing.environment import TestEnvironment
from sms_events.testing.processes import SERVICES, ProcessGroup, system_env, wait_http_ok

API_KEY = "bench-key"
TOKEN = "bench-provider-token"
PORTS = {"api-gateway": 18000, "scheduler": 18001, "dispatcher": 18002, "reporter": 18003,
         "fake-provider": 18010}  # fmt: skip


def _csv(n: int) -> bytes:
    out = io.StringIO()
    out.write("phone,tag,time_zone\n")
    zones = ["UTC", "Europe/Moscow", "Asia/Vladivostok", "America/New_York", "Asia/Kolkata"]
    for i in range(n):
        out.write(f"7{900 + i % 90:03d}{i:07d},bench,{zones[i % len(zones)]}\n")
    return out.getvalue().encode()


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait(predicate, timeout: float, what: str, every: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()) is not None:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--clients", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    n = args.clients

    env = TestEnvironment.create([s.module for s in SERVICES])
    service_env = (
        env.env_vars()
        | system_env(PORTS, api_key=API_KEY, provider_token=TOKEN)
        | {
            "FAKE_PROVIDER_LATENCY_MS": str(args.latency_ms),
            "DISPATCH_CONCURRENCY": str(args.concurrency),
            "LOG_LEVEL": "WARNING",
        }
    )
    logs = Path("var/bench-logs")
    group = ProcessGroup(env=service_env, log_dir=logs)
    try:
        group.start_module("fake-provider", "fake_provider")
        for spec in SERVICES:
            group.start_module(spec.name, spec.module)
        for port in PORTS.values():
            wait_http_ok(f"http://127.0.0.1:{port}/healthz", 60, group)
        return _run(env, group, n, args)
    finally:
        group.stop_all(timeout=30)
        env.destroy()


def _run(env: TestEnvironment, group: ProcessGroup, n: int, args: argparse.Namespace) -> int:
    gateway = f"http://127.0.0.1:{PORTS['api-gateway']}"
    provider_url = f"http://127.0.0.1:{PORTS['fake-provider']}"
    api = httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {API_KEY}"},
                       timeout=600)  # fmt: skip
    provider = httpx.Client(base_url=provider_url, timeout=120)
    db = psycopg.connect(env.database_url, autocommit=True)

    print(f"bench: {n:,} clients, provider latency {args.latency_ms:g} ms, "
          f"dispatcher concurrency {args.concurrency}")  # fmt: skip
    started = time.perf_counter()
    resp = api.post("/api/v1/clients/import", content=_csv(n),
                    headers={"Content-Type": "text/csv"})  # fmt: skip
    resp.raise_for_status()
    import_s = time.perf_counter() - started
    print(f"  import: {resp.json()['created']:,} created in {import_s:.1f} s "
          f"({n / import_s:,.0f} rows/s)")  # fmt: skip

    def scheduler_caught_up() -> int | None:
        row = db.execute("SELECT count(*) FROM scheduler_clients").fetchone()
        return 1 if row and row[0] >= n else None

    _wait(scheduler_caught_up, 600, "the scheduler to project every client")
    print(f"  client events projected by the scheduler after {time.perf_counter() - started:.1f} s")

    now = datetime.now(UTC)
    t0 = time.time()
    resp = api.post("/api/v1/mailings/", json={
        "datetime_start": now.isoformat(), "datetime_end": (now + timedelta(hours=2)).isoformat(),
        "text": "Benchmark message",
    })  # fmt: skip
    resp.raise_for_status()
    mailing_id = resp.json()["id"]

    def provider_done() -> dict | None:  # type: ignore[type-arg]
        info = provider.get("/_inspect").json()
        return info if info["unique_ids"] >= n else None

    info = _wait(provider_done, 1800, "the provider to receive every message", every=0.5)
    t_last = info["last_at"]
    e2e_s = t_last - t0

    def counters_exact() -> float | None:
        body = api.get(f"/api/v1/mailings/{mailing_id}/").json()
        return time.time() if body["delivered_messages"] == n else None

    t_exact = _wait(counters_exact, 600, "exact counters", every=0.05)

    dues = dict(db.execute(
        "SELECT message_id, extract(epoch FROM due_at) FROM scheduler_messages"
        " WHERE mailing_id = %s", (mailing_id,)
    ).fetchall())  # fmt: skip
    received = provider.get("/_inspect/messages").json()
    lags = sorted(received[str(m)]["times"][0] - float(due) for m, due in dues.items()
                  if str(m) in received)  # fmt: skip
    memory = {name: _peak_rss_mib(r.proc.pid) for name, r in group.running.items()}

    provider.post("/_reset")
    ceiling_s, statuses = asyncio.run(
        run_load(provider_url, TOKEN, n, args.concurrency, first_id=10**12)
    )
    e2e_rate = n / e2e_s
    ceiling_rate = n / ceiling_s

    print(f"  end to end (mailing created -> last provider receipt): {e2e_s:.1f} s, "
          f"{e2e_rate:,.0f} msg/s")  # fmt: skip
    print(f"  duplicates at the provider: {info['duplicates']}")
    print(f"  provider receipt - due time: p50 {statistics.median(lags):.2f} s, "
          f"p99 {lags[int(len(lags) * 0.99) - 1]:.2f} s")  # fmt: skip
    print(f"  counters exact {max(0.0, t_exact - t_last):.2f} s after the last receipt")
    print("  peak memory (VmHWM): " + ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items()))
    print(f"  ceiling (bare aiohttp client, same provider, concurrency {args.concurrency}): "
          f"{ceiling_rate:,.0f} req/s ({dict(statuses)})")  # fmt: skip
    print(f"  ratio end-to-end / ceiling: {e2e_rate / ceiling_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
