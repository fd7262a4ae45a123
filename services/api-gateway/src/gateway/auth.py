"""Bearer API keys for /api/v1/: named keys with scopes, checked in constant time.

``API_KEYS`` is a comma-separated list. Each entry is ``name:scope+scope:key`` (for example
``crm:read+clients:write:Zk3…``); a bare key (the old form) is named ``key-1``, ``key-2``… and
gets ``LEGACY_SCOPES``, every scope the old API had, but neither ``admin`` nor ``events:read``.
Keys shorter than ``MIN_KEY_LENGTH`` are refused at start. The key's name, never the key, is
the actor that the events of its commands carry.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.rate_limits import RateLimited, TokenBuckets
from sms_events.tracing import acting_as

__all__ = [
    "LEGACY_SCOPES",
    "MIN_KEY_LENGTH",
    "ApiKey",
    "ApiKeys",
    "Scope",
    "bearer_scheme",
    "parse_key",
    "require_scope",
    "scope_by_method",
]

NOT_PROVIDED: Final = (
    "Authentication credentials were not provided. Send the header Authorization: Bearer <API key>."
)
INVALID: Final = "Invalid API key."
MIN_KEY_LENGTH: Final = 32


class Scope(StrEnum):
    READ = "read"
    CLIENTS_WRITE = "clients:write"
    MAILINGS_WRITE = "mailings:write"
    # The event feed: events carry phones and message texts, so neither `read` nor a bare key
    # has it; only a key given it by name (or `admin`).
    EVENTS_READ = "events:read"
    ADMIN = "admin"  # every scope, and the audit trail


LEGACY_SCOPES: Final = frozenset({Scope.READ, Scope.CLIENTS_WRITE, Scope.MAILINGS_WRITE})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="API key",
    description=(
        "One of the keys configured in API_KEYS, sent as `Authorization: Bearer <key>`. Each "
        "key has scopes: `read` (every GET but the event feed), `clients:write`, "
        "`mailings:write`, `events:read` (the event feed), `admin` (all of them, and the audit "
        "trail); a call outside the key's scopes is 403."
    ),
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    scopes: frozenset[Scope]
    digest: bytes

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def parse_key(entry: str, position: int) -> ApiKey:
    """One ``API_KEYS`` entry (``position`` counts from 1, for the bare keys' names); raises
    ValueError saying what is wrong, never showing the key."""
    name, scopes, key = f"key-{position}", LEGACY_SCOPES, entry
    if entry.count(":") >= 2:
        name, _, rest = entry.partition(":")
        listed, _, key = rest.rpartition(":")
        name = name.strip()
        if not name:
            raise ValueError(f"API_KEYS entry {position} has an empty name")
        try:
            scopes = frozenset(Scope(s.strip()) for s in listed.split("+") if s.strip())
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"API_KEYS entry {name!r} names an unknown scope ({known})") from None
        if not scopes:
            raise ValueError(f"API_KEYS entry {name!r} has no scope")
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(
            f"API_KEYS entry {name!r} is shorter than {MIN_KEY_LENGTH} characters;"
            " generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return ApiKey(name, scopes, _digest(key))


class ApiKeys:
    """The accepted keys, kept only as SHA-256 digests.

    Comparing digests (always 32 bytes) with ``hmac.compare_digest`` and checking every key,
    even after a match, keeps the time taken independent of how much of a key was guessed
    right, of its length, and of which key matched.
    """

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = list(keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def match(self, token: str) -> ApiKey | None:
        presented = _digest(token)
        matched = None
        for key in self._keys:
            if hmac.compare_digest(presented, key.digest):
                matched = key
        return matched


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def scope_by_method(write: Scope) -> Callable[[Request], Scope]:
    """``read`` for GET and HEAD, ``write`` for every other method."""

    def scope(request: Request) -> Scope:
        return Scope.READ if request.method in ("GET", "HEAD") else write

    return scope


def require_scope(
    keys: ApiKeys, scope: Scope | Callable[[Request], Scope]
) -> Callable[..., Awaitable[None]]:
    """A dependency answering 401 without a valid key and 403 naming the scope the key lacks;
    the request then acts for the key's name (its events carry it as their actor).

    With no keys configured nothing is accepted: an API left unconfigured is closed, not open.
    """

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> None:
        if credentials is None:
            raise _unauthorized(NOT_PROVIDED)
        key = keys.match(credentials.credentials)
        if key is None:
            raise _unauthorized(INVALID)
        buckets: TokenBuckets | None = getattr(request.app.state, "key_buckets", None)
        if buckets is not None and (wait := buckets.take(key.name, time.monotonic())):
            raise RateLimited(f"for the API key {key.name!r}", wait)
        needed = scope(request) if callable(scope) else scope
        if not key.allows(needed):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"The API key {key.name!r} lacks the scope {needed.value!r}.",
            )
        request.state.actor = {"type": "api_key", "id": key.name}
        acting_as(request.state.actor)

    return check
