"""HTTP plumbing shared by the /api/v1/ routers: paths with and without a trailing slash,
hand-parsed JSON bodies, ids in paths, fields for the request log line.

Bodies are read here rather than by FastAPI (415, 413 and unreadable JSON answered in the old
API's words) and handed as they are to the commands, which validate them with the aggregate's
request model (``gateway.fields.validate``): the idempotency guard fingerprints the raw body,
and the admin pages and the importers feed the same commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar

import orjson
from fastapi import APIRouter, HTTPException, Request, status

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_ID",
    "Route",
    "log_fields",
    "path_id",
    "read_json",
    "slash_routes",
]

MAX_BODY_BYTES: Final = 64 * 1024
MAX_ID: Final = 2**63 - 1
LOG_FIELDS_KEY: Final = "log_fields"

F = TypeVar("F", bound=Callable[..., Any])


class Route(Protocol):
    def __call__(
        self, path: str, methods: list[str], *, slash: bool = True, **kwargs: Any
    ) -> Callable[[F], F]: ...


def slash_routes(router: APIRouter) -> Route:
    """A decorator factory registering a path on ``router`` with and without its trailing
    slash (no redirect, which would make clients drop the Authorization header).

    The form documented in the OpenAPI schema is the old API's (``slash``); the other one is
    hidden. The slash form is registered first, so ``url_for`` builds it.
    """

    def route(
        path: str, methods: list[str], *, slash: bool = True, **kwargs: Any
    ) -> Callable[[F], F]:
        def register(endpoint: F) -> F:
            for variant in (path + "/", path):
                shown = variant.endswith("/") == slash
                router.add_api_route(
                    variant, endpoint, methods=methods, include_in_schema=shown, **kwargs
                )
            return endpoint

        return register

    return route


def path_id(raw: str, not_found: Callable[[str], Exception]) -> int:
    """The integer id in a path. Anything but a plain in-range integer is an id nothing has:
    ``not_found(raw)`` is raised (a 404), never a 400 or a 500."""
    if raw.isascii() and raw.isdigit() and int(raw) <= MAX_ID:
        return int(raw)
    raise not_found(raw)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_json(request: Request) -> Any:
    """The JSON body; an empty body is ``{}``, as in Django REST framework."""
    content_type = request.headers.get("content-type")
    if content_type and not _is_json(content_type):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f'Unsupported media type "{content_type.split(";")[0].strip()}" in request.'
            " Send application/json.",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"Request body too large (limit {MAX_BODY_BYTES} bytes).",
            )
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"JSON parse error - {exc}") from None


def log_fields(request: Request, **fields: Any) -> None:
    """Add ``fields`` to the request's log line (written by ``gateway.middleware``)."""
    request.scope.setdefault("state", {}).setdefault(LOG_FIELDS_KEY, {}).update(fields)
