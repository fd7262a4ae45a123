"""Versioned SQL migrations (yoyo), safe to run from several services starting at once."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import psycopg
from yoyo import get_backend, read_migrations

__all__ = ["apply_migrations", "apply_migrations_async", "main", "migration_dirs"]

# Any constant works; it only has to be the same for every process migrating this database.
_ADVISORY_LOCK_KEY = 0x5E5_0001


def migration_dirs(*packages: str) -> list[Path]:
    """The ``migrations`` folder of each named package (the event store's is always first)."""
    names = ["sms_events", *[p for p in packages if p != "sms_events"]]
    return [Path(str(resources.files(name) / "migrations")) for name in names]


def _yoyo_url(dsn: str) -> str:
    scheme, _, rest = dsn.partition("://")
    return f"postgresql+psycopg://{rest}" if scheme.startswith("postgres") else dsn


def apply_migrations(dsn: str, dirs: Iterable[Path]) -> list[str]:
    """Apply every pending migration from ``dirs``; returns the ids it applied.

    yoyo's own lock is a row in a table, which a process killed mid-migration leaves behind.
    A session-level advisory lock is released by PostgreSQL when its connection dies, so it
    serialises concurrent starts; while holding it nobody else can be migrating, which makes
    clearing a stale yoyo lock row safe.
    """
    with psycopg.connect(dsn, autocommit=True) as guard:
        guard.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            backend = get_backend(_yoyo_url(dsn))
            try:
                backend.break_lock()
                migrations = read_migrations(*[str(d) for d in dirs])
                pending = backend.to_apply(migrations)
                with backend.lock():
                    backend.apply_migrations(pending)
                return [m.id for m in pending]
            finally:
                # yoyo never closes its connection: left to the garbage collector it holds a
                # server slot meanwhile and raises ResourceWarning (an error under pytest).
                backend.connection.close()
        finally:
            guard.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))


async def apply_migrations_async(dsn: str, *packages: str) -> list[str]:
    """``apply_migrations`` for the named packages, off the event loop."""
    return await asyncio.to_thread(apply_migrations, dsn, migration_dirs(*packages))


def main() -> None:
    from sms_events.settings import PostgresSettings

    parser = argparse.ArgumentParser(description="Apply SQL migrations")
    parser.add_argument("packages", nargs="*", help="service packages whose migrations to apply")
    args = parser.parse_args()
    applied = apply_migrations(PostgresSettings().database_url, migration_dirs(*args.packages))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


if __name__ == "__main__":
    main()
