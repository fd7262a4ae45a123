"""`make dashboard-png`: the Grafana dashboard rendered to docs/dashboard.png from its own panel
queries, answered by a real Prometheus that scraped a real run.

No Grafana server installs here from a package registry (Debian has none, PyPI's `grafana` is
an empty placeholder, npm has only its UI libraries), so this draws each panel of
deploy/grafana/dashboards/sms-platform.json with matplotlib, in the dashboard's own layout,
from the panel's PromQL evaluated by Prometheus (Debian's `prometheus` package) over a real
mailing: every service as a process, the fake provider failing 5% of calls and throttling
above a rate, so the retry, error and adaptive-rate panels have something to show.

    make dashboard-png                     # needs `prometheus` on PATH (apt install prometheus)
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sms_events.testing.environment import TestEnvironment
from sms_events.testing.processes import (
    SERVICES,
    ProcessGroup,
    free_port,
    system_env,
    wait_http_ok,
)

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "sms-platform.json"
API_KEY = "render-dashboard-key-not-a-secret-0000000"
TOKEN = "render-dashboard-provider-token"
SCRAPE_S = 1
ZONES = ["UTC", "Europe/Moscow", "Asia/Vladivostok", "America/New_York"]


def _prometheus_config(ports: dict[str, int]) -> str:
    jobs = "\n".join(
        f"  - job_name: {name}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']"
        for name, port in ports.items()
    )
    return f"global:\n  scrape_interval: {SCRAPE_S}s\nscrape_configs:\n{jobs}\n"


def _csv(n: int, tag: str) -> bytes:
    out = io.StringIO()
    out.write("phone,tag,time_zone\n")
    for i in range(n):
        out.write(f"7955{i:07d},{tag},{ZONES[i % len(ZONES)]}\n")
    return out.getvalue().encode()


def _run_mailing(gateway: str, clients: int) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=gateway, headers=headers, timeout=600) as api:
        api.post("/api/v1/clients/import", content=_csv(clients, "render"),
                 headers={"Content-Type": "text/csv"}).raise_for_status()  # fmt: skip
        now = datetime.now(UTC)
        end = now + timedelta(hours=1)
        created = api.post("/api/v1/mailings/", json={
            "datetime_start": now.isoformat(), "datetime_end": end.isoformat(),
            "text": "Dashboard render", "client_filter": "render"})  # fmt: skip
        created.raise_for_status()
        mailing_id = created.json()["id"]
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            body = api.get(f"/api/v1/mailings/{mailing_id}/").json()
            if body["delivered_messages"] + body["undelivered_messages"] >= clients:
                return
            time.sleep(2)
        raise SystemExit("the mailing did not finish within 15 minutes")


def _query(prom: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    expr = expr.replace("$service", ".*").replace("$__rate_interval", f"{4 * SCRAPE_S}s")
    params = {"query": expr, "start": start, "end": end, "step": SCRAPE_S}
    answer = httpx.get(f"{prom}/api/v1/query_range", params=params, timeout=60)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def _legend(template: str | None, labels: dict[str, str]) -> str:
    text = template or ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__")
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value).replace("{{ " + key + " }}", value)
    return text or "value"


def _draw(prom: str, start: float, end: float, output: Path) -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(24, height * 0.42))
    grid = fig.add_gridspec(height, 24, hspace=1.6, wspace=0.6, top=0.985, bottom=0.01)
    title = ("SMS platform: the Grafana dashboard's panels, queried from a real Prometheus "
             "that scraped a real mailing (rendered without Grafana)")  # fmt: skip
    fig.suptitle(title, fontsize=14, y=0.997)
    for panel in panels:
        pos = panel["gridPos"]
        ax = fig.add_subplot(grid[pos["y"] : pos["y"] + pos["h"], pos["x"] : pos["x"] + pos["w"]])
        if panel["type"] == "row":
            ax.axis("off")
            ax.text(0, 0.5, panel["title"], fontsize=13, weight="bold", va="center")
            continue
        ax.set_title(panel["title"], fontsize=9, loc="left")
        series = [
            (_legend(t.get("legendFormat"), s["metric"]), s["values"])
            for t in panel.get("targets", ())
            for s in _query(prom, t["expr"], start, end)
        ]
        if panel["type"] in ("stat", "bargauge"):
            ax.axis("off")
            shown = [(name, float(values[-1][1])) for name, values in series if values]
            text = "\n".join(f"{name}: {value:,.3g}" for name, value in shown[:4]) or "no data"
            ax.text(0.5, 0.45, text, ha="center", va="center", fontsize=11)
            continue
        for name, values in series[:8]:
            xs = [float(v[0]) - start for v in values]
            ys = [float(v[1]) for v in values]
            ax.plot(xs, ys, linewidth=1, label=name[:40])
        ax.tick_params(labelsize=7)
        ax.set_xlabel("seconds into the run", fontsize=7)
        if series:
            ax.legend(fontsize=6, loc="upper right")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=60, bbox_inches="tight")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--clients", type=int, default=20_000)
    args = parser.parse_args()
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("prometheus is not installed: apt install prometheus")
    env = TestEnvironment.create([s.module for s in SERVICES])
    ports = {s.name: free_port() for s in SERVICES} | {"fake-provider": free_port()}
    service_env = env.env_vars() | system_env(ports, api_key=API_KEY, provider_token=TOKEN) | {
        "FAKE_PROVIDER_LATENCY_MS": "20", "FAKE_PROVIDER_FAILURE_RATE": "0.05",
        "FAKE_PROVIDER_THROTTLE_RPS": "300", "LOG_LEVEL": "WARNING",
        "DISPATCH_RETRY_BASE_S": "1", "DISPATCH_RETRY_CAP_S": "5",
    }  # fmt: skip
    group = ProcessGroup(env=service_env, log_dir=ROOT / "var" / "render-logs")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "prometheus.yml"
        config.write_text(_prometheus_config({s.name: ports[s.name] for s in SERVICES}))
        prom_port = free_port()
        prometheus = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        prom = f"http://127.0.0.1:{prom_port}"
        try:
            group.start_module("fake-provider", "fake_provider")
            for spec in SERVICES:
                group.start_module(spec.name, spec.module)
            for spec in SERVICES:
                wait_http_ok(f"http://127.0.0.1:{ports[spec.name]}/readyz", 60, group)
            wait_http_ok(f"{prom}/-/ready", 60, group)
            start = time.time()
            _run_mailing(f"http://127.0.0.1:{ports['api-gateway']}", args.clients)
            time.sleep(10)  # the last scrapes after the mailing finished
            _draw(prom, start, time.time(), args.output)
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=30)
            group.stop_all(timeout=30)
            env.destroy()
    print(f"wrote {args.output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
