"""Shared helpers of the deployment tests: paths, YAML, the services' env names and metrics."""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, AliasPath
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

# compose service -> (Python module run with `python -m`, port of /healthz and /metrics)
APP_SERVICES = {
    "api-gateway": ("gateway", 8000),
    "scheduler": ("scheduler", 8001),
    "dispatcher": ("dispatcher", 8002),
    "reporter": ("reporter", 8003),
}
FAKE_PROVIDER = ("fake-provider", "fake_provider", 8010)

# pydantic Settings per compose service (sms-migrate reads only PostgresSettings).
SETTINGS = {
    "api-gateway": ("gateway.config", "Settings"),
    "scheduler": ("scheduler.config", "Settings"),
    "dispatcher": ("dispatcher.config", "Settings"),
    "reporter": ("reporter.config", "Settings"),
    "migrate": ("sms_events.settings", "PostgresSettings"),
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return data


# Plain-string settings that carry a password (in the URL): secrets like the SecretStr ones.
URL_SECRETS = frozenset({"DATABASE_URL", "AMQP_URL"})


def _field_env_names(cls: type[BaseSettings], *, secret: bool | None = None) -> set[str]:
    """The env names of the class's fields; only the SecretStr ones (secret=True), only the
    others (False), or all (None)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field, info in cls.model_fields.items():
        if secret is not None and ("SecretStr" in repr(info.annotation)) != secret:
            continue
        alias = info.validation_alias or info.alias
        if alias is None:
            names.add((prefix + field).upper())
            continue
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        for choice in choices:
            first = choice.path[0] if isinstance(choice, AliasPath) else choice
            names.add(str(first).upper())
    return names


@cache
def settings_env_names(service: str) -> frozenset[str]:
    """Every env variable the service's Settings class reads."""
    module, name = SETTINGS[service]
    cls = getattr(importlib.import_module(module), name)
    return frozenset(_field_env_names(cls))


@cache
def settings_secret_env_names(service: str) -> frozenset[str]:
    """The env variables of the service's settings that hold secrets (SecretStr fields, and
    the URLs with passwords)."""
    module, name = SETTINGS[service]
    cls = getattr(importlib.import_module(module), name)
    return frozenset(
        _field_env_names(cls, secret=True) | (settings_env_names(service) & URL_SECRETS)
    )


@cache
def fake_provider_env_names() -> frozenset[str]:
    """FAKE_PROVIDER_<KEY> for every setting the fake reads (a dataclass: its public() names
    plus the token, which public() leaves out)."""
    from fake_provider.config import Settings

    keys = [*Settings().public(), "token"]
    assert len(keys) == len(dataclasses.fields(Settings)), "a fake-provider setting is unnamed"
    return frozenset(f"FAKE_PROVIDER_{key.upper()}" for key in keys)


def all_service_env_names() -> set[str]:
    names = set(fake_provider_env_names())
    for service in SETTINGS:
        names |= settings_env_names(service)
    return names


def kustomize_command() -> list[str]:
    """`kustomize build` or `kubectl kustomize` (kubectl ships kustomize; the machine image
    has it). Without either the k8s tests skip locally, but fail in CI."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    message = "neither kustomize nor kubectl is installed: cannot render deploy/k8s"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """The resources kustomize renders for deploy/k8s/<overlay> ("base", "overlays/dev", ...)."""
    result = subprocess.run(
        [*kustomize_command(), str(K8S / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kustomize failed for {overlay}:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)
