"""The FastAPI application: lifespan (pool, broker, outbox relay), error handlers, middleware,
and the unauthenticated operations endpoints (/healthz, /readyz, /metrics)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Final

import asyncpg
import structlog
from fastapi import Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from gateway import admin, audit, errors, events_feed, idempotency
from gateway.auth import Scope, require_scope, scope_by_method
from gateway.clients import api as clients
from gateway.clients.import_jobs import ImportJobs
from gateway.clients.importer import ImportConflict
from gateway.config import Settings
from gateway.events_feed import RELAY_SOURCE
from gateway.idempotency.expiry import prune_forever
from gateway.import_limits import RETRY_AFTER_S as IMPORT_RETRY_AFTER_S
from gateway.import_limits import ImportTooLarge, TooManyImports
from gateway.mailings import api as mailings
from gateway.mailings import preview
from gateway.mailings.schemas import STATISTICS_UNAVAILABLE
from gateway.middleware import REQUEST_ID_HEADER, RequestMiddleware
from gateway.opt_outs import api as opt_outs
from gateway.opt_outs.rules import StopWords
from gateway.rate_limits import AddressLimitMiddleware, RateLimited, TokenBuckets
from gateway.responses import JSON
from gateway.stats import api as stats
from gateway.stats.reporter_client import ReporterClient, ReporterUnavailable, make_http_client
from gateway.trusted_hosts import TrustedHosts
from sms_events.broker import Broker
from sms_events.db import pool_for
from sms_events.relay import OutboxRelay

__all__ = ["RELAY_SOURCE", "create_app"]

log = structlog.get_logger(__name__)

READY_TIMEOUT: Final = 2.0
RELAY_STOP_TIMEOUT: Final = 10.0
RETRY_AFTER_S: Final = "5"
API_PATHS: Final = ("/api/v1/",)
LOGIN_PATHS: Final = ("/admin/auth/",)

DESCRIPTION = """
REST API of the SMS mailing platform. Request and response shapes are those of the old
`/api/v1/` (Django REST framework) API; every change is recorded as an event
(`client.created`, `client.updated`, `client.deleted`; a bulk import as `clients.imported`,
a few hundred clients per event; `mailing.scheduled`, `mailing.updated`, `mailing.deleted`,
`mailing.cancelled`, `mailing.paused`, `mailing.resumed`; the suppression list as
`opt_out.recorded`, `opt_out.removed`, `opt_outs.imported`) and published to RabbitMQ.

**Authentication**: every `/api/v1/` call needs `Authorization: Bearer <API key>`. Keys have
scopes: `read` (every GET but the event feed), `clients:write` (clients and opt-outs),
`mailings:write`, `events:read` (the event feed, `/api/v1/events/`: events carry phones and
texts), `admin` (all of them); a call outside the key's scopes is `403` naming the scope.
`/api/v1/inbound/` (the provider's callback) takes `INBOUND_TOKEN` instead. The events of
every command carry the key's name as their actor (`metadata.actor`).

**Retries**: every `POST` takes an `Idempotency-Key` header (1 to 255 printable ASCII
characters, private to the API key). The same key with the same request within
`IDEMPOTENCY_TTL_H` hours gets the first answer again, marked `Idempotent-Replayed: true`, and
changes nothing; the same key with another request is `422`; while the first is still running,
`409` with `Retry-After`. The answer is kept in the transaction of the change itself, so a
request that timed out can always be retried with its key. Error answers are not kept.

**Errors**: invalid input is `400` with each bad field and its messages, e.g.
`{"phone": ["Phone must be 11 digits starting with 7, e.g. 79991234567."]}`; a change a
mailing's state refuses is `400` with `detail` saying why; unknown ids are `404`. Nothing is
stored when a request is answered with an error.

**Mailing statistics** (counters, messages, `state`) come from the statistics service (the
reporter), which follows the events within moments: a `GET` right after a change may show
the previous counters. When it cannot be reached, reads answer `503` with `Retry-After`;
commands (create, edit, cancel, pause, resume) are still carried out, and answer with zero
counters and a `state` judged from the mailing's dates and flags alone.

**Tracing**: send `X-Request-ID` to correlate a request with its events and logs; it is
echoed back (a new one is made up when absent).
"""


class Status(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    database: bool
    broker: bool


def _lifespan(settings: Settings) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await pool_for(settings)
        broker = Broker(settings)
        try:
            await broker.connect()
        except BaseException:
            await pool.close()
            raise
        http = make_http_client(
            settings.reporter_url, settings.reporter_timeout_s, settings.internal_api_token
        )
        app.state.pool, app.state.broker = pool, broker
        app.state.reporter = ReporterClient(http)
        app.state.import_jobs = jobs = ImportJobs(pool, settings.import_limits())
        stop = asyncio.Event()
        ttl = timedelta(hours=settings.idempotency_ttl_h)
        pruner = asyncio.create_task(prune_forever(pool, ttl, stop), name="idempotency-expiry")
        relay = None
        if settings.relay_enabled:
            relay = asyncio.create_task(
                OutboxRelay(pool, broker, source=RELAY_SOURCE).run(stop), name="outbox-relay"
            )
        if not settings.api_keys:
            log.warning("no_api_keys_configured", effect="every /api/v1/ request is refused")
        log.info("gateway_started", relay=settings.relay_enabled, keys=len(settings.api_keys))
        try:
            yield
        finally:
            stop.set()
            await jobs.close()  # marks the imports still running failed, while the pool is open
            await pruner  # wakes at once: it waits on ``stop``
            if relay is not None:
                await _stop_relay(relay)
            await http.aclose()
            await broker.close()
            await pool.close()
            log.info("gateway_stopped")

    return lifespan


async def _stop_relay(task: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(task, RELAY_STOP_TIMEOUT)
    except TimeoutError:
        log.warning("relay_stop_timeout")  # wait_for cancelled it
    except Exception as exc:
        log.error("relay_failed", error=repr(exc))


# The database is down, restarting, full or unreachable: the request may succeed later (503).
_UNAVAILABLE: Final = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


def _install_error_handlers(app: FastAPI) -> None:
    """The answers to failures outside the rules (those are ``gateway.errors``'s): an outage,
    a cap, an import that kept conflicting, a bug."""
    errors.install(app)

    async def statistics_unavailable(_: Request, __: Exception) -> Response:
        # The reporter client has logged why.
        return JSON(
            {"detail": STATISTICS_UNAVAILABLE},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_S},
        )

    async def import_conflict(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ImportConflict)
        detail = (
            "A batch kept conflicting with concurrent changes. The counts cover the batches "
            "committed before it; importing the file again is safe."
        )
        return JSON({"detail": detail, **exc.result.to_json()}, status_code=409)

    async def unavailable(_: Request, exc: Exception) -> Response:
        log.warning("database_unavailable", error_type=type(exc).__name__)
        return JSON(
            {"detail": "The database is unavailable; retry later."},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_S},
        )

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after answering; the request line is logged by the middleware.
        log.error("unhandled_error", error_type=type(exc).__name__, exc_info=exc)
        request_id = getattr(request.state, "request_id", "")
        return JSON(
            {"detail": "Internal server error.", "request_id": request_id},
            status_code=500,
            headers={REQUEST_ID_HEADER: request_id},
        )

    async def import_too_large(_: Request, exc: Exception) -> Response:
        return JSON({"detail": str(exc)}, status_code=413)

    async def too_many_imports(_: Request, exc: Exception) -> Response:
        return JSON({"detail": str(exc)}, status_code=429,
                    headers={"Retry-After": str(IMPORT_RETRY_AFTER_S)})  # fmt: skip

    async def rate_limited(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RateLimited)
        return JSON({"detail": str(exc)}, status_code=429, headers=exc.headers())

    app.add_exception_handler(RateLimited, rate_limited)
    app.add_exception_handler(ImportTooLarge, import_too_large)
    app.add_exception_handler(TooManyImports, too_many_imports)
    app.add_exception_handler(ReporterUnavailable, statistics_unavailable)
    app.add_exception_handler(ImportConflict, import_conflict)
    for error in _UNAVAILABLE:
        app.add_exception_handler(error, unavailable)
    app.add_exception_handler(Exception, unexpected)


def _install_operations(app: FastAPI) -> None:
    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness",
        response_model=Status,
        name="get_health",
    )
    async def healthz() -> Response:
        return JSON({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: database and broker reachable",
        name="get_readiness",
        response_model=Readiness,
        responses={
            200: {"content": {"application/json": {"example": {"database": True, "broker": True}}}},
            503: {
                "model": Readiness,
                "description": "Not ready",
                "content": {"application/json": {"example": {"database": True, "broker": False}}},
            },
        },
    )
    async def readyz(request: Request) -> Response:
        checks = {"database": False, "broker": False}
        with contextlib.suppress(Exception):
            async with asyncio.timeout(READY_TIMEOUT):
                checks["database"] = await request.app.state.pool.fetchval("SELECT 1") == 1
        with contextlib.suppress(Exception):
            checks["broker"] = await request.app.state.broker.ping()
        return JSON(checks, status_code=200 if all(checks.values()) else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        name="get_metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"example": "gateway_http_requests_total"}}}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI documents a 422 for every operation with parameters; this API never sends
        # one (validation errors are 400, as in the old API), so drop them from the contract.
        schema = generate()
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        idempotency.document(schema)  # its 422 is real
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def operation_id(route: APIRoute) -> str:
    """The route's name (its endpoint's, or the one given): FastAPI's default appends the path
    and method, so that ids change whenever a path does; clients generated from the contract
    name their methods after these."""
    return route.name


def create_app(settings: Settings) -> FastAPI:
    """The gateway application; its lifespan opens the pool and the broker and runs the relay."""
    app = FastAPI(
        title="SMS mailing platform: API gateway",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=_lifespan(settings),
        redirect_slashes=False,
        generate_unique_id_function=operation_id,
        openapi_tags=[
            {"name": "clients", "description": "The client base (phones, tags, time zones)"},
            {
                "name": "mailings",
                "description": "Mailings: what to send to whom and when; their counters, "
                "messages and lifecycle (cancel, pause, resume)",
            },
            {
                "name": "statistics",
                "description": "Figures overall and per mailing, read from projections",
            },
            {
                "name": "opt-outs",
                "description": "The suppression list: phones that get no message (recorded "
                "by the API, the admin, a bulk import or a stop word the provider forwards)",
            },
            {"name": "audit", "description": "Who did what: every command's actor (admin scope)"},
            {
                "name": "events",
                "description": "Every event as published, from any point (events:read scope)",
            },
            {"name": "operations", "description": "Health, readiness and metrics; no key needed"},
        ],
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.settings = settings  # what endpoints read (caps, prices, the send rate)
    keys = settings.api_key_set()
    for router, scope in (
        (clients.router, scope_by_method(Scope.CLIENTS_WRITE)),
        # The forecast stores nothing: whoever may read may ask for it (before mailings, whose
        # /{mailing_id}/ would otherwise take "preview").
        (preview.router, Scope.READ),
        (mailings.router, scope_by_method(Scope.MAILINGS_WRITE)),
        (opt_outs.router, scope_by_method(Scope.CLIENTS_WRITE)),
        (stats.router, Scope.READ),
        (audit.router, Scope.ADMIN),
        (events_feed.router, Scope.EVENTS_READ),
    ):
        app.include_router(router, dependencies=[Depends(require_scope(keys, scope))])
    # The provider's callback carries its own token (INBOUND_TOKEN), not an API key.
    app.include_router(opt_outs.inbound_router)
    app.state.stop_words = StopWords(settings.opt_out_stop_words)
    admin.install(app, settings)
    _install_operations(app)
    _install_error_handlers(app)
    idempotency.install(app)
    _install_openapi(app)
    app.state.key_buckets = TokenBuckets(settings.api_key_rate())
    # Inside the request middleware, so a 429 is logged and counted like any answer.
    app.add_middleware(
        AddressLimitMiddleware, buckets=TokenBuckets(settings.login_rate()), prefixes=LOGIN_PATHS
    )
    app.add_middleware(
        AddressLimitMiddleware,
        buckets=TokenBuckets(settings.api_address_rate()),
        prefixes=API_PATHS,
    )
    if settings.trusted_hosts:
        # Inside the request middleware too: a refused Host is logged and counted.
        app.add_middleware(TrustedHosts, hosts=settings.trusted_hosts)
    app.add_middleware(RequestMiddleware)
    return app
