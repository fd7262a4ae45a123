"""The admin in a real browser (headless Chromium) against the gateway process, logged in
through the real OpenID Connect provider; the reporter is a stand-in whose figures the tests
set, so that progress, charts and outages can be shown on demand."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Page, expect
from pydantic import BaseModel

from gateway.clients.importer import BATCH_SIZE
from sms_events import reporter_contract as contract
from sms_events.testing.environment import TestEnvironment

from ..reporter_support import ReporterDouble
from .admin_support import API_KEY, Gateway, Provider, browser_login, local

SHOTS = Path("/tmp")


def login(page: Page, gateway: Gateway, provider: Provider, path: str = "/admin") -> None:
    browser_login(page, gateway.url, provider, path)


@pytest.fixture
def reporter(reporter_double: ReporterDouble) -> Iterator[ReporterDouble]:
    yield reporter_double
    reporter_double.down = False
    reporter_double.overview = None


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def overview() -> dict[str, Any]:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(7)
    answer = {
        "clients": 12840,
        "mailings": {"scheduled": 3, "running": 2, "paused": 1, "finished": 14, "cancelled": 2},
        "messages": {"SC": 1840, "DL": 40210, "ND": 1312, "CA": 410},
        "delivery_rate": 0.9684,
        "sends_per_hour": [
            {
                "hour": iso(hour - timedelta(hours=h)),
                "delivered": rng.randrange(400, 2400),
                "failed": rng.randrange(0, 120),
            }
            for h in range(30, -1, -1)
            if h not in (11, 12)
        ],
        "segments_per_day": [{"day": hour.date().isoformat(), "segments": 41_922}],
    }
    return _valid(contract.OverallStats, answer)


def test_the_dashboard_shows_figures_and_charts(
    page: Page, gateway: Gateway, provider: Provider, reporter: ReporterDouble
) -> None:
    reporter.overview = overview()
    login(page, gateway, provider)
    expect(page.get_by_test_id("fig-clients")).to_have_text("12\u202f840")
    expect(page.get_by_test_id("fig-rate")).to_have_text("96.8 %")
    assert page.locator("svg.chart rect.c-delivered").count() >= 29
    expect(page.locator("svg.donut")).to_be_visible()
    page.screenshot(path=str(SHOTS / "admin-dashboard.png"), full_page=True)


def test_statistics_unavailable_when_the_reporter_is_down(
    page: Page, gateway: Gateway, provider: Provider, reporter: ReporterDouble
) -> None:
    reporter.down = True
    login(page, gateway, provider)
    expect(page.get_by_test_id("stats-unavailable")).to_be_visible()
    create_mailing(page, gateway, "Reporter is down", datetime.now(UTC) + timedelta(hours=1))
    expect(page.get_by_test_id("stats-unavailable")).to_be_visible()
    expect(page.get_by_test_id("charts-unavailable")).to_be_visible()
    expect(page.get_by_text("Messages unavailable")).to_be_visible()
    page.goto(f"{gateway.url}/admin/mailings")
    expect(page.get_by_text("Progress unavailable")).to_be_visible()


def create_mailing(page: Page, gateway: Gateway, text: str, start: datetime) -> int:
    page.goto(f"{gateway.url}/admin/mailings")
    page.get_by_test_id("new-mailing").click()
    page.get_by_test_id("text").fill(text)
    page.get_by_test_id("start").fill(local(start))
    page.get_by_test_id("end").fill(local(start + timedelta(days=1)))
    page.get_by_test_id("client-filter").fill("vip")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("notice")).to_have_text("Mailing created.")
    match = re.search(r"/admin/mailings/(\d+)", page.url)
    assert match
    return int(match.group(1))


def counters(created: int, delivered: int, failed: int, cancelled: int = 0) -> dict[str, Any]:
    return {
        "clients_count": created,
        "created_messages": created,
        "scheduled_messages": created - delivered - failed - cancelled,
        "delivered_messages": delivered,
        "undelivered_messages": failed,
        "cancelled_messages": cancelled,
        "attempts_total": delivered + 2 * failed,
        "first_sent_at": None,
        "last_sent_at": None,
        "completed_at": None,
        "resolved_at": iso(datetime.now(UTC)),
    }


def mailing_stats(mailing_id: int, delivered: int, failed: int) -> dict[str, Any]:
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    rng = random.Random(mailing_id)
    answer = {
        "mailing_id": mailing_id,
        "messages": {"SC": 30, "DL": delivered, "ND": failed, "CA": 0},
        "delivery_rate": round(delivered / (delivered + failed), 4),
        "attempts_total": delivered + 2 * failed,
        "failures": [
            {"reason": "HTTP 400: invalid phone", "attempts": failed - 4, "final": failed - 4},
            {"reason": "timeout", "attempts": 31, "final": 4},
            {"reason": "HTTP 503", "attempts": 12, "final": 0},
        ],
        "started_at": iso(minute - timedelta(minutes=24)),
        "completed_at": None,
        "time_to_complete_s": None,
        "sends_per_minute": [
            {
                "minute": iso(minute - timedelta(minutes=m)),
                "delivered": rng.randrange(3, 11),
                "failed": rng.randrange(0, 3),
            }
            for m in range(24, -1, -1)
        ],
        "by_dimension": {
            "operator_code": [
                {"value": "999", "messages": {"SC": 20, "DL": 100, "ND": 15, "CA": 0},
                 "delivery_rate": 0.8696},
                {"value": "912", "messages": {"SC": 10, "DL": delivered - 100, "ND": failed - 15,
                                              "CA": 0}, "delivery_rate": 0.9091},
            ],
            "tag": [{"value": None, "messages": {"SC": 30, "DL": delivered, "ND": failed,
                                                 "CA": 0}, "delivery_rate": 0.8824}],
            "time_zone": [{"value": "Asia/Tokyo", "messages": {"SC": 30, "DL": delivered,
                                                               "ND": failed, "CA": 0},
                           "delivery_rate": 0.8824}],
            "unknown": {"SC": 0, "DL": 0, "ND": 0, "CA": 0},
        },
        "segments_per_message": 1,
        "segments_sent": delivered,
        "latency": {"settled": delivered + failed, "p50_s": 1.585, "p90_s": 12.589,
                    "p99_s": 79.433, "max_s": 316.228, "resolution": 0.259},
    }  # fmt: skip
    return _valid(contract.MailingStats, answer)


def _valid(model: type[BaseModel], answer: dict[str, Any]) -> dict[str, Any]:
    """The double answers what the real reporter would: its contract holds the answer (the
    gateway refuses any other as garbled)."""
    model.model_validate(answer)
    return answer


def messages(mailing_id: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    out = []
    for i in range(120):
        status = "DL" if i % 6 else "ND"
        out.append(
            {
                "id": 20_000 - i, "datetime_send": iso(now - timedelta(seconds=30 * i)),
                "status": status, "mailing_id": mailing_id, "client_id": 500 + i,
                "attempts": 1 if status == "DL" else 3,
                "last_error": None if status == "DL" else "HTTP 400: invalid phone",
                "created_at": iso(now - timedelta(hours=1)), "updated_at": iso(now),
            }
        )  # fmt: skip
    return out


def test_mailings_are_created_edited_paused_resumed_and_cancelled(
    page: Page, gateway: Gateway, provider: Provider, reporter: ReporterDouble
) -> None:
    login(page, gateway, provider, "/admin/mailings")
    later = datetime.now(UTC) + timedelta(hours=2)
    mailing_id = create_mailing(page, gateway, "Spring sale: -20% on everything", later)
    expect(page.get_by_test_id("state").first).to_have_text("scheduled")

    page.get_by_test_id("edit").click()
    page.get_by_test_id("text").fill("Spring sale: -30% on everything")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("notice")).to_have_text("Mailing saved.")
    expect(page.get_by_text("Spring sale: -30% on everything")).to_be_visible()

    page.get_by_test_id("action-pause").click()
    expect(page.get_by_test_id("state").first).to_have_text("paused")
    page.get_by_test_id("action-resume").click()
    expect(page.get_by_test_id("state").first).to_have_text("scheduled")
    page.get_by_test_id("action-cancel").click()  # the confirm dialog is accepted
    expect(page.get_by_test_id("notice")).to_contain_text("Mailing cancelled")
    expect(page.get_by_test_id("state").first).to_have_text("cancelled")
    expect(page.get_by_test_id("action-cancel")).to_have_count(0)

    page.goto(f"{gateway.url}/admin/mailings")
    row = page.locator(f"tr[data-mailing-id='{mailing_id}']")
    expect(row.get_by_test_id("state")).to_have_text("cancelled")
    page.screenshot(path=str(SHOTS / "admin-mailings.png"), full_page=True)


def test_a_bad_mailing_form_shows_each_fields_error(
    page: Page, gateway: Gateway, provider: Provider, reporter: ReporterDouble
) -> None:
    login(page, gateway, provider, "/admin/mailings/new")
    page.get_by_test_id("text").fill("")
    start = datetime.now(UTC) + timedelta(hours=1)
    page.get_by_test_id("start").fill(local(start))
    page.get_by_test_id("end").fill(local(start - timedelta(hours=2)))
    page.get_by_test_id("save").click()
    expect(page.get_by_text("This field may not be blank.")).to_be_visible()
    page.get_by_test_id("text").fill("Hello")  # the form keeps what was typed
    expect(page.get_by_test_id("end")).to_have_value(local(start - timedelta(hours=2)))
    page.get_by_test_id("save").click()
    expect(page.get_by_text("datetime_end must be after datetime_start.")).to_be_visible()


def test_the_detail_page_shows_live_progress_charts_and_messages(
    page: Page, gateway: Gateway, provider: Provider, reporter: ReporterDouble
) -> None:
    login(page, gateway, provider, "/admin/mailings")
    mailing_id = create_mailing(
        page, gateway, "Your order is on its way", datetime.now(UTC) - timedelta(minutes=25)
    )
    reporter.counters[mailing_id] = counters(200, 150, 20)
    reporter.mailing_stats[mailing_id] = mailing_stats(mailing_id, 150, 20)
    reporter.messages[mailing_id] = messages(mailing_id)
    page.goto(f"{gateway.url}/admin/mailings/{mailing_id}")
    expect(page.get_by_test_id("state").first).to_have_text("running")
    expect(page.get_by_test_id("progress")).to_have_text("170 of 200 messages done · 85 %")
    expect(page.get_by_test_id("failures")).to_contain_text("HTTP 400: invalid phone")
    expect(page.get_by_test_id("rate")).to_have_text("88.2 %")
    expect(page.get_by_test_id("by-operator_code").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("by-operator_code")).to_contain_text("912")
    expect(page.get_by_test_id("by-tag")).to_contain_text("no tag")
    expect(page.get_by_test_id("by-time_zone")).to_contain_text("Asia/Tokyo")
    expect(page.get_by_test_id("latency-p50")).to_have_text("≤ 1.58 s")
    expect(page.get_by_test_id("latency-max")).to_have_text("≤ 5 min 16 s")
    expect(page.get_by_test_id("messages").locator("tbody tr")).to_have_count(50)
    page.screenshot(path=str(SHOTS / "admin-mailing-detail.png"), full_page=True)

    # Progress moves without a reload: the page polls its fragment every 2 seconds.
    page.evaluate("window.notReloaded = true")
    reporter.counters[mailing_id] = counters(200, 175, 25)
    expect(page.get_by_test_id("progress")).to_have_text(
        "200 of 200 messages done · 100 %", timeout=10_000
    )
    expect(page.get_by_test_id("state").first).to_have_text("finished")
    assert page.evaluate("window.notReloaded") is True

    page.get_by_test_id("status-filter").select_option("ND")
    expect(page).to_have_url(re.compile(r"status=ND"))
    rows = page.get_by_test_id("messages").locator("tbody tr")
    expect(rows).to_have_count(20)
    expect(rows.first).to_contain_text("undelivered")
    page.get_by_role("link", name="Next →").wait_for(state="detached")  # 20 fit on one page
    page.get_by_test_id("status-filter").select_option("")
    page.get_by_role("link", name="Next →").click()
    expect(page.get_by_text("Page 2 of 3")).to_be_visible()
    expect(rows.first).to_contain_text("19950")  # pages follow a cursor: the 51st newest on
    page.get_by_role("link", name="Next →").click()
    expect(page.get_by_text("Page 3 of 3")).to_be_visible()
    expect(rows).to_have_count(20)
    page.get_by_role("link", name="Next →").wait_for(state="detached")
    page.get_by_role("link", name="← Previous").click()
    expect(page.get_by_text("Page 2 of 3")).to_be_visible()
    expect(rows.first).to_contain_text("19950")
    page.get_by_role("link", name="← Previous").click()
    expect(page.get_by_text("Page 1 of 3")).to_be_visible()
    expect(rows.first).to_contain_text("20000")
    assert "cursor=" not in page.url  # back on the plain first page, which shows new messages


def unique_phone() -> str:
    return f"7{random.randrange(900, 999)}{random.randrange(10**7):07d}"


def test_clients_are_found_created_edited_and_deleted(
    page: Page, gateway: Gateway, provider: Provider
) -> None:
    login(page, gateway, provider, "/admin/clients")
    phone, tag = unique_phone(), f"t{random.randrange(10**6)}"
    page.get_by_test_id("new-client").click()
    page.get_by_test_id("phone").fill("12345")
    page.get_by_test_id("save").click()
    expect(page.get_by_text("Phone must be 11 digits starting with 7")).to_be_visible()
    page.get_by_test_id("phone").fill(f"+{phone}")
    page.get_by_test_id("tag").fill(tag)
    page.get_by_test_id("time-zone").fill("Europe/Moscow")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("notice")).to_have_text("Client created.")

    for field, value in (("phone", phone), ("tag", tag), ("operator", phone[1:4])):
        page.goto(f"{gateway.url}/admin/clients")
        page.get_by_test_id(f"search-{field}").fill(value)
        page.get_by_test_id("search").click()
        expect(page.get_by_test_id("clients")).to_contain_text(f"+{phone}")
    page.goto(f"{gateway.url}/admin/clients?tag={tag}")
    expect(page.get_by_test_id("clients").locator("tbody tr")).to_have_count(1)
    page.goto(f"{gateway.url}/admin/clients")
    page.screenshot(path=str(SHOTS / "admin-clients.png"), full_page=True)
    page.goto(f"{gateway.url}/admin/clients?tag={tag}")

    page.get_by_role("link", name="Edit").click()
    page.get_by_test_id("tag").fill(f"{tag}x")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("notice")).to_have_text("Client saved.")
    page.goto(f"{gateway.url}/admin/clients?tag={tag}x")
    page.locator("[data-testid^=delete-]").click()  # the confirm dialog is accepted
    expect(page.get_by_test_id("notice")).to_have_text("Client deleted.")
    page.goto(f"{gateway.url}/admin/clients?phone={phone}")
    expect(page.get_by_text("No clients match.")).to_be_visible()


def test_a_phone_is_opted_out_and_taken_back_on_the_opt_outs_page(
    page: Page, gateway: Gateway, provider: Provider
) -> None:
    login(page, gateway, provider)
    page.get_by_test_id("nav-opt-outs").click()
    page.get_by_test_id("phone").fill("12345")
    page.get_by_test_id("add").click()
    expect(page.get_by_text("Phone must be 11 digits starting with 7")).to_be_visible()
    phone = unique_phone()
    page.get_by_test_id("phone").fill(f"+{phone}")
    page.get_by_test_id("reason").fill("asked at the counter")
    page.get_by_test_id("add").click()
    expect(page.get_by_test_id("notice")).to_contain_text("added to the suppression list")
    row = page.locator(f"tr[data-phone='{phone}']")
    expect(row).to_contain_text("asked at the counter")
    expect(row).to_contain_text("admin")
    page.screenshot(path=str(SHOTS / "admin-opt-outs.png"), full_page=True)
    page.get_by_test_id(f"remove-{phone}").click()  # the confirm dialog is accepted
    expect(page.get_by_test_id("notice")).to_contain_text("taken off the suppression list")
    expect(row).to_have_count(0)


def test_a_csv_import_reports_each_bad_line(
    page: Page, gateway: Gateway, provider: Provider, tmp_path: Path
) -> None:
    good = [unique_phone(), unique_phone()]
    tag = f"imp{random.randrange(10**6)}"
    csv = tmp_path / "clients.csv"
    csv.write_text(
        "phone,tag,time_zone\n"
        f"{good[0]},{tag},Europe/Moscow\n"
        "8999123,vip,UTC\n"
        f"{good[1]},{tag},\n"
        f"{unique_phone()},{tag},Mars/Olympus\n"
    )
    login(page, gateway, provider, "/admin/clients")
    page.get_by_test_id("import").click()
    page.get_by_test_id("file").set_input_files(str(csv))
    page.get_by_test_id("upload").click()
    # The upload became a background job; its page follows it to the end.
    expect(page).to_have_url(re.compile(r"/admin/clients/import/[0-9a-f-]{36}$"))
    expect(page.get_by_test_id("state")).to_have_text("succeeded")
    expect(page.get_by_test_id("import-progress")).to_contain_text("100 %")
    expect(page.get_by_test_id("created")).to_have_text("2")
    expect(page.get_by_test_id("rejected")).to_have_text("2")
    errors = page.get_by_test_id("import-errors")
    expect(errors.locator("tbody tr")).to_have_count(2)
    expect(errors.locator("tbody tr").nth(0)).to_contain_text("3")
    expect(errors.locator("tbody tr").nth(0)).to_contain_text("Phone must be 11 digits")
    expect(errors.locator("tbody tr").nth(1)).to_contain_text("5")
    expect(errors.locator("tbody tr").nth(1)).to_contain_text("Unknown time zone")
    page.screenshot(path=str(SHOTS / "admin-import.png"), full_page=True)
    page.goto(f"{gateway.url}/admin/clients?tag={tag}")
    expect(page.get_by_test_id("client-count")).to_have_text("2")


def test_logout_ends_the_session_here_and_at_the_provider(
    page: Page, gateway: Gateway, provider: Provider
) -> None:
    login(page, gateway, provider)
    page.get_by_test_id("logout").click()
    page.get_by_role("button", name="Yes, sign me out").click()  # the provider's confirmation
    expect(page.get_by_role("heading", name="You are logged out")).to_be_visible()
    assert page.url.startswith(f"{gateway.url}/admin/logged-out")
    page.goto(f"{gateway.url}/admin/mailings")
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    page.get_by_test_id("login").click()
    # The provider asks for the password again: its session is gone too.
    expect(page.locator("input[name=login]")).to_be_visible()


def test_an_import_shows_live_progress_until_it_is_done(
    page: Page, gateway: Gateway, provider: Provider, admin_env: TestEnvironment, tmp_path: Path
) -> None:
    # A client whose row a transaction holds: the import commits its first batch (5,000 new
    # clients), then waits on that row, so the page shows a running job part-way.
    held = unique_phone()
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {API_KEY}"}) as api:
        assert api.post("/api/v1/clients/", json={"phone": held}).status_code == 201
    rows = [f"{unique_phone()},live,UTC" for _ in range(BATCH_SIZE)] + [f"{held},moved,UTC"]
    csv = tmp_path / "big.csv"
    csv.write_text("\n".join(rows) + "\n")
    login(page, gateway, provider, "/admin/clients/import")
    with psycopg.connect(admin_env.database_url) as conn:
        conn.execute("SELECT 1 FROM gateway_clients WHERE phone = %s FOR UPDATE", (held,))
        page.get_by_test_id("file").set_input_files(str(csv))
        page.get_by_test_id("upload").click()
        expect(page.get_by_test_id("created")).to_have_text(
            f"{BATCH_SIZE:,}".replace(",", "\u202f")
        )
        expect(page.get_by_test_id("state")).to_have_text("running")
        expect(page.get_by_test_id("import-progress")).to_contain_text(
            f"{BATCH_SIZE + 1:,}".replace(",", "\u202f") + " lines"
        )
        page.screenshot(path=str(SHOTS / "admin-import-running.png"), full_page=True)
        conn.rollback()  # lets the second batch through
    # No reload: the section polls its fragment until the job is final.
    expect(page.get_by_test_id("state")).to_have_text("succeeded")
    expect(page.get_by_test_id("updated")).to_have_text("1")
    expect(page.get_by_test_id("import-progress")).to_contain_text("100 %")
    expect(page.locator("#import-live [data-final=true]")).to_have_count(1)


def test_an_unknown_import_job_is_a_404_page(
    page: Page, gateway: Gateway, provider: Provider
) -> None:
    login(page, gateway, provider, "/admin/clients/import")
    for job in ("00000000-0000-0000-0000-000000000000", "nope"):
        response = page.goto(f"{gateway.url}/admin/clients/import/{job}")
        assert response is not None and response.status == 404
        expect(page.get_by_role("heading", name="Import not found")).to_be_visible()
