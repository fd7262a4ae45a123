"""Per-request wiring as pure ASGI middleware: request id, tracing, one log line, metrics.

Pure ASGI rather than Starlette's BaseHTTPMiddleware: the body is streamed straight through
(the importer reads it chunk by chunk), contextvars set here reach the endpoint, and nothing
is buffered. Only method, path (without the query string, which may hold a phone), route,
status, duration, request id, client address and the ids an endpoint adds (the mailing a
command acts on) are logged: never headers or bodies.
"""

from __future__ import annotations

import re
import time
from typing import Any, Final

import structlog
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from gateway.routing import LOG_FIELDS_KEY
from sms_events.tracing import new_correlation_id, traced

__all__ = ["REQUEST_ID_HEADER", "RequestMiddleware", "request_id_of"]

log = structlog.get_logger("gateway.http")

REQUEST_ID_HEADER: Final = "X-Request-ID"
_HEADER_KEY: Final = REQUEST_ID_HEADER.lower().encode()
# A caller's id is kept only if it is short and tame, so it is safe in logs and headers.
_SAFE_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
UNMATCHED: Final = "<unmatched>"


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID if it is usable, else a new id."""
    for name, value in scope.get("headers", ()):
        if name == _HEADER_KEY and _SAFE_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return new_correlation_id()


def _route(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    # FastAPI records only its own APIRoutes in the scope; plain routes (/openapi.json,
    # /docs) are found again by matching, which costs a few comparisons on those paths only.
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        if isinstance(route, BaseRoute) and route.matches(scope)[0] is not Match.NONE:
            return str(getattr(route, "path", UNMATCHED))
    return UNMATCHED


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


class RequestMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        # Handlers (the 500 handler among them) find it as request.state.request_id.
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (_HEADER_KEY, request_id.encode("ascii"))
        status = 500  # what the client gets if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        with traced(request_id):  # the request's own line carries its correlation id too
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._record(scope, status, time.perf_counter() - started, request_id)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float, request_id: str) -> None:
        method, route = scope["method"], _route(scope)
        labels: dict[str, Any] = {"method": method, "route": route, "status": str(status)}
        HTTP_REQUESTS.labels(**labels).inc()
        HTTP_REQUEST_SECONDS.labels(**labels).observe(seconds)
        # Fields an endpoint added (gateway.routing.log_fields), e.g. the mailing a command is on.
        extra = scope.get("state", {}).get(LOG_FIELDS_KEY, {})
        (log.error if status >= 500 else log.info)(
            "http_request",
            **extra,
            method=method,
            path=scope["path"],
            route=route,
            status=status,
            duration_ms=round(seconds * 1000, 2),
            request_id=request_id,
            client=_client(scope),
        )
