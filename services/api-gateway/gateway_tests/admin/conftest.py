"""Admin UI fixtures: a real OpenID Connect provider, the gateway with the admin as a uvicorn
process on its own database and exchange, a reporter stand-in, and headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from sms_events.testing.environment import TestEnvironment
from sms_events.testing.processes import free_port

from ..reporter_support import ReporterDouble
from .admin_support import (
    ADMIN_EMAIL,
    API_KEY,
    Gateway,
    Provider,
    logged_in,
    oidc_env,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def ports() -> dict[str, int]:
    # "spare": the gateways a test starts and restarts itself (test_admin_sessions).
    return {name: free_port() for name in ("provider", "gateway", "system", "spare")}


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("admin-logs")


@pytest.fixture(scope="session")
def provider(ports: dict[str, int], logs: Path) -> Iterator[Provider]:
    gateways = [f"http://127.0.0.1:{ports[name]}" for name in ("gateway", "system", "spare")]
    provider = Provider(
        port=ports["provider"],
        redirect_uris=[f"{g}/admin/auth/callback" for g in gateways],
        post_logout_uris=[f"{g}/admin/logged-out" for g in gateways],
        log_path=logs / "oidc-provider.log",
    )
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def reporter_double() -> Iterator[ReporterDouble]:
    double = ReporterDouble()
    double.start_in_thread()
    yield double
    double.stop_in_thread()


@pytest.fixture(scope="session")
def admin_env() -> Iterator[TestEnvironment]:
    """A database and exchange of the admin tests' own: the gateway process publishes its
    events, which no other test's consumers should see."""
    env = TestEnvironment.create(["sms_events", "gateway"])
    yield env
    env.destroy()


@pytest.fixture(scope="session")
def gateway(
    admin_env: TestEnvironment,
    provider: Provider,
    reporter_double: ReporterDouble,
    ports: dict[str, int],
    logs: Path,
) -> Iterator[Gateway]:
    env = {
        **admin_env.env_vars(),
        "API_KEYS": API_KEY,
        "REPORTER_URL": reporter_double.url,
        "ADMIN_REPORTER_TIMEOUT_S": "1",
        **oidc_env(provider, f"http://127.0.0.1:{ports['gateway']}"),
    }
    gateway = Gateway(ports["gateway"], env, logs / "gateway.log")
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    """An httpx client logged in through the provider's forms, sending the Origin a browser
    sends; redirects are not followed."""
    with logged_in(gateway.url, ADMIN_EMAIL) as client:
        yield client


@pytest.fixture(scope="module")
def other_gateway(
    request: pytest.FixtureRequest,
    admin_env: TestEnvironment,
    reporter_double: ReporterDouble,
    logs: Path,
) -> Iterator[Gateway]:
    """A gateway whose admin settings come from the module's ``ADMIN_ENV``."""
    extra: dict[str, str] = request.module.ADMIN_ENV
    env = {**admin_env.env_vars(), "API_KEYS": API_KEY, "REPORTER_URL": reporter_double.url}
    name = request.module.__name__.rsplit(".", 1)[-1]
    gateway = Gateway(free_port(), env | extra, logs / f"{name}.log")
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: while Playwright's sync API is running it leaves its event
    # loop marked as running in this thread, and pytest-asyncio could not run async tests.
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _local_only(route: Route) -> Any:
    # Nothing leaves the machine (the provider's default pages would fetch web fonts).
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "http://localhost", "data:")):
        return route.continue_()
    return route.abort()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.route("**/*", _local_only)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()
