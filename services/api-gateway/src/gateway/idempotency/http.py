"""The Idempotency-Key header on the API's POSTs: the dependency that reads it, the answers to
a replay, a reused key and a key in use, and their place in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, Final, TypeVar

import asyncpg
from fastapi import Depends, FastAPI, Header, HTTPException, Request, status
from starlette.responses import Response

from gateway.idempotency import store
from gateway.idempotency.guard import Answering, Key, Once
from gateway.idempotency.rules import (
    HEADER,
    REPLAYED_HEADER,
    InvalidKey,
    KeyInUse,
    KeyReused,
    Replayed,
    parse_key,
    replay_of,
    request_hash,
)
from gateway.responses import JSON

__all__ = [
    "NOT_KEPT_FORECAST",
    "NOT_KEPT_IMPORT",
    "Idem",
    "Idempotency",
    "checked_key",
    "document",
    "idempotency",
    "install",
]

T = TypeVar("T")

RETRY_AFTER_S: Final = "1"
DESCRIPTION: Final = (
    "Makes a retry safe: the same key with the same request (method, path, JSON body) within "
    "`IDEMPOTENCY_TTL_H` hours gets the first answer again (with `Idempotent-Replayed: true`) "
    "and changes nothing; with another request it is `422`; while the first is still running, "
    "`409` with `Retry-After`. 1 to 255 printable ASCII characters (a UUID is a good key), "
    "private to the API key that sends it. Errors are not kept: a request answered 4xx may be "
    "retried with the same key."
)


NOT_KEPT_FORECAST: Final = (
    "Checked as on the other POSTs (1 to 255 printable ASCII characters), but nothing is "
    "kept: the forecast stores nothing, so a retry is harmless and gets a fresh answer."
)
NOT_KEPT_IMPORT: Final = (
    "Checked as on the other POSTs (1 to 255 printable ASCII characters), but nothing is "
    "kept: an import commits in batches, not in one transaction, so no answer could commit "
    "with its writes. None is needed: importing the same file again changes nothing, so an "
    "import that timed out is retried by sending the file again."
)


class Idempotency:
    """A request's Idempotency-Key, or none; ``once`` makes the guard its command runs with."""

    def __init__(self, pool: asyncpg.Pool, key: Key | None) -> None:
        self._pool, self._key = pool, key

    async def once(self, body: Any, render: Callable[[T], Response]) -> Answering[T]:
        """The guard of a command with this (parsed) ``body``, whose answer ``render`` makes
        from its result; raises ``Replayed`` or ``KeyReused`` when the key answered already."""
        key = self._key
        if key is None:
            return Answering(render)
        digest = request_hash(key.method, key.path, body)
        # Replayed before the body is judged again: the clock has moved since (a mailing's
        # end may have passed), and the first answer stands whatever the rules say now.
        found = await store.find(self._pool, key.owner, key.value, key.ttl)
        if (stored := replay_of(found, digest)) is not None:
            raise Replayed(stored)
        return Once(key, digest, render)


async def idempotency(
    request: Request,
    value: Annotated[str | None, Header(alias=HEADER, description=DESCRIPTION)] = None,
) -> Idempotency:
    """The dependency of every POST of the API (after its authentication, which names the
    caller the key belongs to)."""
    try:
        parsed = parse_key(value)
    except InvalidKey as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    pool: asyncpg.Pool = request.app.state.pool
    if parsed is None:
        return Idempotency(pool, None)
    actor = request.state.actor  # set by the route's authentication
    hours: int = request.app.state.settings.idempotency_ttl_h
    owner = f"{actor['type']}:{actor['id']}"
    key = Key(owner, parsed, request.method, request.url.path, timedelta(hours=hours))
    return Idempotency(pool, key)


Idem = Annotated[Idempotency, Depends(idempotency)]


def checked_key(description: str) -> Callable[..., Awaitable[None]]:
    """The dependency of a POST that keeps no answer (the forecast, the imports): the key is
    only checked, and ``description`` says why in the OpenAPI document."""

    # A default, not Annotated: annotations are strings here, and this one's Header would name
    # a local that FastAPI cannot resolve.
    async def check(
        value: str | None = Header(None, alias=HEADER, description=description),
    ) -> None:
        try:
            parse_key(value)
        except InvalidKey as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None

    return check


def install(app: FastAPI) -> None:
    """The answers to a replay (the first answer), a reused key (422) and a key in use (409)."""

    async def replayed(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, Replayed)
        stored = exc.stored
        headers = {**stored.headers, REPLAYED_HEADER: "true"}
        return Response(stored.body, status_code=stored.status, headers=headers)

    async def reused(_: Request, exc: Exception) -> Response:
        return JSON({"detail": str(exc)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    async def in_use(_: Request, exc: Exception) -> Response:
        return JSON(
            {"detail": str(exc)},
            status_code=status.HTTP_409_CONFLICT,
            headers={"Retry-After": RETRY_AFTER_S},
        )

    app.add_exception_handler(Replayed, replayed)
    app.add_exception_handler(KeyReused, reused)
    app.add_exception_handler(KeyInUse, in_use)


_REUSED: Final = {
    "description": f"The {HEADER} was used with a different request",
    "content": {
        "application/json": {
            "example": {
                "detail": f"This {HEADER} was used with a different request (method, path or "
                "body); send a new key for a new request."
            }
        }
    },
}
_IN_USE_NOTE: Final = f"; or a request with this {HEADER} is still in progress (`Retry-After`)"
_IN_USE: Final = {
    "description": "Conflict",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "example": 1}},
    "content": {
        "application/json": {
            "example": {"detail": f"A request with this {HEADER} is still in progress; retry."}
        }
    },
}


_INVALID: Final = {
    "description": f"Invalid {HEADER}",
    "content": {
        "application/json": {
            "example": {"detail": f"{HEADER} must be 1 to 255 printable ASCII characters."}
        }
    },
}


def document(schema: dict[str, Any]) -> None:
    """Add the key's answers to every operation that takes it: 400 (an invalid key), and where
    answers are kept, 422 (another request) and 409 (still in progress)."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            params = [p for p in operation.get("parameters", ()) if p.get("name") == HEADER]
            if not params:
                continue
            answers = operation.setdefault("responses", {})
            answers.setdefault("400", _INVALID)
            if params[0].get("description") != DESCRIPTION:
                continue  # checked, not kept
            answers["422"] = _REUSED
            conflict = answers.setdefault("409", dict(_IN_USE))
            if _IN_USE_NOTE not in conflict["description"]:  # FastAPI caches the schema
                conflict["description"] += _IN_USE_NOTE
