"""A mailing's page shows its text's length in SMS segments, its follow-ups, and sends again
to the recipients whose messages ended in the ticked statuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from .admin_support import Gateway, Provider, browser_login, local


def _mailing_id(page: Page) -> int:
    match = re.search(r"/admin/mailings/(\d+)", page.url)
    assert match
    return int(match.group(1))


def test_resend_creates_a_follow_up_linked_both_ways(
    page: Page, gateway: Gateway, provider: Provider
) -> None:
    browser_login(page, gateway.url, provider, "/admin/mailings/new")
    start = datetime.now(UTC) + timedelta(hours=1)
    page.get_by_test_id("text").fill("Привет " * 12)  # UCS-2, 83 units: two segments
    page.get_by_test_id("start").fill(local(start))
    page.get_by_test_id("end").fill(local(start + timedelta(days=1)))
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("notice")).to_have_text("Mailing created.")
    original = _mailing_id(page)
    expect(page.get_by_test_id("length")).to_have_text("83 characters, 2 SMS segments (UCS-2)")

    # Nothing ticked: refused, with the reason.
    form = page.get_by_test_id("resend-form")
    form.locator("input[value=ND]").uncheck()
    page.get_by_test_id("resend").click()
    expect(page.get_by_test_id("error")).to_contain_text("non-empty list of statuses")

    form = page.get_by_test_id("resend-form")
    form.locator("input[value=CA]").check()
    page.get_by_test_id("resend").click()
    expect(page.get_by_test_id("notice")).to_contain_text("Follow-up created")
    follow_up = _mailing_id(page)
    assert follow_up != original
    expect(page.get_by_test_id("source")).to_contain_text(f"#{original}")
    expect(page.get_by_test_id("source")).to_contain_text("ND, CA")

    page.goto(f"{gateway.url}/admin/mailings/{original}")
    expect(page.get_by_test_id("follow-ups")).to_contain_text(f"#{follow_up}")
