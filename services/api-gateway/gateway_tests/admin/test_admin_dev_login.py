"""The development login, when switched on explicitly: a button logs in as a fixed user under
a loud warning; its form is CSRF-protected like every other."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from .admin_support import Gateway

ADMIN_ENV = {"ADMIN_DEV_LOGIN": "true"}


def test_the_dev_button_logs_in_under_a_warning_banner(other_gateway: Gateway, page: Page) -> None:
    page.goto(f"{other_gateway.url}/admin/clients")
    banner = page.get_by_role("alert").filter(has_text="Development login is ON")
    expect(banner).to_be_visible()
    page.get_by_test_id("dev-login").click()
    expect(page).to_have_url(f"{other_gateway.url}/admin/clients")
    expect(page.get_by_text("Local developer")).to_be_visible()
    expect(banner).to_be_visible()
    page.get_by_test_id("logout").click()
    expect(page.get_by_role("heading", name="You are logged out")).to_be_visible()
    page.goto(f"{other_gateway.url}/admin")
    expect(page).to_have_url(f"{other_gateway.url}/admin/login?next=%2Fadmin")
    assert "admin_dev_login_enabled" in other_gateway.log()


def test_the_dev_login_form_needs_its_token(other_gateway: Gateway) -> None:
    with httpx.Client(base_url=other_gateway.url, follow_redirects=False, timeout=15) as http:
        http.get("/admin/login")  # a session with a token, but the form below lacks it
        resp = http.post("/admin/auth/dev-login", headers={"Origin": other_gateway.url})
        assert resp.status_code == 403
        assert http.get("/admin").status_code == 303
