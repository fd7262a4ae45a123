"""`make bench`: import N clients, send one mailing to all of them against the fake provider
with 20 ms latency, and print what a user sees next to the bare-client ceiling.

    make bench                                  # 100,000 clients
    make bench N=1000000                        # a million
    make bench REPLICAS=scheduler=2,dispatcher=3,reporter=2

Measured as a user works: the mailing is POSTed as soon as the import has answered. First a
1,000-recipient mailing shows how fast a small one starts. Runs on its own database and queue
names (never the development ones) and cleans up after. Figures are printed, never asserted:
speed is shown here, not in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from fake_provider.load import run_load
from sms_events.testing.environment import TestEnvironment
from sms_events.testing.processes import SERVICES, ProcessGroup, system_env, wait_http_ok

API_KEY = "bench-key-not-a-secret-but-long-enough-000"
TOKEN = "bench-provider-token"
PORTS = {"api-gateway": 18000, "scheduler": 18001, "dispatcher": 18002, "reporter": 18003,
         "fake-provider": 18010}  # fmt: skip
SMALL = 1_000
ZONES = ["UTC", "Europe/Moscow", "Asia/Vladivostok", "America/New_York", "Asia/Kolkata"]


def _csv(n: int, tag: str, prefix: int) -> bytes:
    out = io.StringIO()
    out.write("phone,tag,time_zone\n")
    for i in range(n):
        out.write(f"7{prefix + i // 10_000_000:03d}{i % 10_000_000:07d},{tag},{ZONES[i % 5]}\n")
    return out.getvalue().encode()


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _CpuMeter:
    """CPU seconds per component between two marks: each service, the PostgreSQL backends of
    the bench's own database, and the broker. A component's CPU per message does not depend on
    what else runs on the machine, unlike a rate: it shows where the platform's time goes."""

    def __init__(self, group: ProcessGroup, dsn: str) -> None:
        self._group, self._dsn = group, dsn

    def _pids(self) -> dict[str, list[int]]:
        pids = {name: [r.proc.pid] for name, r in self._group.running.items()}
        with psycopg.connect(self._dsn, autocommit=True) as db:
            rows = db.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchall()
        pids["postgresql"] = [r[0] for r in rows]
        beam = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                and _comm(int(p.name)) == "beam.smp"]  # fmt: skip
        pids["rabbitmq"] = beam
        return pids

    def mark(self) -> dict[str, dict[int, float]]:
        return {k: {p: _cpu_s(p) for p in v} for k, v in self._pids().items()}

    @staticmethod
    def per_message_ms(
        before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], n: int
    ) -> dict[str, float]:
        return {
            k: sum(cpu - before.get(k, {}).get(p, 0.0) for p, cpu in pids.items()) * 1000 / n
            for k, pids in after.items()
        }


class _WriteMeter:
    """What the bench's database wrote between two marks: rows inserted, updated and deleted
    per table, transactions committed and WAL bytes (the cluster's: the bench runs alone).
    Per message, it shows which tables the hot path's PostgreSQL time goes to."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    def mark(self) -> tuple[dict[str, int], int, int]:
        with psycopg.connect(self._dsn, autocommit=True) as db:
            db.execute("SELECT pg_stat_force_next_flush()")
            rows = db.execute(
                "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
            ).fetchall()
            commits, wal = db.execute(
                "SELECT xact_commit, pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_database"
                " WHERE datname = current_database()"
            ).fetchone() or (0, 0)
        return {str(r[0]): int(r[1]) for r in rows}, int(commits), int(wal)

    @staticmethod
    def report(before: tuple[dict[str, int], int, int], after: tuple[dict[str, int], int, int],
               n: int) -> str:  # fmt: skip
        rows = {t: (v - before[0].get(t, 0)) / n for t, v in after[0].items()}
        top = sorted(((v, t) for t, v in rows.items() if v >= 0.01), reverse=True)
        return (
            f"{sum(rows.values()):.2f} rows ("
            + ", ".join(f"{t} {v:.2f}" for v, t in top)
            + f"), {(after[1] - before[1]) / n:.3f} commits,"
            f" {(after[2] - before[2]) / n:,.0f} bytes of WAL"
        )


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _replicas(text: str) -> dict[str, int]:
    """``scheduler=2,dispatcher=3`` -> counts per service (1 for the others)."""
    counts = {spec.name: 1 for spec in SERVICES}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count = item.partition("=")
        if name not in counts or not count.isdigit() or int(count) < 1:
            raise SystemExit(f"REPLICAS: {item!r} is not service=count ({', '.join(counts)})")
        counts[name] = int(count)
    return counts


class _LongestTransaction(threading.Thread):
    """Samples pg_stat_activity every 100 ms: the longest open transaction of the services."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self._db = psycopg.connect(dsn, autocommit=True)
        self.longest_s = 0.0
        self.what = ""
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.1):
            row = self._db.execute(
                "SELECT extract(epoch FROM now() - xact_start), left(query, 80)"
                " FROM pg_stat_activity WHERE datname = current_database()"
                " AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend' ORDER BY xact_start LIMIT 1"
            ).fetchone()
            if row and row[0] is not None and float(row[0]) > self.longest_s:
                self.longest_s, self.what = float(row[0]), str(row[1])

    def stop(self) -> None:
        self._done.set()
        self.join()
        self._db.close()


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
    parser.add_argument("--replicas", default="", help="e.g. scheduler=2,dispatcher=3")
    args = parser.parse_args()
    replicas = _replicas(args.replicas)

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
        health = [f"http://127.0.0.1:{PORTS['fake-provider']}/healthz"]
        for spec in SERVICES:
            port_var, _ = spec.health_url_env
            for i in range(replicas[spec.name]):
                port = PORTS[spec.name] + 100 * i
                name = spec.name if i == 0 else f"{spec.name}-{i + 1}"
                group.start_module(name, spec.module, {port_var: str(port)})
                health.append(f"http://127.0.0.1:{port}/readyz")
        for url in health:
            wait_http_ok(url, 60, group)
        return _run(env, group, args, replicas)
    finally:
        group.stop_all(timeout=30)
        env.destroy()


def _run(
    env: TestEnvironment, group: ProcessGroup, args: argparse.Namespace, replicas: dict[str, int]
) -> int:
    n = args.clients
    gateway = f"http://127.0.0.1:{PORTS['api-gateway']}"
    provider_url = f"http://127.0.0.1:{PORTS['fake-provider']}"
    api = httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {API_KEY}"},
                       timeout=1800)  # fmt: skip
    provider = httpx.Client(base_url=provider_url, timeout=300)
    shown = ", ".join(f"{k} x{v}" for k, v in replicas.items())
    print(f"bench: {n:,} clients, provider latency {args.latency_ms:g} ms, "
          f"dispatcher concurrency {args.concurrency}, {shown}")  # fmt: skip

    _small_mailing(api, provider)
    longest = _LongestTransaction(env.database_url)
    longest.start()
    started = time.perf_counter()
    resp = api.post("/api/v1/clients/import", content=_csv(n, "bench", 100),
                    headers={"Content-Type": "text/csv"})  # fmt: skip
    resp.raise_for_status()
    import_s = time.perf_counter() - started
    print(f"  import: {resp.json()['created']:,} created in {import_s:.1f} s "
          f"({n / import_s:,.0f} rows/s)")  # fmt: skip

    provider.post("/_reset")
    writes = _WriteMeter(env.database_url)
    writes_from = writes.mark()
    mailing_id, t0, post_s = _post_mailing(api, "bench")
    print(f"  POST /mailings/ answered in {post_s * 1000:.0f} ms, right after the import")

    first = _wait(lambda: provider.get("/_inspect").json()["first_at"], 1800, "a first receipt",
                  every=0.01)  # fmt: skip
    cpu = _CpuMeter(group, env.database_url)
    cpu_from, sent_from = cpu.mark(), provider.get("/_inspect").json()["unique_ids"]
    print(f"  first receipt {first - t0:.2f} s after the POST")

    def provider_done() -> dict | None:  # type: ignore[type-arg]
        info = provider.get("/_inspect").json()
        return info if info["unique_ids"] >= n else None

    info = _wait(provider_done, 7200, "the provider to receive every message", every=0.5)
    cpu_ms = _CpuMeter.per_message_ms(cpu_from, cpu.mark(), n - sent_from)
    t_last = info["last_at"]
    e2e_s = t_last - t0

    def counters_exact() -> float | None:
        body = api.get(f"/api/v1/mailings/{mailing_id}/").json()
        return time.time() if body["delivered_messages"] == n else None

    t_exact = _wait(counters_exact, 600, "exact counters", every=0.05)
    written = _WriteMeter.report(writes_from, writes.mark(), n)
    longest.stop()
    stats_ms = _stats_latency(api, mailing_id)
    memory = {name: _peak_rss_mib(r.proc.pid) for name, r in group.running.items()}

    provider.post("/_reset")
    load_cpu = _cpu_s(os.getpid()), _cpu_s(group.running["fake-provider"].proc.pid)
    ceiling_s, statuses = asyncio.run(
        run_load(provider_url, TOKEN, n, args.concurrency, first_id=10**12)
    )
    load_ms = [
        (_cpu_s(p) - was) * 1000 / n
        for p, was in zip(
            (os.getpid(), group.running["fake-provider"].proc.pid), load_cpu, strict=True
        )
    ]
    e2e_rate = n / e2e_s
    ceiling_rate = n / ceiling_s

    print(f"  end to end (POST -> last provider receipt): {e2e_s:.1f} s, {e2e_rate:,.0f} msg/s")
    print(f"  dispatch phase (first -> last receipt): {n / (t_last - first):,.0f} msg/s")
    print(f"  duplicates at the provider: {info['duplicates']}")
    print(f"  counters exact {max(0.0, t_exact - t_last):.2f} s after the last receipt")
    print(f"  stats endpoints: overall {stats_ms[0]:.1f} ms, this mailing {stats_ms[1]:.1f} ms"
          " (median of 20)")  # fmt: skip
    print(f"  longest transaction observed: {longest.longest_s:.2f} s ({longest.what!r})")
    print("  peak memory (VmHWM): " + ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items()))
    print(
        "  CPU per message while sending: "
        + ", ".join(f"{k} {v:.3f} ms" for k, v in cpu_ms.items())
        + f"; total {sum(cpu_ms.values()):.3f} ms"
    )
    print(f"  PostgreSQL writes per message (POST -> exact counters): {written}")
    print(f"  ceiling (bare aiohttp client, same provider, concurrency {args.concurrency}): "
          f"{ceiling_rate:,.0f} req/s ({dict(statuses)}); CPU per request: client "
          f"{load_ms[0]:.3f} ms, provider {load_ms[1]:.3f} ms")  # fmt: skip
    print(f"  ratio end-to-end / ceiling: {e2e_rate / ceiling_rate:.2f}")
    return 0


def _post_mailing(api: httpx.Client, tag: str) -> tuple[int, float, float]:
    now = datetime.now(UTC)
    t0 = time.time()
    resp = api.post("/api/v1/mailings/", json={
        "datetime_start": now.isoformat(), "datetime_end": (now + timedelta(hours=4)).isoformat(),
        "text": "Benchmark message", "client_filter": tag,
    })  # fmt: skip
    resp.raise_for_status()
    return int(resp.json()["id"]), t0, time.time() - t0


def _small_mailing(api: httpx.Client, provider: httpx.Client) -> None:
    resp = api.post("/api/v1/clients/import", content=_csv(SMALL, "small", 900),
                    headers={"Content-Type": "text/csv"})  # fmt: skip
    resp.raise_for_status()
    provider.post("/_reset")
    _, t0, _ = _post_mailing(api, "small")
    first = _wait(lambda: provider.get("/_inspect").json()["first_at"], 120, "a first receipt",
                  every=0.005)  # fmt: skip

    def done() -> float | None:
        info = provider.get("/_inspect").json()
        return info["last_at"] if info["unique_ids"] >= SMALL else None

    last = _wait(done, 300, "the small mailing", every=0.05)
    print(f"  small mailing ({SMALL:,} recipients): first receipt {(first - t0) * 1000:.0f} ms "
          f"after the POST, last {last - t0:.2f} s")  # fmt: skip


def _stats_latency(api: httpx.Client, mailing_id: int) -> tuple[float, float]:
    def median_ms(path: str) -> float:
        times = []
        for _ in range(20):
            t = time.perf_counter()
            api.get(path).raise_for_status()
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times)

    return median_ms("/api/v1/stats/"), median_ms(f"/api/v1/mailings/{mailing_id}/stats/")


if __name__ == "__main__":
    sys.exit(main())
