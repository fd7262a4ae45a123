"""The admin's server-side sessions in ``gateway_admin_sessions`` (migration gateway_0007): open
one at login, load it on every request (one primary-key lookup), close it at logout, revoke
every session of a subject. Rows are keyed by a SHA-256 of the cookie's random id, so the
table alone opens no session."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from gateway.admin.roles import SessionKind

__all__ = ["ActiveSubject", "StoredSession", "active_subjects", "close", "load", "open_session",
           "revoke_subject"]  # fmt: skip

SID_BYTES: Final = 32

_LOAD: Final = """
SELECT kind, claims, id_token, expires_at FROM gateway_admin_sessions
WHERE sid_hash = $1 AND revoked_at IS NULL AND expires_at > now()
"""
# Open sessions grouped by subject, the newest login first (the sessions page).
_ACTIVE: Final = """
SELECT subject, count(*) AS sessions, max(created_at) AS last_login,
       (array_agg(claims ORDER BY created_at DESC))[1] AS claims,
       (array_agg(kind ORDER BY created_at DESC))[1] AS kind
FROM gateway_admin_sessions
WHERE revoked_at IS NULL AND expires_at > now()
GROUP BY subject ORDER BY last_login DESC LIMIT $1
"""


@dataclass(frozen=True, slots=True)
class StoredSession:
    kind: SessionKind
    claims: Mapping[str, Any]
    id_token: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ActiveSubject:
    """A user with open sessions: their latest login's claims and how many are open."""

    subject: str
    kind: SessionKind
    claims: Mapping[str, Any]
    sessions: int
    last_login: datetime


def _hash(sid: str) -> bytes:
    return hashlib.sha256(sid.encode()).digest()


async def open_session(
    pool: asyncpg.Pool,
    kind: SessionKind,
    claims: Mapping[str, Any],
    id_token: str | None,
    max_age_s: int,
) -> str:
    """A new session's id (for the cookie). Deletes the expired rows on the way: logins are
    rare, and the index on ``expires_at`` makes it a short range scan."""
    sid = secrets.token_urlsafe(SID_BYTES)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM gateway_admin_sessions WHERE expires_at <= now()")
        await conn.execute(
            "INSERT INTO gateway_admin_sessions (sid_hash, kind, subject, claims, id_token, "
            "expires_at) VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
            _hash(sid), kind.value, str(claims["sub"]), dict(claims), id_token, float(max_age_s),
        )  # fmt: skip
    return sid


async def load(pool: asyncpg.Pool, sid: str) -> StoredSession | None:
    """The session ``sid`` names, unless it was closed, revoked or has expired."""
    row = await pool.fetchrow(_LOAD, _hash(sid))
    if row is None:
        return None
    return StoredSession(
        SessionKind(row["kind"]), row["claims"], row["id_token"], row["expires_at"]
    )


async def close(pool: asyncpg.Pool, sid: str) -> None:
    await pool.execute("DELETE FROM gateway_admin_sessions WHERE sid_hash = $1", _hash(sid))


async def revoke_subject(pool: asyncpg.Pool, subject: str) -> int:
    """Revoke every open session of ``subject`` (log them out everywhere); how many."""
    done = await pool.execute(
        "UPDATE gateway_admin_sessions SET revoked_at = now() "
        "WHERE subject = $1 AND revoked_at IS NULL AND expires_at > now()",
        subject,
    )
    return int(done.rsplit(" ", 1)[-1])


async def active_subjects(pool: asyncpg.Pool, limit: int) -> list[ActiveSubject]:
    rows = await pool.fetch(_ACTIVE, limit)
    return [
        ActiveSubject(
            r["subject"], SessionKind(r["kind"]), r["claims"], r["sessions"], r["last_login"]
        )
        for r in rows
    ]
