"""The new-mailing form shows the forecast live: audience, segments, unsendable recipients
and cost change as the operator types, before anything is created."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from playwright.sync_api import Page, expect

from .admin_support import API_KEY, Gateway, Provider, browser_login, local


def _clients(gateway: Gateway, tag: str) -> None:
    serial = uuid.uuid4().int % 10**7
    rows = [f"7977{(serial + i) % 10**7:07d},{tag},{zone}"
            for i, zone in enumerate(["UTC", "UTC", "Asia/Tokyo"])]  # fmt: skip
    response = httpx.post(
        f"{gateway.url}/api/v1/clients/import",
        content="phone,tag,time_zone\n" + "\n".join(rows) + "\n",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "text/csv"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 3


def test_the_new_mailing_form_shows_the_forecast_as_it_is_typed(
    page: Page, gateway: Gateway, provider: Provider
) -> None:
    tag = f"pv{uuid.uuid4().hex[:8]}"
    _clients(gateway, tag)
    browser_login(page, gateway.url, provider, "/admin/mailings/new")
    preview = page.get_by_test_id("preview")
    # The form's defaults have no text yet: the forecast says what is missing.
    expect(preview.get_by_test_id("preview-invalid")).to_be_visible()
    page.get_by_test_id("text").fill("Sale today")
    page.get_by_test_id("client-filter").fill(tag)
    expect(preview.get_by_test_id("preview-total")).to_have_text("3")
    expect(preview.get_by_test_id("preview-segments")).to_have_text("1 (GSM-7)")
    expect(preview.get_by_test_id("preview-zones")).to_contain_text("Asia/Tokyo")
    expect(preview.get_by_test_id("preview-cost")).to_contain_text("RUB")
    # Cyrillic makes it UCS-2; 71 characters take two segments.
    page.get_by_test_id("text").fill("ж" * 71)
    expect(preview.get_by_test_id("preview-segments")).to_have_text("2 (UCS-2)")
    # An end before the next window in Tokyo's and UTC's time leaves them without a moment.
    start = datetime.now(UTC) + timedelta(hours=1)
    page.get_by_test_id("start").fill(local(start))
    page.get_by_test_id("end").fill(local(start + timedelta(minutes=30)))
    opening = (start + timedelta(hours=2)).strftime("%H:00")
    closing = (start + timedelta(hours=3)).strftime("%H:00")
    page.locator("input[name=send_interval_time_start]").fill(opening)
    page.locator("input[name=send_interval_time_end]").fill(closing)
    expect(preview.get_by_test_id("preview-unsendable")).not_to_have_text("0")
    expect(preview.get_by_test_id("preview-reason").first).to_contain_text("no window before end")
    page.get_by_test_id("client-filter").fill(f"{tag}-nobody")
    expect(preview.get_by_test_id("preview-total")).to_have_text("0")
