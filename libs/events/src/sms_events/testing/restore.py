"""Disaster recovery as the README describes it, for the tests: back up the ``events`` table
alone with ``pg_dump`` and restore it with ``psql`` into another (migrated, empty) database."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

__all__ = ["restore_events"]


def restore_events(source_url: str, target_url: str) -> None:
    """Copy every row of ``events`` from ``source_url`` to ``target_url`` through a backup
    file, with the commands and options the README gives (triggers off while loading: the
    rows were appended once already)."""
    with tempfile.TemporaryDirectory() as tmp:
        backup = Path(tmp) / "events.sql"
        subprocess.run(["pg_dump", "--data-only", "--disable-triggers", "--table=events",
                        f"--file={backup}", source_url], check=True)  # fmt: skip
        subprocess.run(["psql", "--quiet", "--set=ON_ERROR_STOP=1", f"--file={backup}",
                        target_url], check=True, capture_output=True)  # fmt: skip
