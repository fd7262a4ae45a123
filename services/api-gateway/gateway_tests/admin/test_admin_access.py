"""What a request without a valid session or a real form gets: nothing. Unauthenticated pages
redirect to the login, fragments answer 401, forged forms 403, a tampered cookie is no
session, a user without the role is refused; secrets and tokens stay out of pages and logs."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from gateway.admin.sessions import SESSION_COOKIE
from sms_events.testing.environment import TestEnvironment

from .admin_support import (
    ADMIN_EMAIL,
    SESSION_SECRET,
    VIEWER_EMAIL,
    Gateway,
    Provider,
    csrf_of,
    provider_login,
    session_cookie_of,
    stored_session,
)


@pytest.fixture
def anonymous(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, follow_redirects=False, timeout=15) as client:
        yield client


def test_pages_redirect_to_the_login_and_fragments_answer_401(anonymous: httpx.Client) -> None:
    for path in ("/admin", "/admin/mailings", "/admin/mailings/1", "/admin/clients?tag=x"):
        resp = anonymous.get(path)
        assert resp.status_code == 303, path
        assert resp.headers["location"].startswith("/admin/login?next=%2Fadmin")
    assert anonymous.get("/admin/mailings/1/live").status_code == 401
    assert anonymous.get("/admin/live", headers={"X-Admin-Live": "1"}).status_code == 401
    resp = anonymous.post("/admin/clients/new", data={"phone": "79990000001"})
    assert resp.status_code == 303 and resp.headers["location"].startswith("/admin/login")


def test_the_stylesheet_and_script_are_served_without_login(anonymous: httpx.Client) -> None:
    for path, kind in (
        ("/admin/static/admin.css", "text/css"),
        ("/admin/static/admin.js", "javascript"),
    ):
        resp = anonymous.get(path)
        assert resp.status_code == 200 and kind in resp.headers["content-type"]


def test_the_login_page_offers_single_sign_on_only(anonymous: httpx.Client) -> None:
    page = anonymous.get("/admin/login")
    assert page.status_code == 200
    assert "/admin/auth/login" in page.text and "dev-login" not in page.text
    assert anonymous.post("/admin/auth/dev-login").status_code == 403


def test_pages_carry_a_strict_content_security_policy(admin: httpx.Client) -> None:
    resp = admin.get("/admin")
    assert resp.status_code == 200
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["cache-control"] == "no-store"


def _phone() -> str:
    return f"7999{random.randrange(10**7):07d}"


def test_a_form_without_the_session_token_or_from_elsewhere_is_refused(
    admin: httpx.Client, gateway: Gateway
) -> None:
    token = csrf_of(admin.get("/admin/clients/new").text)
    phone = _phone()
    attempts = [
        ({}, {"phone": phone}),  # no token
        ({}, {"phone": phone, "csrf_token": "forged"}),
        ({"Origin": "http://evil.example"}, {"phone": phone, "csrf_token": token}),
    ]
    for headers, data in attempts:
        resp = admin.post("/admin/clients/new", data=data, headers=headers)
        assert resp.status_code == 403, (headers, data)
        assert "Request refused" in resp.text
    del admin.headers["Origin"]  # neither Origin nor Referer
    resp = admin.post("/admin/clients/new", data={"phone": phone, "csrf_token": token})
    assert resp.status_code == 403
    assert f"+{phone}" not in admin.get(f"/admin/clients?phone={phone}").text
    resp = admin.post(
        "/admin/clients/new",
        data={"phone": phone, "csrf_token": token},
        headers={"Referer": f"{gateway.url}/admin/clients/new"},
    )
    assert resp.status_code == 303
    assert f"+{phone}" in admin.get(f"/admin/clients?phone={phone}").text


def test_a_tampered_or_foreign_session_cookie_is_no_session(
    admin: httpx.Client, gateway: Gateway
) -> None:
    value = session_cookie_of(admin)
    assert value
    payload, signature = value.rsplit(".", 1)
    for forged in (
        f"{payload}.{signature[::-1]}",
        URLSafeTimedSerializer("another-key-" * 4, salt="sms-admin-session").dumps(
            {"csrf": "x", "user": {"sub": "intruder"}, "id_token": None, "created": 0}
        ),
    ):
        with httpx.Client(base_url=gateway.url, timeout=15) as other:
            other.cookies.set(SESSION_COOKIE, forged, path="/admin")
            resp = other.get("/admin/mailings")
            assert resp.status_code == 303
            assert resp.headers["location"].startswith("/admin/login")


def test_the_session_cookie_is_http_only_and_same_site(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, follow_redirects=False, timeout=15) as client:
        start = client.get("/admin/auth/login")
        header = start.headers["set-cookie"].lower()
        assert "httponly" in header and "samesite=lax" in header and "path=/admin" in header


def test_a_user_without_the_role_is_refused(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, follow_redirects=True, timeout=15) as client:
        landed = provider_login(client, "/admin/auth/login", VIEWER_EMAIL)
        assert landed.status_code == 403
        assert "Access denied" in landed.text and VIEWER_EMAIL in landed.text
        assert session_cookie_of(client) is None
        client.follow_redirects = False
        assert client.get("/admin").status_code == 303


def test_a_login_callback_without_this_browsers_state_is_refused(anonymous: httpx.Client) -> None:
    resp = anonymous.get("/admin/auth/callback", params={"code": "x", "state": "y"})
    assert resp.status_code == 400
    start = anonymous.get("/admin/auth/login")  # sets this browser's login cookie
    assert start.status_code == 303
    resp = anonymous.get("/admin/auth/callback", params={"code": "x", "state": "not-ours"})
    assert resp.status_code == 400 and "state does not match" in resp.text


def test_tokens_and_secrets_never_reach_pages_or_logs(
    admin: httpx.Client, gateway: Gateway, provider: Provider, admin_env: TestEnvironment
) -> None:
    value = session_cookie_of(admin)
    assert value is not None
    session = URLSafeTimedSerializer(SESSION_SECRET, salt="sms-admin-session").loads(value)
    assert set(session) == {"csrf", "sid"}  # the claims and the ID token stay server-side
    id_token, claims = stored_session(admin_env.database_url, session["sid"])
    assert id_token and claims["email"] == ADMIN_EMAIL
    pages = [admin.get(p).text for p in ("/admin", "/admin/mailings", "/admin/clients")]
    pages.append(admin.get("/admin/mailings/999999999").text)
    logout = admin.post("/admin/logout", data={"csrf_token": csrf_of(pages[0])})
    assert logout.status_code == 303  # the token goes to the provider in the redirect only
    log = gateway.log()
    for secret in (id_token, provider.client_secret, SESSION_SECRET, value):
        assert secret not in log
        for page in pages:
            assert secret not in page
    assert re.search(r'"event": "admin_login"', log)
