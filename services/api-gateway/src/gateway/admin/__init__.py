"""The admin web UI under /admin: server-rendered pages over the gateway's own commands and
read models, with OpenID Connect login. ``install(app, settings)`` mounts it on the gateway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import httpx
import structlog
from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from gateway.admin import (
    auth_pages,
    client_pages,
    dashboard,
    mailing_pages,
    opt_out_pages,
    session_pages,
)
from gateway.admin.config import AdminSettings
from gateway.admin.web import HERE, Admin
from gateway.stats.reporter_client import ReporterClient

__all__ = ["ROUTERS", "AdminSettings", "install"]

log = structlog.get_logger(__name__)

OIDC_TIMEOUT_S: Final = 10.0
# Every router of the admin's pages (the tests check that each route declares its permission).
ROUTERS: Final = tuple(
    m.router
    for m in (auth_pages, dashboard, mailing_pages, client_pages, opt_out_pages, session_pages)
)


def _lifespan(admin: Admin) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        # Outgoing calls to the provider: proxies from the environment apply (a provider is
        # often outside). The reporter is read through the API's client (opened by the
        # gateway's lifespan, which runs first), with the admin's own timeout.
        reporter: ReporterClient = app.state.reporter
        async with httpx.AsyncClient(timeout=OIDC_TIMEOUT_S, follow_redirects=False) as http:
            admin.start(http, reporter.with_timeout(admin.settings.admin_reporter_timeout_s))
            yield

    return lifespan


def _warn(settings: AdminSettings) -> None:
    if settings.admin_dev_login:
        log.warning(
            "admin_dev_login_enabled",
            effect="anyone reaching /admin can log in as the dev user; development only",
        )
    elif not settings.oidc_enabled:
        log.info("admin_login_not_configured", effect="/admin only explains how to set up login")
    elif settings.role_rule().open_to_all:
        log.warning(
            "admin_open_to_every_provider_user",
            effect="every account the provider authenticates is an admin",
            hint="set ADMIN_ALLOWED_EMAILS (or ADMIN_OPERATOR_EMAILS, ADMIN_VIEWER_EMAILS) or "
            "ADMIN_ROLE_CLAIM with ADMIN_ADMIN_ROLE, ADMIN_OPERATOR_ROLE, ADMIN_VIEWER_ROLE",
        )


def install(app: FastAPI, settings: AdminSettings) -> None:
    """Mount the admin pages under /admin and its static files under /admin/static.

    Call once, before the app starts (a second call on the same app does nothing). The pages
    use ``app.state.pool``, which the gateway's lifespan opens.
    """
    if getattr(app.state, "admin", None) is not None:
        return
    admin = Admin.create(settings)
    app.state.admin = admin
    # The routers' lifespans run inside the app's own (after the pool is open).
    lifecycle = APIRouter(lifespan=_lifespan(admin))
    app.include_router(lifecycle)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/admin/static", StaticFiles(directory=HERE / "static"), name="admin-static")
    _warn(settings)
