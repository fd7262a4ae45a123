"""Bearer API keys for /api/v1/: constant-time checks against the keys in the settings."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Final

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

__all__ = ["ApiKeys", "bearer_scheme", "require_api_key"]

NOT_PROVIDED: Final = (
    "Authentication credentials were not provided. Send the header Authorization: Bearer <API key>."
)
INVALID: Final = "Invalid API key."

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="API key",
    description="One of the keys configured in API_KEYS, sent as `Authorization: Bearer <key>`.",
)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class ApiKeys:
    """The accepted keys, kept only as SHA-256 digests.

    Comparing digests (always 32 bytes) with ``hmac.compare_digest`` and checking every key,
    even after a match, keeps the time taken independent of how much of a key was guessed
    right, of its length, and of which key matched.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(k) for k in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def accepts(self, token: str) -> bool:
        presented = _digest(token)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(presented, digest)
        return matched


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_api_key(keys: ApiKeys) -> Callable[..., Awaitable[None]]:
    """A dependency answering 401 unless the request carries one of ``keys``.

    With no keys configured nothing is accepted: an API left unconfigured is closed, not open.
    """

    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> None:
        if credentials is None:
            raise _unauthorized(NOT_PROVIDED)
        if not keys.accepts(credentials.credentials):
            raise _unauthorized(INVALID)

    return check
