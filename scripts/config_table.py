"""Print README's configuration table: every environment variable the services read.

    .venv/bin/python scripts/config_table.py > /tmp/config.md

The rows come from the code, not from a copy: the pydantic-settings ``Settings`` class of each
service (the field's env name, default and description) and the fake provider's settings
(its descriptions are taken from the table in tools/fake-provider/README.md). Secrets are shown
without a default. tests/deploy/test_deploy_env_docs.py checks README.md against the same names.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, AliasPath, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parent.parent

# (service, module, class): every pydantic Settings class a process builds from the environment.
SETTINGS_CLASSES = [
    ("api-gateway", "gateway.config", "Settings"),
    ("scheduler", "scheduler.config", "Settings"),
    ("dispatcher", "dispatcher.config", "Settings"),
    ("reporter", "reporter.config", "Settings"),
    ("sms-migrate", "sms_events.settings", "PostgresSettings"),
]
FAKE_PROVIDER = "fake-provider"
_ALL_SERVICES = ("api-gateway", "scheduler", "dispatcher", "reporter")


@dataclasses.dataclass
class Variable:
    name: str
    default: str
    description: str
    services: list[str]


def env_names(cls: type[BaseSettings], field: str, info: FieldInfo) -> list[str]:
    """The environment variable names pydantic-settings reads a field from (upper-cased; the
    lookup is case-insensitive unless the class says otherwise)."""
    alias = info.validation_alias or info.alias
    if alias is None:
        return [(str(cls.model_config.get("env_prefix", "")) + field).upper()]
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    names = []
    for choice in choices:
        first = choice.path[0] if isinstance(choice, AliasPath) else choice
        names.append(str(first).upper())
    return names


def _is_secret(info: FieldInfo) -> bool:
    return "SecretStr" in repr(info.annotation) or info.annotation is SecretStr


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if value is None or value == [] or value == "":
        return "(empty)"
    return str(value)


def settings_variables() -> Iterator[tuple[str, str, str, str]]:
    """(variable, default, service, description) for every field of every Settings class."""
    for service, module, name in SETTINGS_CLASSES:
        cls = getattr(importlib.import_module(module), name)
        for field, info in cls.model_fields.items():
            if _is_secret(info):
                default = "(secret, required)" if info.is_required() else "(secret)"
            elif info.is_required():
                default = "(required)"
            else:
                default = _show(info.get_default(call_default_factory=True))
            for env in env_names(cls, field, info):
                yield env, default, service, info.description or ""


def _fake_provider_descriptions() -> dict[str, str]:
    """The 'meaning' column of the settings table in tools/fake-provider/README.md."""
    readme = ROOT / "tools" / "fake-provider" / "README.md"
    meanings: dict[str, str] = {}
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("FAKE_PROVIDER_"):
            meanings[cells[0]] = cells[4]
    return meanings


def fake_provider_variables() -> Iterator[tuple[str, str, str, str]]:
    """The FAKE_PROVIDER_* variables (the fake's settings are a dataclass, not pydantic)."""
    from fake_provider.config import Settings

    defaults = Settings()
    meanings = _fake_provider_descriptions()
    values = {**defaults.public(), "token": defaults.token}
    for key, value in values.items():
        env = f"FAKE_PROVIDER_{key.upper()}"
        yield env, _show(value), FAKE_PROVIDER, meanings.get(env, "")


def collect() -> list[Variable]:
    """Every variable once, with the services that read it."""
    rows: dict[str, Variable] = {}
    for env, default, service, description in [*settings_variables(), *fake_provider_variables()]:
        if env in rows:
            rows[env].services.append(service)
        else:
            rows[env] = Variable(env, default, description, [service])
    return list(rows.values())


def _services(names: list[str]) -> str:
    if all(s in names for s in _ALL_SERVICES):
        names = ["all four services", *[n for n in names if n not in _ALL_SERVICES]]
    return ", ".join(names)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(variables: list[Variable]) -> str:
    lines = ["| Variable | Default | Service(s) | Description |", "|---|---|---|---|"]
    for v in variables:
        default = v.default if v.default.startswith("(") else f"`{v.default}`"
        lines.append(
            f"| `{v.name}` | {_cell(default)} | {_services(v.services)} | {_cell(v.description)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(markdown(collect()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
