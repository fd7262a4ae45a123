"""Migrations: services starting at once on a fresh database apply each migration once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from sms_events.migrate import apply_migrations, migration_dirs
from sms_events.testing import environment


@pytest.fixture
def fresh_database(test_env: environment.TestEnvironment) -> Iterator[str]:
    """A throwaway empty database on the test server, dropped afterwards."""
    name = f"sms_migrate_{uuid4().hex[:10]}"
    with psycopg.connect(test_env.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = test_env.admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(test_env.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def extra_migrations(tmp_path: Path) -> Path:
    """Two migrations after the event store's; the first is slow, so concurrent runs overlap,
    and neither can run twice without leaving a trace (a failure or a second row)."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "zz_0001_slow.sql").write_text(
        "-- depends: events_0001_event_store\n"
        "DO $$ BEGIN PERFORM pg_sleep(0.3); END $$;\n"
        "CREATE TABLE migration_probe (applied_by text);\n"
    )
    (folder / "zz_0002_row.sql").write_text(
        "-- depends: zz_0001_slow\nINSERT INTO migration_probe VALUES (current_user);\n"
    )
    return folder


def _state(dsn: str) -> tuple[list[str], int]:
    with psycopg.connect(dsn) as conn:
        ids = [r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_migration").fetchall()]
        probe = conn.execute("SELECT count(*) FROM migration_probe").fetchone()
    return sorted(ids), int(probe[0]) if probe else 0


_ALL = [
    "events_0001_event_store",
    "events_0002_announced_appenders",
    "events_0003_processed_events_pruning",
    "events_0004_audit",
    "zz_0001_slow",
    "zz_0002_row",
]


def test_two_threads_migrating_a_fresh_database_apply_each_migration_once(
    fresh_database: str, extra_migrations: Path
) -> None:
    dirs = [*migration_dirs(), extra_migrations]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: apply_migrations(fresh_database, dirs), range(2)))

    assert sorted(m for applied in results for m in applied) == _ALL
    assert _state(fresh_database) == (_ALL, 1)
    assert apply_migrations(fresh_database, dirs) == []  # and again: nothing to do


def test_two_processes_migrating_a_fresh_database_apply_each_migration_once(
    fresh_database: str, extra_migrations: Path
) -> None:
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from sms_events.migrate import apply_migrations, migration_dirs\n"
        "dirs = [*migration_dirs(), Path(sys.argv[2])]\n"
        "print(json.dumps(apply_migrations(sys.argv[1], dirs)))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, fresh_database, str(extra_migrations)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0]
    assert sorted(m for out in outputs for m in json.loads(out.splitlines()[-1])) == _ALL
    assert _state(fresh_database) == (_ALL, 1)


def test_a_stale_lock_left_by_a_killed_migrator_does_not_block_the_next_one(
    fresh_database: str,
) -> None:
    apply_migrations(fresh_database, migration_dirs())
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 999999)")

    assert apply_migrations(fresh_database, migration_dirs()) == []


def test_the_migrate_command_applies_the_event_store(fresh_database: str, tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("sms-migrate")

    result = subprocess.run(
        [str(command)],
        env={"DATABASE_URL": fresh_database, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,  # no .env file to pick up
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.strip() == (
        "applied 4 migration(s): events_0001_event_store, events_0002_announced_appenders,"
        " events_0003_processed_events_pruning, events_0004_audit"
    )
