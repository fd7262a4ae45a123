"""What every admin page shares: the per-app state, templates, the login and CSRF checks, and
a route class that answers errors with HTML pages and adds the security headers."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import structlog
from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from jinja2 import Environment
from starlette.datastructures import URL, FormData
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse

from gateway.admin import session_store
from gateway.admin.config import AdminSettings
from gateway.admin.oidc import OidcClient
from gateway.admin.roles import Permission, Role, RoleRule, may, permissions_of, session_role
from gateway.admin.sessions import (
    CSRF_FIELD,
    CookieJar,
    CsrfError,
    Session,
    User,
    check_csrf,
    request_origin,
)
from gateway.admin.stats import StatsClient
from gateway.admin.templating import environment
from gateway.stats.reporter_client import ReporterClient
from sms_events.tracing import acting_as

__all__ = [
    "LIVE_HEADER",
    "Admin",
    "AdminRoute",
    "ChangePage",
    "Forbidden",
    "Needs",
    "Page",
    "SessionsPage",
    "ViewPage",
    "admin_of",
    "logged_in",
    "page_link",
    "page_number",
    "pool_of",
    "posted_form",
    "render",
    "see_other",
]

log = structlog.get_logger(__name__)

HERE: Final = Path(__file__).parent
LIVE_HEADER: Final = "x-admin-live"
# Requests polled by the page's script: answered 401 rather than redirected to the login.
_UNAVAILABLE: Final = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


@dataclass
class Admin:
    """The admin's state in one application (``app.state.admin``)."""

    settings: AdminSettings
    cookies: CookieJar
    templates: Environment
    zone: tzinfo
    asset_version: str
    rule: RoleRule = field(init=False)
    http: httpx.AsyncClient | None = None
    oidc: OidcClient | None = None
    stats: StatsClient | None = None
    reporter: ReporterClient | None = None

    @classmethod
    def create(cls, settings: AdminSettings) -> Admin:
        secret = settings.admin_session_secret
        # Dev login without a configured secret: a key per process (sessions end on restart).
        key = secret.get_secret_value() if secret else secrets.token_urlsafe(48)
        cookies = CookieJar(
            key, max_age_s=settings.admin_session_max_age_s, secure=settings.cookies_secure
        )
        zone = ZoneInfo(settings.admin_time_zone)
        templates = environment(HERE / "templates", zone)
        version = secrets.token_hex(4)
        return cls(settings, cookies, templates, zone, version)

    def __post_init__(self) -> None:
        # From this process's settings: a changed rule applies to open sessions at restart.
        self.rule = self.settings.role_rule()

    def start(self, http: httpx.AsyncClient, reporter: ReporterClient) -> None:
        self.http = http
        if self.settings.oidc_enabled:
            self.oidc = OidcClient(self.settings, http)
        self.stats = StatsClient(reporter)
        self.reporter = reporter

    def csp(self) -> str:
        form_action = "'self'"
        if self.settings.oidc_issuer:
            parts = urlsplit(self.settings.oidc_issuer)
            # The logout form's answer redirects to the provider, which form-action governs.
            form_action += f" {parts.scheme}://{parts.netloc}"
        return (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; "
            "base-uri 'none'; object-src 'none'"
        )


def admin_of(request: Request) -> Admin:
    admin: Admin = request.app.state.admin
    return admin


@dataclass(frozen=True, slots=True)
class Page:
    """A logged-in request: the admin, the session (its user and role) and the request."""

    admin: Admin
    session: Session
    user: User
    role: Role
    request: Request

    @property
    def pool(self) -> asyncpg.Pool:
        return pool_of(self.request)

    def may(self, permission: Permission) -> bool:
        return may(self.role, permission)


def pool_of(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


class LoginRequired(Exception):
    """No valid session: the login page (or a 401 for the page's script)."""


class LoginClosed(Exception):
    """No login is configured: every admin page explains how to set it up."""


class Forbidden(Exception):
    """Logged in, but the role does not grant what the route needs: 403."""

    def __init__(self, page: Page, permission: Permission) -> None:
        super().__init__(permission.value)
        self.page = page
        self.permission = permission


async def logged_in(request: Request) -> Session | None:
    """The request's session with its user and role, or ``None``: no cookie, a cookie whose
    row was closed, revoked or has expired, or claims the current rule no longer lets in."""
    admin = admin_of(request)
    cookie = admin.cookies.session(request)
    if cookie is None or cookie.sid is None:
        return None
    stored = await session_store.load(pool_of(request), cookie.sid)
    if stored is None:
        return None
    user = User.from_claims(stored.claims)
    role = session_role(stored.kind, stored.claims, admin.rule)
    if role is None:
        log.info("admin_session_refused", sub=user.sub, reason="no role under the current rule")
        return None
    return replace(cookie, user=user, role=role, id_token=stored.id_token)


@dataclass(frozen=True, slots=True)
class Needs:
    """The one dependency of every admin page: a logged-in user whose role grants
    ``permission`` (else the login page, or 403). Checked before the route reads its form, so
    a forged POST is refused whatever it carries."""

    permission: Permission

    async def __call__(self, request: Request) -> Page:
        admin = admin_of(request)
        if not admin.settings.login_enabled:
            raise LoginClosed
        session = await logged_in(request)
        if session is None or session.user is None or session.role is None:
            raise LoginRequired
        request.state.admin_session = session  # for the error pages' header
        page = Page(admin, session, session.user, session.role, request)
        if not page.may(self.permission):
            raise Forbidden(page, self.permission)
        user = session.user
        # The events of the admin's commands carry who made them (the audit trail).
        acting_as({"type": "oidc", "id": user.sub} | ({"email": user.email} if user.email else {}))
        return page


ViewPage = Annotated[Page, Depends(Needs(Permission.VIEW))]
ChangePage = Annotated[Page, Depends(Needs(Permission.CHANGE))]
SessionsPage = Annotated[Page, Depends(Needs(Permission.SESSIONS))]


async def posted_form(page: Page) -> FormData:
    """The POSTed form, once its CSRF token and origin are checked (``CsrfError``)."""
    form = await page.request.form(max_files=1, max_fields=50)
    token = form.get(CSRF_FIELD)
    origin = request_origin(page.request, page.admin.settings.admin_base_url)
    check_csrf(page.request, page.session, token if isinstance(token, str) else None, origin)
    return form


CSRF_HEADER: Final = "X-CSRF-Token"


async def posted_upload_form(page: Page) -> FormData:
    """A POSTed multipart upload, its CSRF token and origin checked BEFORE the body is parsed
    (a forged upload is never spooled to disk): the token comes in the ``X-CSRF-Token``
    header (scripts) or in the form action's query string (the import pages' forms)."""
    request = page.request
    token = request.headers.get(CSRF_HEADER) or request.query_params.get(CSRF_FIELD)
    origin = request_origin(request, page.admin.settings.admin_base_url)
    check_csrf(request, page.session, token, origin)
    return await request.form(max_files=1, max_fields=50)


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    session: Session | None = None,
    **context: Any,
) -> HTMLResponse:
    admin = admin_of(request)
    context.setdefault("nav", "")
    role = session.role if session else None
    html = admin.templates.get_template(template).render(
        settings=admin.settings,
        user=session.user if session else None,
        role=role.label if role else "",
        can={p.value for p in permissions_of(role)} if role else set(),
        csrf_token=session.csrf if session else "",
        csrf_field=CSRF_FIELD,
        asset_version=admin.asset_version,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def not_found(page: Page, what: str) -> HTMLResponse:
    """The 404 page for a ``what`` ("Client", "Mailing") that does not exist (any more)."""
    return render(
        page.request,
        "error.html",
        status=404,
        session=page.session,
        title=f"{what} not found",
        message="It may have been deleted.",
    )


def page_number(raw: str | None) -> int:
    """The ``p`` of a list page's query; anything but a number is the first page."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() else 1


def page_link(url: URL, number: int) -> str:
    """``url`` (its filters kept, its notice dropped) at page ``number``."""
    path = url.remove_query_params(["p", "notice"]).include_query_params(p=number)
    return f"{path.path}?{path.query}"


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _is_live(request: Request) -> bool:
    """A request of the page's script for a fragment (answered 401, not redirected)."""
    return request.headers.get(LIVE_HEADER) == "1" or request.url.path.endswith("/live")


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return see_other(f"/admin/login?next={quote(target, safe='')}")


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    session = getattr(request.state, "admin_session", None)
    try:
        return render(
            request, "error.html", status=status, session=session, title=title, message=message
        )
    except Exception as exc:  # the page itself failed: answer plainly rather than not at all
        log.error("admin_error_page_failed", error_type=type(exc).__name__)
        return HTMLResponse(f"<h1>{status}</h1>", status_code=status)


def _security_headers(admin: Admin, response: Response) -> None:
    response.headers.setdefault("Content-Security-Policy", admin.csp())
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class AdminRoute(APIRoute):
    """Answers the admin's exceptions with pages: the login, 403 for a forged form, 503 when
    the database is down, 500 (without details) for the unexpected."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def admin_handler(request: Request) -> Response:
            response = await _answer(handler, request)
            _security_headers(admin_of(request), response)
            return response

        return admin_handler


async def _answer(handler: Handler, request: Request) -> Response:
    try:
        return await handler(request)
    except LoginRequired:
        if _is_live(request):
            return JSONResponse({"detail": "Not logged in."}, status_code=401)
        return _login_redirect(request)
    except LoginClosed:
        if _is_live(request):
            return JSONResponse({"detail": "Admin login is not configured."}, status_code=401)
        return render(request, "closed.html", status=403)
    except Forbidden as exc:
        log.warning(
            "admin_forbidden",
            sub=exc.page.user.sub,
            role=exc.page.role.label,
            needs=exc.permission.value,
            path=request.url.path,
        )
        if _is_live(request):
            return JSONResponse({"detail": "Not allowed for your role."}, status_code=403)
        return _error_page(
            request,
            403,
            "Not allowed",
            f"Your role ({exc.page.role.label}) does not allow this. Ask an admin if you need it.",
        )
    except CsrfError as exc:
        log.warning("admin_csrf_rejected", reason=str(exc), path=request.url.path)
        return _error_page(
            request,
            403,
            "Request refused",
            "This form was not sent from this site's current session (it may have expired). "
            "Go back, reload the page and try again.",
        )
    except _UNAVAILABLE as exc:
        log.warning("admin_database_unavailable", error_type=type(exc).__name__)
        return _error_page(
            request, 503, "Database unavailable", "The database cannot be reached; retry soon."
        )
    except Exception as exc:
        request_id = getattr(request.state, "request_id", "")
        log.error("admin_unhandled_error", error_type=type(exc).__name__, exc_info=exc)
        return _error_page(
            request,
            500,
            "Something went wrong",
            f"The error was logged with request id {request_id}.",
        )
