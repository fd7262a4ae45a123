"""The session cookie, the login-in-progress cookie, and the CSRF checks.

The session cookie holds a CSRF token and, once logged in, the random id of the session's row
in ``gateway_admin_sessions`` (``session_store``), where the claims and the ID token stay: a
cookie alone proves nothing once its row is deleted (logout) or revoked. It is signed with
``ADMIN_SESSION_SECRET`` by itsdangerous and timestamped, so a cookie that was altered or is
older than the session lifetime is no session at all. It is HttpOnly, SameSite=Lax, scoped to
/admin, and Secure unless switched off for local development.

Every POST carries the session's CSRF token in a hidden field, compared in constant time, and
must come from this site (its Origin, or failing that its Referer, is the gateway's own).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from gateway.admin.roles import Role

__all__ = [
    "CSRF_FIELD",
    "LOGIN_COOKIE",
    "LOGIN_MAX_AGE_S",
    "SESSION_COOKIE",
    "CookieJar",
    "CsrfError",
    "LoginState",
    "Session",
    "User",
    "check_csrf",
    "new_session",
    "request_origin",
    "safe_next",
]

SESSION_COOKIE: Final = "sms_admin_session"
LOGIN_COOKIE: Final = "sms_admin_login"
CSRF_FIELD: Final = "csrf_token"
LOGIN_MAX_AGE_S: Final = 600
ADMIN_PATH: Final = "/admin"


@dataclass(frozen=True, slots=True)
class User:
    sub: str
    email: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.email or self.sub

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> User:
        email, name = claims.get("email"), claims.get("name")
        return cls(
            sub=str(claims["sub"]),
            email=email if isinstance(email, str) else None,
            name=name if isinstance(name, str) else None,
        )


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's session. The cookie holds ``csrf`` and ``sid`` (``None`` until it logs
    in); ``user``, ``role`` and ``id_token`` are filled from the session's row on each
    request."""

    csrf: str
    sid: str | None = None
    user: User | None = None
    role: Role | None = None
    id_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"csrf": self.csrf, "sid": self.sid}

    @classmethod
    def from_json(cls, data: Any) -> Session:
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            raise ValueError("session")
        sid = data.get("sid")
        return cls(csrf=data["csrf"], sid=sid if isinstance(sid, str) else None)


def new_session(sid: str | None = None) -> Session:
    """A fresh session: a new CSRF token each time, so logging in rotates it."""
    return Session(csrf=secrets.token_urlsafe(32), sid=sid)


@dataclass(frozen=True, slots=True)
class LoginState:
    """What the callback must find again: the values sent with the authorization request."""

    state: str
    nonce: str
    verifier: str
    next: str


class CookieJar:
    """Signs, reads and sets the admin's two cookies."""

    def __init__(self, secret: str, *, max_age_s: int, secure: bool) -> None:
        self._sessions = URLSafeTimedSerializer(secret, salt="sms-admin-session")
        self._logins = URLSafeTimedSerializer(secret, salt="sms-admin-login")
        self.max_age_s = max_age_s
        self.secure = secure

    def session(self, request: Request) -> Session | None:
        """The request's session; ``None`` when missing, tampered with or expired."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            return Session.from_json(self._sessions.loads(raw, max_age=self.max_age_s))
        except (BadData, ValueError, TypeError):
            return None

    def set_session(self, response: Response, session: Session) -> None:
        self._set(response, SESSION_COOKIE, self._sessions.dumps(session.to_json()), ADMIN_PATH)

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path=ADMIN_PATH, secure=self.secure, httponly=True, samesite="lax"
        )

    def login_state(self, request: Request) -> LoginState | None:
        raw = request.cookies.get(LOGIN_COOKIE)
        if not raw:
            return None
        try:
            data = self._logins.loads(raw, max_age=LOGIN_MAX_AGE_S)
            return LoginState(**data)
        except (BadData, ValueError, TypeError):
            return None

    def set_login_state(self, response: Response, login: LoginState) -> None:
        self._set(
            response, LOGIN_COOKIE, self._logins.dumps(asdict(login)), ADMIN_PATH, LOGIN_MAX_AGE_S
        )

    def clear_login_state(self, response: Response) -> None:
        response.delete_cookie(
            LOGIN_COOKIE, path=ADMIN_PATH, secure=self.secure, httponly=True, samesite="lax"
        )

    def _set(
        self, response: Response, name: str, value: str, path: str, max_age: int | None = None
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age if max_age is not None else self.max_age_s,
            path=path,
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )


class CsrfError(Exception):
    """A POST without this session's token, or from another site; ``str()`` says which."""


def request_origin(request: Request, base_url: str | None) -> str:
    """The origin the admin is served from: ``ADMIN_BASE_URL``'s (required with OIDC), or, for
    the development login only, the request's own (it answers a loopback Host only)."""
    if base_url:
        parts = urlsplit(base_url)
        return f"{parts.scheme}://{parts.netloc}"
    return f"{request.url.scheme}://{request.url.netloc}"


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def check_csrf(request: Request, session: Session | None, token: str | None, origin: str) -> None:
    """Raise ``CsrfError`` unless the request comes from ``origin`` with the session's token."""
    sent_from = request.headers.get("origin")
    if sent_from is None or sent_from == "null":
        referer = request.headers.get("referer")
        sent_from = _origin_of(referer) if referer else None
    if sent_from is None:
        raise CsrfError("no Origin or Referer header")
    if sent_from != origin:
        raise CsrfError("request from another origin")
    if session is None:
        raise CsrfError("no session")
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise CsrfError("missing or wrong CSRF token")


def safe_next(value: str | None) -> str:
    """A place to return to after login: only a path inside the admin, never another site."""
    if (
        value
        and value.startswith(ADMIN_PATH)
        and not value.startswith("//")
        and "\\" not in value
        and all(c.isprintable() for c in value)
        and (len(value) == len(ADMIN_PATH) or value[len(ADMIN_PATH)] in "/?")
    ):
        return value
    return ADMIN_PATH
