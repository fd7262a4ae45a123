"""Server-side sessions: a cookie is only as good as its row. Logout kills it wherever it is
replayed, an admin logs a user out everywhere, and an access rule changed at a restart
refuses the sessions opened under the old one."""

from __future__ import annotations

from pathlib import Path

import httpx

from gateway.admin.sessions import SESSION_COOKIE
from sms_events.testing.environment import TestEnvironment

from ..reporter_support import ReporterDouble
from .admin_support import (
    ADMIN_EMAIL,
    API_KEY,
    OPERATOR_EMAIL,
    Gateway,
    Provider,
    csrf_of,
    logged_in,
    oidc_env,
    session_cookie_of,
    session_id_of,
    stored_session,
)


def _replay(base_url: str, cookie: str, path: str = "/admin/mailings") -> httpx.Response:
    """``path`` fetched by another client holding only ``cookie`` (a stolen copy)."""
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=15) as other:
        other.cookies.set(SESSION_COOKIE, cookie, path="/admin")
        return other.get(path)


def _is_login(resp: httpx.Response) -> bool:
    return resp.status_code == 303 and resp.headers["location"].startswith("/admin/login")


def test_logout_kills_the_session_wherever_its_cookie_is_replayed(gateway: Gateway) -> None:
    with logged_in(gateway.url, OPERATOR_EMAIL) as client:
        cookie = session_cookie_of(client)
        assert cookie is not None
        assert _replay(gateway.url, cookie).status_code == 200
        token = csrf_of(client.get("/admin").text)
        assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 303
    assert _is_login(_replay(gateway.url, cookie))
    assert _replay(gateway.url, cookie, "/admin/live").status_code == 401


def test_an_admin_logs_a_user_out_everywhere(
    gateway: Gateway, admin: httpx.Client, admin_env: TestEnvironment
) -> None:
    with (
        logged_in(gateway.url, OPERATOR_EMAIL) as laptop,
        logged_in(gateway.url, OPERATOR_EMAIL) as phone,
    ):
        _, claims = stored_session(admin_env.database_url, session_id_of(laptop))
        subject = claims["sub"]
        listing = admin.get("/admin/sessions").text
        assert f'data-subject="{subject}"' in listing and OPERATOR_EMAIL in listing
        resp = admin.post(
            "/admin/sessions/revoke", data={"csrf_token": csrf_of(listing), "subject": subject}
        )
        assert resp.status_code == 303 and "revoked=" in resp.headers["location"]
        assert int(resp.headers["location"].rsplit("=", 1)[1]) >= 2
        for device in (laptop, phone):
            assert _is_login(device.get("/admin/mailings"))
        assert f'data-subject="{subject}"' not in admin.get("/admin/sessions").text
        assert admin.get("/admin/mailings").status_code == 200  # the admin's own still stands
    # Revoked, not merely ended: logging in again gives a new session that works.
    with logged_in(gateway.url, OPERATOR_EMAIL) as again:
        assert again.get("/admin/mailings").status_code == 200


def test_a_rule_changed_at_a_restart_refuses_open_sessions(
    provider: Provider,
    admin_env: TestEnvironment,
    reporter_double: ReporterDouble,
    ports: dict[str, int],
    logs: Path,
) -> None:
    url = f"http://127.0.0.1:{ports['spare']}"
    by_email_only = {
        "ADMIN_ROLE_CLAIM": "",
        "ADMIN_REQUIRED_ROLE": "",
        "ADMIN_OPERATOR_ROLE": "",
        "ADMIN_VIEWER_ROLE": "",
    }
    base = {**admin_env.env_vars(), "API_KEYS": API_KEY, "REPORTER_URL": reporter_double.url}

    def start(allowed: str) -> Gateway:
        env = base | oidc_env(provider, url, ADMIN_ALLOWED_EMAILS=allowed, **by_email_only)
        gateway = Gateway(ports["spare"], env, logs / "restarted.log")
        gateway.start()
        return gateway

    gateway = start(ADMIN_EMAIL)
    try:
        with logged_in(url, ADMIN_EMAIL) as client:
            cookie = session_cookie_of(client)
            assert cookie is not None
            assert client.get("/admin/sessions").status_code == 200
        gateway.stop()
        gateway = start("someone-else@example.com")
        assert _is_login(_replay(url, cookie))
        assert '"event": "admin_session_refused"' in gateway.log()
        gateway.stop()
        gateway = start(f"someone-else@example.com,{ADMIN_EMAIL}")
        assert _replay(url, cookie).status_code == 200  # the rule, not the session, changed
    finally:
        gateway.stop()
