"""The admin on the whole running system: every service a real process (scheduler, dispatcher,
reporter, the fake SMS provider), the gateway with the admin, the real OIDC provider and
Chromium. Log in, import clients (one bad line), create a mailing and watch it complete, cancel
another one, log out."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sms_events.testing.environment import TestEnvironment
from sms_events.testing.processes import SERVICES, free_port, system_env

from .admin_support import (
    API_KEY,
    Provider,
    browser_login,
    local,
    oidc_env,
    spawn,
    stop,
    wait_http,
)

pytestmark = pytest.mark.e2e

PROVIDER_TOKEN = "admin-e2e-provider-token"
FAST = {
    "DISPATCH_RETRY_BASE_S": "0.2",
    "DISPATCH_RETRY_CAP_S": "1",
    "DISPATCH_TIMEOUT_S": "2",
    "SCHEDULER_TICK_S": "0.1",
}


@dataclass
class System:
    url: str


@pytest.fixture(scope="module")
def system(
    provider: Provider, ports: dict[str, int], logs: Path, request: pytest.FixtureRequest
) -> Iterator[System]:
    env = TestEnvironment.create([s.module for s in SERVICES])
    own = {s.name: free_port() for s in SERVICES} | {"fake-provider": free_port()}
    own["api-gateway"] = ports["system"]  # the redirect URI the OIDC provider knows
    service_env = (
        env.env_vars()
        | FAST
        | system_env(own, api_key=API_KEY, provider_token=PROVIDER_TOKEN)
        | oidc_env(provider, f"http://127.0.0.1:{ports['system']}")
    )
    commands = {s.name: [sys.executable, "-m", s.module] for s in SERVICES}
    commands["fake-provider"] = [sys.executable, "-m", "fake_provider"]
    running: dict[str, subprocess.Popen[bytes]] = {}
    log_dir = logs / "system"
    try:
        for name in ("fake-provider", *commands.keys() - {"fake-provider"}):
            running[name] = spawn(commands[name], service_env, log_dir / f"{name}.log")
        for name, proc in running.items():
            health = "healthz" if name == "fake-provider" else "readyz"
            wait_http(f"http://127.0.0.1:{own[name]}/{health}", proc, 60)
        yield System(f"http://127.0.0.1:{own['api-gateway']}")
    finally:
        for proc in running.values():
            stop(proc)
        if request.session.testsfailed:
            for name in running:
                tail = (log_dir / f"{name}.log").read_text(errors="replace")[-4000:]
                sys.stderr.write(f"\n===== {name} log (tail) =====\n{tail}\n")
        env.destroy()


def _phone() -> str:
    return f"7{random.randrange(900, 999)}{random.randrange(10**7):07d}"


def _new_mailing(page: Page, base: str, text: str, tag: str, start: datetime) -> int:
    page.goto(f"{base}/admin/mailings/new")
    page.get_by_test_id("text").fill(text)
    page.get_by_test_id("start").fill(local(start))
    page.get_by_test_id("end").fill(local(start + timedelta(hours=1)))
    page.get_by_test_id("client-filter").fill(tag)
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("notice")).to_have_text("Mailing created.")
    match = re.search(r"/admin/mailings/(\d+)", page.url)
    assert match
    return int(match.group(1))


def test_a_mailing_created_in_the_browser_completes_and_another_is_cancelled(
    system: System, provider: Provider, page: Page, tmp_path: Path
) -> None:
    browser_login(page, system.url, provider, "/admin/clients")
    tag = f"e2e{random.randrange(10**6)}"
    csv = tmp_path / "audience.csv"
    csv.write_text("".join(f"{_phone()},{tag},Europe/Moscow\n" for _ in range(5)) + "7123,x,UTC\n")
    page.get_by_test_id("import").click()
    page.get_by_test_id("file").set_input_files(str(csv))
    page.get_by_test_id("upload").click()
    expect(page.get_by_test_id("created")).to_have_text("5")
    expect(page.get_by_test_id("import-errors")).to_contain_text("6")

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    sent = _new_mailing(page, system.url, "Flash sale today only", tag, now)
    # Live progress, without reloading: the page polls its fragment every 2 seconds.
    expect(page.get_by_test_id("progress")).to_have_text(
        "5 of 5 messages done · 100 %", timeout=60_000
    )
    expect(page.get_by_test_id("delivered")).to_have_text("5")
    expect(page.get_by_test_id("state").first).to_have_text("finished")
    # The messages table follows without a reload too.
    expect(page.get_by_test_id("messages").locator("tbody tr")).to_have_count(5)
    expect(page.get_by_test_id("messages")).not_to_contain_text("undelivered")
    page.screenshot(path="/tmp/admin-system-mailing.png", full_page=True)

    held = _new_mailing(page, system.url, "Next week's offer", tag, now + timedelta(hours=2))
    expect(page.get_by_test_id("waiting")).to_have_text("5", timeout=30_000)
    page.get_by_test_id("action-cancel").click()
    expect(page.get_by_test_id("state").first).to_have_text("cancelled")
    for _ in range(60):
        page.reload()
        if page.get_by_test_id("cancelled").inner_text() == "5":
            break
        page.wait_for_timeout(500)
    expect(page.get_by_test_id("cancelled")).to_have_text("5")

    page.goto(f"{system.url}/admin/mailings")
    expect(page.locator(f"tr[data-mailing-id='{sent}']").get_by_test_id("state")).to_have_text(
        "finished"
    )
    expect(page.locator(f"tr[data-mailing-id='{held}']").get_by_test_id("state")).to_have_text(
        "cancelled"
    )
    page.get_by_test_id("logout").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page.get_by_role("heading", name="You are logged out")).to_be_visible()
