"""smsctl against the real stack: import a CSV with progress, run a mailing and watch it end,
pause/resume/cancel, statistics; every command as the real `smsctl` process."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from smsctl import Client, ImportJob
from tests.e2e.system_support import API_KEY, System

SMSCTL = Path(sys.executable).with_name("smsctl")
CLIENTS = 1500


def _smsctl(system: System, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SMSCTL_URL": system.gateway_url, "SMSCTL_KEY": API_KEY, "COLUMNS": "200"}
    return subprocess.run(
        [str(SMSCTL), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _csv(path: Path, tag: str, first: int, count: int, bad_line: bool = False) -> Path:
    rows = [f"7{first + i:010d},{tag},Europe/Moscow" for i in range(count)]
    if bad_line:
        rows.append("12345,bad,UTC")
    path.write_text("phone,tag,time_zone\n" + "\n".join(rows) + "\n")
    return path


def test_import_reports_counts_and_the_rejected_lines(system: System, tmp_path: Path) -> None:
    csv = _csv(tmp_path / "clients.csv", "smsctl-a", 9_000_000_000, CLIENTS, bad_line=True)

    result = _smsctl(system, "clients", "import", str(csv))

    assert result.returncode == 1, result.stderr  # a rejected line is an error for scripts
    assert f"created {CLIENTS}, updated 0, unchanged 0, rejected 1" in result.stdout
    assert f"line {CLIENTS + 2}:" in result.stdout and "phone" in result.stdout
    # It ran as a background job, followed to the end: both bars' last frames are there.
    assert re.search(r"import job http://\S+/api/v1/clients/import/jobs/[0-9a-f-]{36}: succeeded",
                     result.stdout), result.stdout  # fmt: skip
    assert "upload" in result.stdout
    assert f"{CLIENTS + 2} lines · {CLIENTS} created · 0 updated · 1 rejected" in result.stdout


def test_import_follows_the_job_through_its_progress(system: System, tmp_path: Path) -> None:
    csv = _csv(tmp_path / "job.csv", "smsctl-j", 9_050_000_000, 12_000)
    size = csv.stat().st_size
    uploaded: list[int] = []
    seen: list[ImportJob] = []

    with Client(system.gateway_url, API_KEY) as client:
        started = client.start_import(csv, uploaded.append)
        assert isinstance(started, ImportJob)
        job = client.follow_import(started, seen.append, interval=0.05)

    assert sum(uploaded) == size
    assert started.bytes_total == size and started.url.startswith(system.gateway_url)
    assert (job.state, job.error, job.bytes_read, job.rows_read) == (
        "succeeded",
        None,
        size,
        12_001,
    )
    assert job.result().created == 12_000
    # The reports only ever grow, and the counts of each are consistent with the bytes read.
    for earlier, later in itertools.pairwise(seen):
        assert later.bytes_read >= earlier.bytes_read
        assert later.created >= earlier.created and later.rows_read >= earlier.rows_read


def test_import_progress_counts_every_byte_sent(system: System, tmp_path: Path) -> None:
    csv = _csv(tmp_path / "more.csv", "smsctl-b", 9_100_000_000, 3000)
    seen: list[int] = []

    with Client(system.gateway_url, API_KEY) as client:
        result = client.import_csv(csv, seen.append)

    assert result.created == 3000 and result.rejected == 0
    assert len(seen) > 1 and sum(seen) == csv.stat().st_size


def test_clients_list_and_create(system: System) -> None:
    created = _smsctl(system, "clients", "create", "79200000001", "--tag", "smsctl-c")
    assert created.returncode == 0, created.stderr
    assert re.search(r"client \d+ created", created.stdout)

    listed = _smsctl(system, "clients", "list", "--page-size", "5")
    assert listed.returncode == 0, listed.stderr
    assert "79200000001" in listed.stdout and "smsctl-c" in listed.stdout

    refused = _smsctl(system, "clients", "create", "123")
    assert refused.returncode == 1 and "HTTP 400" in refused.stderr


def test_a_mailing_is_created_and_watched_to_the_end(system: System, tmp_path: Path) -> None:
    _csv(tmp_path / "audience.csv", "smsctl-d", 9_200_000_000, 200)
    assert _smsctl(system, "clients", "import", str(tmp_path / "audience.csv")).returncode == 0
    now = datetime.now(UTC)
    created = _smsctl(
        system, "mailings", "create", "--text", "Hello from smsctl",
        "--start", _iso(now - timedelta(minutes=1)), "--end", _iso(now + timedelta(hours=1)),
        "--client-filter", "smsctl-d",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    mailing_id = re.search(r"mailing (\d+) created", created.stdout)[1]  # type: ignore[index]

    watched = _smsctl(
        system, "mailings", "watch", mailing_id, "--interval", "0.2", "--timeout", "90"
    )

    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert f"mailing {mailing_id} finished: 200 delivered, 0 undelivered" in watched.stdout
    assert "200/200" in watched.stdout  # the progress bar's last frame

    stats = _smsctl(system, "stats", mailing_id)
    assert stats.returncode == 0, stats.stderr
    assert "delivery_rate" in stats.stdout or "delivered" in stats.stdout
    overall = _smsctl(system, "stats")
    assert overall.returncode == 0 and "clients" in overall.stdout


def test_a_mailing_is_forecast_before_it_is_created(system: System, tmp_path: Path) -> None:
    _csv(tmp_path / "forecast.csv", "smsctl-f", 9_300_000_000, 30)
    assert _smsctl(system, "clients", "import", str(tmp_path / "forecast.csv")).returncode == 0
    with system.api() as api:
        mailings_before = api.get("/api/v1/mailings/").json()["count"]
    now = datetime.now(UTC)
    forecast = _smsctl(
        system, "mailings", "preview", "--text", "Hello from smsctl",
        "--start", _iso(now + timedelta(hours=1)), "--end", _iso(now + timedelta(hours=2)),
        "--client-filter", "smsctl-f",
    )  # fmt: skip
    assert forecast.returncode == 0, forecast.stderr
    assert "audience 30 · unsendable 0 · GSM-7, 17 characters, 1 segment(s)" in forecast.stdout
    assert "Messages leaving per hour" in forecast.stdout
    with system.api() as api:  # a forecast stores nothing
        assert api.get("/api/v1/mailings/").json()["count"] == mailings_before


def test_pause_resume_and_cancel(system: System) -> None:
    later = datetime.now(UTC) + timedelta(days=1)
    created = _smsctl(
        system, "mailings", "create", "--text", "Later",
        "--start", _iso(later), "--end", _iso(later + timedelta(hours=1)),
    )  # fmt: skip
    mailing_id = re.search(r"mailing (\d+) created", created.stdout)[1]  # type: ignore[index]

    for command, state in (("pause", "paused"), ("resume", "scheduled"), ("cancel", "cancelled")):
        result = _smsctl(system, "mailings", command, mailing_id)
        assert result.returncode == 0, result.stderr
        assert f"mailing {mailing_id}: {state}" in result.stdout

    refused = _smsctl(system, "mailings", "resume", mailing_id)
    assert refused.returncode == 1 and "HTTP 400" in refused.stderr
    watched = _smsctl(system, "mailings", "watch", mailing_id)
    assert watched.returncode == 0 and "cancelled" in watched.stdout


def test_without_a_key_it_says_how_to_set_one(system: System) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SMSCTL_KEY"}
    result = subprocess.run(
        [str(SMSCTL), "--url", system.gateway_url, "stats"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "SMSCTL_KEY" in result.stderr
