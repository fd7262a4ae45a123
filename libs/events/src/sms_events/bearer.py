"""A shared bearer token checked in constant time (the reporter's internal API)."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["bearer_header", "bearer_matches", "is_loopback"]

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def bearer_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def bearer_matches(authorization: str | None, token: str) -> bool:
    """True when ``authorization`` is ``Bearer <token>``. Digests of equal length are compared,
    so the time taken says nothing about how much of the token was right, nor its length."""
    presented = (authorization or "").encode("utf-8", "surrogateescape")
    expected = f"Bearer {token}".encode()
    digest = hashlib.sha256
    return hmac.compare_digest(digest(presented).digest(), digest(expected).digest())


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK or host.startswith("127.")
