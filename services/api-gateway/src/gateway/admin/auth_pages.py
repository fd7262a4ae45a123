"""Login and logout: the login page, the OpenID Connect redirect and callback, the
development-only login, and logout at the provider too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import structlog
from fastapi import APIRouter, Request, Response

from gateway.admin import session_store
from gateway.admin.oidc import AccessDenied, LoginFailed, check_access
from gateway.admin.roles import SessionKind
from gateway.admin.sessions import (
    CSRF_FIELD,
    CsrfError,
    User,
    check_csrf,
    new_session,
    request_origin,
    safe_next,
)
from gateway.admin.web import Admin, AdminRoute, admin_of, logged_in, pool_of, render, see_other
from sms_events.bearer import is_loopback

__all__ = ["DEV_USER", "router"]

log = structlog.get_logger(__name__)

DEV_CLAIMS: Final = {"sub": "dev-local", "email": "dev@localhost", "name": "Local developer"}
DEV_USER = User.from_claims(DEV_CLAIMS)

router = APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)


def _base(request: Request, admin: Admin) -> str:
    # ADMIN_BASE_URL whenever OIDC is on (required); the request's own only for the dev login.
    return request_origin(request, admin.settings.admin_base_url)


async def _open(
    request: Request,
    admin: Admin,
    kind: SessionKind,
    claims: Mapping[str, Any],
    id_token: str | None,
    next_path: str,
) -> Response:
    sid = await session_store.open_session(
        pool_of(request), kind, claims, id_token, admin.settings.admin_session_max_age_s
    )
    response = see_other(next_path)
    admin.cookies.set_session(response, new_session(sid))
    return response


def _callback_uri(request: Request, admin: Admin) -> str:
    return f"{_base(request, admin)}/admin/auth/callback"


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    admin = admin_of(request)
    if not admin.settings.login_enabled:
        return render(request, "closed.html", status=403)
    if await logged_in(request) is not None:
        return see_other(safe_next(next))
    session = admin.cookies.session(request)
    if session is None or session.sid is not None:
        session = new_session()  # carries the CSRF token of the dev login form
    response = render(request, "login.html", session=session, next=safe_next(next))
    admin.cookies.set_session(response, session)
    return response


@router.get("/auth/login")
async def start_login(request: Request, next: str | None = None) -> Response:
    admin = admin_of(request)
    if admin.oidc is None:
        return see_other("/admin/login")
    try:
        url, login = await admin.oidc.start(_callback_uri(request, admin), safe_next(next))
    except LoginFailed as exc:
        log.warning("admin_login_unavailable", reason=str(exc))
        return render(request, "login_failed.html", status=502, reason=str(exc))
    response = see_other(url)
    admin.cookies.set_login_state(response, login)
    return response


@router.get("/auth/callback")
async def callback(request: Request) -> Response:
    admin = admin_of(request)
    login = admin.cookies.login_state(request)
    if admin.oidc is None:
        return see_other("/admin/login")
    if login is None:
        log.warning("admin_login_failed", reason="no login in progress in this browser")
        return render(
            request, "login_failed.html", status=400, reason="this login has expired; start again"
        )
    params = dict(request.query_params)
    try:
        claims, id_token = await admin.oidc.finish(params, login, _callback_uri(request, admin))
        user, role = check_access(admin.settings, claims)
    except LoginFailed as exc:
        log.warning("admin_login_failed", reason=str(exc))
        failed = render(request, "login_failed.html", status=400, reason=str(exc))
        admin.cookies.clear_login_state(failed)
        return failed
    except AccessDenied as exc:
        log.warning("admin_login_refused", sub=exc.user.sub, reason=str(exc))
        logout = await admin.oidc.logout_url(None, f"{_base(request, admin)}/admin/logged-out")
        denied = render(request, "denied.html", status=403, denied=exc.user, logout_url=logout)
        admin.cookies.clear_login_state(denied)
        return denied
    log.info("admin_login", sub=user.sub, role=role.label)
    response = await _open(request, admin, SessionKind.OIDC, claims, id_token, login.next)
    admin.cookies.clear_login_state(response)
    return response


@router.post("/auth/dev-login")
async def dev_login(request: Request) -> Response:
    admin = admin_of(request)
    # Loopback Host too, not only a loopback bind: a page of another site whose name resolves
    # to 127.0.0.1 (DNS rebinding) reaches the port but names its own host.
    if not admin.settings.admin_dev_login or not is_loopback(request.url.hostname or ""):
        return render(request, "closed.html", status=403)
    form = await request.form(max_files=0, max_fields=10)
    token = form.get(CSRF_FIELD)
    check_csrf(
        request,
        admin.cookies.session(request),
        token if isinstance(token, str) else None,
        _base(request, admin),
    )
    log.warning("admin_dev_login", sub=DEV_USER.sub)
    next_field = form.get("next")
    next_path = safe_next(next_field if isinstance(next_field, str) else None)
    return await _open(request, admin, SessionKind.DEV, DEV_CLAIMS, None, next_path)


@router.post("/logout")
async def logout(request: Request) -> Response:
    admin = admin_of(request)
    session = await logged_in(request)
    form = await request.form(max_files=0, max_fields=10)
    token = form.get(CSRF_FIELD)
    try:
        check_csrf(
            request, session, token if isinstance(token, str) else None, _base(request, admin)
        )
    except CsrfError:
        if session is None:
            return see_other("/admin/logged-out")  # nothing to end
        raise
    assert session is not None and session.sid is not None
    # The row goes: this cookie, wherever it is replayed, is no session any more.
    await session_store.close(pool_of(request), session.sid)
    target = "/admin/logged-out"
    if admin.oidc is not None:
        return_to = f"{_base(request, admin)}/admin/logged-out"
        target = await admin.oidc.logout_url(session.id_token, return_to) or target
    log.info("admin_logout", sub=session.user.sub if session.user else None)
    response = see_other(target)
    admin.cookies.clear_session(response)
    return response


@router.get("/logged-out")
async def logged_out(request: Request) -> Response:
    admin = admin_of(request)
    response = render(request, "logged_out.html")
    admin.cookies.clear_session(response)
    return response
