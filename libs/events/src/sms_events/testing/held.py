"""Write transactions left open on purpose, in this database or another one of the cluster: what
must not hold back the readers of the event store (see sms_events.store)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from uuid import uuid4

import psycopg

__all__ = ["scratch_database", "write_held_open"]


def _with_db(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the cluster of ``admin_url``, dropped afterwards; its DSN."""
    name = f"sms_scratch_{uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def write_held_open(dsn: str) -> Iterator[int]:
    """A transaction that inserted a row into a table of its own (no event table) and stays
    open, idle, until the block ends, then rolls back. Yields its transaction id."""
    table = f"held_write_{uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (n int)")
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(f"INSERT INTO {table} VALUES (1)")
                row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
                assert row is not None
                yield int(row[0])
        finally:
            conn.execute(f"DROP TABLE {table}")
