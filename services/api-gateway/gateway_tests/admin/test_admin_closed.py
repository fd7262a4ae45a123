"""Without OIDC and without the development login, the admin is closed: every page says which
settings open it, and nothing else is served."""

from __future__ import annotations

import httpx

from .admin_support import Gateway

ADMIN_ENV: dict[str, str] = {}


def test_every_page_explains_how_to_configure_login(other_gateway: Gateway) -> None:
    with httpx.Client(base_url=other_gateway.url, follow_redirects=False, timeout=15) as http:
        for path in ("/admin", "/admin/login", "/admin/mailings", "/admin/clients/new"):
            resp = http.get(path)
            assert resp.status_code == 403, path
            for name in (
                "OIDC_ISSUER",
                "OIDC_CLIENT_ID",
                "OIDC_CLIENT_SECRET",
                "ADMIN_SESSION_SECRET",
            ):
                assert name in resp.text
            assert "Log out" not in resp.text
        assert http.get("/admin/mailings/1/live").status_code == 401
        assert http.post("/admin/auth/dev-login").status_code == 403
        assert http.get("/admin/auth/login").headers["location"] == "/admin/login"
    assert "admin_login_not_configured" in other_gateway.log()
