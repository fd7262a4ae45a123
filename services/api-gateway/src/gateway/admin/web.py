"""What every admin page shares: the per-app state, templates, the login and CSRF checks, and
a route class that answers errors with HTML pages and adds the security headers."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import structlog
from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import URL, FormData
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse

from gateway.admin.config import AdminSettings
from gateway.admin.oidc import OidcClient
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
from gateway.reporter_client import ReporterClient
from sms_events.tracing import acting_as

__all__ = [
    "LIVE_HEADER",
    "Admin",
    "AdminRoute",
    "Page",
    "admin_of",
    "current_page",
    "page_link",
    "page_number",
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
        templates = _environment(zone)
        version = secrets.token_hex(4)
        return cls(settings, cookies, templates, zone, version)

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


def _when(value: Any, zone: tzinfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None or value == "":
        return "—"
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime(fmt)


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        return "—"
    return f"{value:,}".replace(",", "\u202f")


def _pct(value: Any) -> str:
    if value is None:
        return "—"
    return f"{100 * float(value):.1f} %"


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "—"
    total = round(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _seconds(seconds: Any) -> str:
    """A latency: three significant digits under a minute (they start at 0.1 s), else as a
    duration."""
    if seconds is None:
        return "—"
    if float(seconds) < 60:
        return f"{float(seconds):.3g} s"
    return _duration(seconds)


def _environment(zone: tzinfo) -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda value, fmt="%Y-%m-%d %H:%M": _when(value, zone, fmt)
    env.filters["num"] = _num
    env.filters["pct"] = _pct
    env.filters["duration"] = _duration
    env.filters["seconds"] = _seconds
    env.globals["zone_name"] = str(zone)
    return env


@dataclass(frozen=True, slots=True)
class Page:
    """A logged-in request: the admin, the session and its user."""

    admin: Admin
    session: Session
    user: User
    request: Request

    @property
    def pool(self) -> asyncpg.Pool:
        pool: asyncpg.Pool = self.request.app.state.pool
        return pool


class LoginRequired(Exception):
    """No valid session: the login page (or a 401 for the page's script)."""


class LoginClosed(Exception):
    """No login is configured: every admin page explains how to set it up."""


async def _current_page(request: Request) -> Page:
    admin = admin_of(request)
    if not admin.settings.login_enabled:
        raise LoginClosed
    session = admin.cookies.session(request)
    if session is None or session.user is None:
        raise LoginRequired
    user = session.user
    # The events of the admin's commands carry who made them (the audit trail).
    acting_as({"type": "oidc", "id": user.sub} | ({"email": user.email} if user.email else {}))
    return Page(admin, session, user, request)


current_page = Annotated[Page, Depends(_current_page)]


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
    header (scripts) or in the form action's query string (``upload_action``)."""
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
    html = admin.templates.get_template(template).render(
        settings=admin.settings,
        user=session.user if session else None,
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
    admin = admin_of(request)
    session = admin.cookies.session(request)
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
