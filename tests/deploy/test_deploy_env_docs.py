"""Every environment variable a service reads is documented in .env.example and README.md."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from functools import cache
from types import ModuleType

import pytest

from sms_events.broker_users import SERVICE_USERS, password_variable
from tests.deploy.deploy_support import (
    COMPOSE_FILE,
    ROOT,
    SETTINGS,
    all_service_env_names,
    fake_provider_env_names,
    settings_env_names,
)

ENV_EXAMPLE = ROOT / ".env.example"
BROKER_USER_PASSWORDS = [password_variable(service) for service in SERVICE_USERS]
README = ROOT / "README.md"
CONFIG_TABLE = ROOT / "scripts" / "config_table.py"


def _documented(text: str) -> set[str]:
    """Names assigned in an env file, commented out (`# NAME=default`) or not."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


@cache
def _config_table() -> ModuleType:
    """scripts/config_table.py, imported from its path (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("config_table", CONFIG_TABLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["config_table"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_services_read_the_variables_we_expect() -> None:
    # Guards the derivation itself: a few names per source must come out of it.
    assert {"DATABASE_URL", "AMQP_URL", "API_KEYS", "GATEWAY_PORT"} <= settings_env_names(
        "api-gateway"
    )
    assert {"SMS_API_TOKEN", "DISPATCH_CONCURRENCY"} <= settings_env_names("dispatcher")
    assert settings_env_names("migrate") >= {"DATABASE_URL"}
    assert {"FAKE_PROVIDER_TOKEN", "FAKE_PROVIDER_429_RATE"} <= fake_provider_env_names()


@pytest.mark.parametrize("service", [*SETTINGS, "fake-provider"])
def test_env_example_documents_every_variable_the_service_reads(service: str) -> None:
    names = fake_provider_env_names() if service == "fake-provider" else settings_env_names(service)
    missing = sorted(names - _documented(ENV_EXAMPLE.read_text()))
    assert missing == [], f".env.example does not document {missing} ({service})"


def test_env_example_documents_every_variable_compose_interpolates() -> None:
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    missing = sorted(used - _documented(ENV_EXAMPLE.read_text()))
    assert missing == [], f".env.example does not document {missing} (docker compose)"


def test_env_example_secrets_are_placeholders() -> None:
    assigned = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE))
    # Secrets the services read: empty, so the services (or compose's ${X:?}) refuse them.
    assert assigned["API_KEYS"] == ""
    assert assigned["SMS_API_TOKEN"] == ""
    assert assigned["EVENT_SIGNING_KEY"] == ""
    # Compose-only passwords: a value nobody can mistake for a real one.
    for name in ("POSTGRES_PASSWORD", "RABBITMQ_DEFAULT_PASS", "GRAFANA_ADMIN_PASSWORD",
                 *BROKER_USER_PASSWORDS):  # fmt: skip
        assert assigned[name] == "change-me", name
    # Nothing else is set: the services' defaults stay the single source of truth.
    assert set(assigned) == {
        "API_KEYS",
        "SMS_API_TOKEN",
        "POSTGRES_PASSWORD",
        "RABBITMQ_DEFAULT_PASS",
        "GRAFANA_ADMIN_PASSWORD",
        "EVENT_SIGNING_KEY",
        *BROKER_USER_PASSWORDS,
    }


def test_config_table_lists_every_variable_once() -> None:
    table = _config_table().markdown(_config_table().collect())
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.MULTILINE)
    assert len(rows) == len(set(rows))
    assert set(rows) == all_service_env_names()


def test_config_table_hides_secret_defaults() -> None:
    variables = {v.name: v for v in _config_table().collect()}
    assert variables["API_KEYS"].default.startswith("(secret")
    assert variables["SMS_API_TOKEN"].default.startswith("(secret")
    assert variables["DISPATCH_CONCURRENCY"].default == "200"


def test_config_table_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(CONFIG_TABLE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("| Variable | Default | Service(s) | Description |")


def test_readme_configuration_section_lists_every_variable() -> None:
    readme = README.read_text()
    match = re.search(r"^## Configuration\b.*?(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    hint = (
        "generate the table with `.venv/bin/python scripts/config_table.py` and paste it "
        "under a `## Configuration` heading in README.md"
    )
    assert match, f"README.md has no '## Configuration' section yet: {hint}"
    missing = sorted(all_service_env_names() - set(re.findall(r"[A-Z][A-Z0-9_]+", match[0])))
    assert missing == [], f"README.md's configuration section lacks {missing}: {hint}"
