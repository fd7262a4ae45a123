"""The stored answers of Idempotency-Keys (``gateway_idempotency``): lock, find, save, prune."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import asyncpg

from gateway.idempotency.rules import Stored
from sms_events.db import Connection

__all__ = ["find", "prune_expired", "save", "try_lock"]

# Second key: a hash of owner and key. Two keys sharing a hash only make one wait for the
# other's answer (a 409 and a retry), never share an answer: the row is looked up by the key.
_LOCK_CLASS: Final = 0x67770003


async def try_lock(conn: Connection, owner: str, key: str) -> bool:
    """Take the key's lock until the transaction ends, if nobody holds it. An advisory lock
    writes nothing, so it gives the transaction no id (``gateway.clients.commands`` needs that)."""
    return bool(
        await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock($1, hashtext($2 || E'\\n' || $3))",
            _LOCK_CLASS,
            owner,
            key,
        )
    )


async def find(
    conn: Connection | asyncpg.Pool, owner: str, key: str, ttl: timedelta
) -> Stored | None:
    """The key's answer, unless it expired (an expired row waits for pruning)."""
    row = await conn.fetchrow(
        """
        SELECT request_hash, status, headers, body FROM gateway_idempotency
        WHERE key_owner = $1 AND idem_key = $2 AND created_at > now() - $3::interval
        """,
        owner,
        key,
        ttl,
    )
    return Stored(**dict(row)) if row else None


async def save(
    conn: Connection, owner: str, key: str, method: str, path: str, answer: Stored
) -> None:
    """Keep ``answer`` for the key. Called under the key's lock after ``find`` found nothing,
    so a row already there has expired and is replaced."""
    await conn.execute(
        """
        INSERT INTO gateway_idempotency AS i
            (key_owner, idem_key, request_hash, method, path, status, headers, body)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (key_owner, idem_key) DO UPDATE SET
            request_hash = EXCLUDED.request_hash, method = EXCLUDED.method,
            path = EXCLUDED.path, status = EXCLUDED.status, headers = EXCLUDED.headers,
            body = EXCLUDED.body, created_at = now()
        """,
        owner,
        key,
        answer.request_hash,
        method,
        path,
        answer.status,
        dict(answer.headers),
        answer.body,
    )


async def prune_expired(pool: asyncpg.Pool, ttl: timedelta, batch: int) -> int:
    """Delete at most ``batch`` expired answers, oldest first, in one short transaction; the
    number deleted. Rows another pruner (another replica) holds are skipped, not waited for."""
    status = await pool.execute(
        """
        DELETE FROM gateway_idempotency WHERE (key_owner, idem_key) IN (
            SELECT key_owner, idem_key FROM gateway_idempotency
            WHERE created_at <= now() - $1::interval
            ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
        )
        """,
        ttl,
        batch,
    )
    return int(status.split()[-1])
