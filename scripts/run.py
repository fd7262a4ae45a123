"""`make run`: prepare .env, migrate, start every service in the foreground; Ctrl-C stops all."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from dotenv import dotenv_values

from sms_events.broker_users import (
    SERVICE_USERS,
    BrokerUsersSettings,
    RabbitmqCtl,
    password_variable,
    url_with_user,
)
from sms_events.migrate import apply_migrations, migration_dirs
from sms_events.settings import PostgresSettings
from sms_events.supervisor import SERVICES, ProcessGroup, wait_http_ok

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".env"


def _setting(name: str, dotenv: dict[str, str | None]) -> str | None:
    return os.environ.get(name) or dotenv.get(name)


def _remember(name: str, value: str) -> None:
    with ENV_FILE.open("a") as fh:
        fh.write(f"{name}={value}\n")
    ENV_FILE.chmod(0o600)


def prepare_env() -> dict[str, str]:
    """Generate what must exist but must not be committed: an API key, the internal token, the
    event signing key, the provider token."""
    dotenv = dotenv_values(ENV_FILE) if ENV_FILE.exists() else {}
    extra: dict[str, str] = {}
    if not _setting("API_KEYS", dotenv):
        key = secrets.token_urlsafe(32)
        _remember("API_KEYS", f"operator:admin:{key}")  # name:scopes:key (README)
        print(f"\nGenerated an API key (saved in .env, shown only this once):\n\n    {key}\n")
        print(f"    curl -H 'Authorization: Bearer {key}' http://127.0.0.1:8000/api/v1/clients/\n")
    if not _setting("INTERNAL_API_TOKEN", dotenv):
        _remember("INTERNAL_API_TOKEN", secrets.token_urlsafe(32))  # gateway -> reporter
    if not _setting("EVENT_SIGNING_KEY", dotenv):
        _remember("EVENT_SIGNING_KEY", secrets.token_urlsafe(32))  # relay -> every consumer
    if not _setting("SMS_API_URL", dotenv):
        # No real provider configured: run the fake one and point the dispatcher at it.
        token = _setting("SMS_API_TOKEN", dotenv)
        if not token:
            token = secrets.token_urlsafe(24)
            _remember("SMS_API_TOKEN", token)
        port = _setting("FAKE_PROVIDER_PORT", dotenv) or "8010"
        extra |= {
            "SMS_API_URL": f"http://127.0.0.1:{port}",
            "SMS_API_TOKEN": token,
            "FAKE_PROVIDER_TOKEN": token,
            "FAKE_PROVIDER_PORT": port,
        }
    if not _setting("LOG_FORMAT", dotenv) and sys.stdout.isatty():
        # The services write into a pipe here, so they cannot see the terminal themselves.
        extra["LOG_FORMAT"] = "console"
    return extra


def close_the_bus() -> dict[str, dict[str, str]]:
    """Each service's own broker user (sms_events.broker_users), put with rabbitmqctl where it
    manages the broker AMQP_URL names: the environment of each service, its AMQP_URL."""
    dotenv = dotenv_values(ENV_FILE) if ENV_FILE.exists() else {}
    url = _setting("AMQP_URL", dotenv) or "amqp://guest:guest@localhost:5672/"
    parts = urlsplit(url)
    # rabbitmqctl manages the node installed here; a broker ensure_services.py started in
    # Docker (port 5673) or a remote one is not it.
    local = parts.hostname in {"localhost", "127.0.0.1", "::1"} and (parts.port or 5672) == 5672
    if shutil.which("rabbitmqctl") is None or not local:
        print(
            "the event bus is open: every service connects as AMQP_URL's user (no rabbitmqctl"
            " for this broker); consumers still refuse envelopes the relay did not sign"
        )
        return {}
    for service in SERVICE_USERS:
        if not _setting(name := password_variable(service), dotenv):
            _remember(name, secrets.token_urlsafe(24))
    users = BrokerUsersSettings().service_users()
    try:
        ctl = RabbitmqCtl()
        for user in users.values():
            ctl.put_user(user)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        print(
            f"the event bus is open: broker users not put ({exc}); consumers still refuse"
            " envelopes the relay did not sign"
        )
        return {}
    print("broker users:", ", ".join(user.name for user in users.values()))
    return {
        service: {"AMQP_URL": url_with_user(url, user.name, user.password)}
        for service, user in users.items()
    }


def ensure_database(dsn: str) -> None:
    base, _, name = dsn.rpartition("/")
    name = name.split("?")[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def main() -> int:
    os.chdir(ROOT)
    extra = prepare_env()
    own_users = close_the_bus()
    dsn = PostgresSettings().database_url
    ensure_database(dsn)
    applied = apply_migrations(dsn, migration_dirs(*(s.module for s in SERVICES)))
    print(f"migrations: {len(applied)} applied")
    group = ProcessGroup(env=extra)
    # The services run in sessions of their own (so that tests can signal a whole service),
    # so Ctrl-C reaches only this process: it asks every service to stop with SIGTERM.
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    if "FAKE_PROVIDER_TOKEN" in extra:
        group.start_module("fake-provider", "fake_provider")
    for spec in SERVICES:
        group.start_module(spec.name, spec.module, own_users.get(spec.name))
    gateway = f"http://{os.environ.get('GATEWAY_HOST', '127.0.0.1')}:" + (
        os.environ.get("GATEWAY_PORT", "8000")
    )
    try:
        wait_http_ok(f"{gateway}/healthz", 60, group)
        print(f"\nready: {gateway}/docs   (Ctrl-C stops everything)\n")
        while not group.exited() and not stopping.is_set():
            time.sleep(0.3)
        print("\nstopping every service…")
    except (TimeoutError, RuntimeError) as exc:
        print(f"startup failed: {exc}", file=sys.stderr)
    finally:
        # Give every service a SIGTERM (a no-op for those already stopping after Ctrl-C).
        group.stop_all(timeout=40)
    codes = group.exited()
    print("stopped:", ", ".join(f"{n}={c}" for n, c in codes.items()))
    return 0 if all(c in (0, -signal.SIGINT, -signal.SIGTERM) for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
