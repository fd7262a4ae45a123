"""Real components for the admin tests: the OpenID Connect provider (node, oidc-provider), the
gateway with the admin as a uvicorn process, a reporter stand-in (a real aiohttp server in a
thread), and a login through the provider's forms with plain HTTP."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import psycopg
from itsdangerous import URLSafeTimedSerializer
from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[4]
PROVIDER_DIR = ROOT / "tools" / "oidc-provider"

CLIENT_ID = "sms-admin-tests"
OTHER_CLIENT_ID = "another-app"
ADMIN_EMAIL = "admin@example.com"
# Holds a role no setting names: refused.
VIEWER_EMAIL = "viewer@example.com"
READER_EMAIL = "reader@example.com"
OPERATOR_EMAIL = "operator@example.com"
ROLE = "sms-admin"
VIEWER_ROLE = "sms-viewer"
OPERATOR_ROLE = "sms-operator"
API_KEY = f"admin-tests-{secrets.token_hex(16)}"
SESSION_SECRET = secrets.token_urlsafe(48)
USERS = {
    ADMIN_EMAIL: {"email": ADMIN_EMAIL, "roles": [ROLE], "name": "Ada Admin"},
    VIEWER_EMAIL: {"email": VIEWER_EMAIL, "roles": ["viewer"], "name": "Vic Viewer"},
    READER_EMAIL: {"email": READER_EMAIL, "roles": [VIEWER_ROLE], "name": "Rita Reader"},
    OPERATOR_EMAIL: {"email": OPERATOR_EMAIL, "roles": [OPERATOR_ROLE], "name": "Otto Operator"},
}


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


def spawn(args: list[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a process with ``env`` added to ours, its output appended to ``log_path``, in the
    log's folder (so no .env of the work tree is read)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(log_path.parent),
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Provider:
    """oidc-provider on 127.0.0.1 with our client (and another one, for a wrong audience)."""

    port: int
    redirect_uris: list[str]
    post_logout_uris: list[str]
    log_path: Path
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    other_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/never-called"

    def start(self) -> None:
        node = shutil.which("node")
        if node is None or not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("run `npm ci --prefix tools/oidc-provider` first (needs node)")
        other = {
            "client_id": OTHER_CLIENT_ID,
            "client_secret": self.other_secret,
            "redirect_uris": [self.other_redirect_uri],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }
        env = {
            "OIDC_TEST_PORT": str(self.port),
            "OIDC_TEST_CLIENT_ID": CLIENT_ID,
            "OIDC_TEST_CLIENT_SECRET": self.client_secret,
            "OIDC_TEST_REDIRECT_URIS": ",".join(self.redirect_uris),
            "OIDC_TEST_POST_LOGOUT_REDIRECT_URIS": ",".join(self.post_logout_uris),
            "OIDC_TEST_EXTRA_CLIENTS": _json([other]),
            "OIDC_TEST_USERS": _json(USERS),
        }
        self.proc = spawn([node, str(PROVIDER_DIR / "server.mjs")], env, self.log_path)
        wait_http(f"{self.issuer}/.well-known/openid-configuration", self.proc, 30)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def _json(value: Any) -> str:
    return json.dumps(value)


def oidc_env(provider: Provider, base_url: str, **overrides: str) -> dict[str, str]:
    return {
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": provider.client_secret,
        "ADMIN_SESSION_SECRET": SESSION_SECRET,
        "ADMIN_BASE_URL": base_url,
        "ADMIN_ROLE_CLAIM": "roles",
        # The older name, still granting admin; the other two name the lesser roles.
        "ADMIN_REQUIRED_ROLE": ROLE,
        "ADMIN_OPERATOR_ROLE": OPERATOR_ROLE,
        "ADMIN_VIEWER_ROLE": VIEWER_ROLE,
        # Chromium and httpx talk plain HTTP to 127.0.0.1 here; production keeps Secure on.
        "ADMIN_COOKIE_SECURE": "false",
        **overrides,
    }


@dataclass
class Gateway:
    """The gateway (with the admin) as a real uvicorn process."""

    port: int
    env: Mapping[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            "LOG_FORMAT": "json",
            "RELAY_ENABLED": "true",
            # The suite logs in far more often than a person; the limit has its own test.
            "LOGIN_RATE_LIMIT_PER_MINUTE": "6000",
            **self.env,
        }
        self.proc = spawn([sys.executable, "-m", "gateway"], env, self.log_path)
        wait_http(f"{self.url}/readyz", self.proc, 60)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"', re.I)


def _form_action(html: str) -> str:
    match = _FORM_ACTION.search(html)
    assert match, html[:500]
    return unescape(match.group(1))


def provider_login(client: httpx.Client, start_url: str, login: str) -> httpx.Response:
    """Follow a login from ``start_url`` through the provider's sign-in and consent forms;
    the last response (after every redirect)."""
    resp = client.get(start_url)
    for _ in range(4):
        if 'name="prompt" value="login"' in resp.text:
            resp = client.post(
                httpx.URL(str(resp.url)).join(_form_action(resp.text)),
                data={"prompt": "login", "login": login, "password": "any"},
            )
        elif 'name="prompt" value="consent"' in resp.text:
            resp = client.post(
                httpx.URL(str(resp.url)).join(_form_action(resp.text)), data={"prompt": "consent"}
            )
        else:
            return resp
    return resp


def session_cookie_of(client: httpx.Client) -> str | None:
    for cookie in client.cookies.jar:
        if cookie.name == "sms_admin_session":
            return cookie.value
    return None


@contextlib.contextmanager
def logged_in(base_url: str, email: str) -> Iterator[httpx.Client]:
    """An httpx client logged in as ``email`` through the provider's forms, sending the Origin
    a browser sends; redirects are not followed."""
    with httpx.Client(base_url=base_url, follow_redirects=True, timeout=15) as client:
        landed = provider_login(client, "/admin/auth/login?next=/admin/clients", email)
        assert landed.url.path == "/admin/clients", landed.text[:300]
        client.follow_redirects = False
        client.headers["Origin"] = base_url
        yield client


def stored_session(database_url: str, sid: str) -> tuple[str | None, dict[str, Any]]:
    """The ID token and claims the gateway keeps for the session ``sid`` (its cookie's)."""
    digest = hashlib.sha256(sid.encode()).digest()
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT id_token, claims FROM gateway_admin_sessions WHERE sid_hash = %s", (digest,)
        ).fetchone()
    assert row is not None, "no such session"
    return row[0], row[1]


def session_id_of(client: httpx.Client) -> str:
    """The session id inside ``client``'s signed session cookie."""
    value = session_cookie_of(client)
    assert value is not None
    data = URLSafeTimedSerializer(SESSION_SECRET, salt="sms-admin-session").loads(value)
    return str(data["sid"])


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def local(t: datetime) -> str:
    """A time as a datetime-local input takes it (the admin's zone is UTC in the tests)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def browser_login(page: Page, base_url: str, provider: Provider, path: str = "/admin") -> None:
    """Open ``path``, follow the login button to the provider, sign in (and consent)."""
    page.goto(f"{base_url}{path}")
    page.get_by_test_id("login").click()
    page.fill("input[name=login]", ADMIN_EMAIL)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"^({re.escape(base_url)}|{re.escape(provider.issuer)})"))
    if page.url.startswith(provider.issuer):  # the consent prompt
        page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{path}")
