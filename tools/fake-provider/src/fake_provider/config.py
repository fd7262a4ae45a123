"""Fake provider settings: defaults, FAKE_PROVIDER_* environment variables, CLI flags, and the
runtime changes accepted by ``POST /_control``."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CONTROL_KEYS", "DEFAULT_TOKEN", "Settings", "apply_control", "load_settings"]

# A fake for tests and local runs, so a well-known token is convenient; the real API's token
# (the dispatcher's SMS_API_TOKEN) has no default.
DEFAULT_TOKEN = "fake-provider-token"

# External name (env suffix, CLI flag and /_control key) -> dataclass field.
_NAMES: dict[str, str] = {
    "host": "host",
    "port": "port",
    "token": "token",
    "latency_ms": "latency_ms",
    "jitter_ms": "jitter_ms",
    "failure_rate": "failure_rate",
    "timeout_rate": "timeout_rate",
    "429_rate": "rate_429",
    "reject_rate": "reject_rate",
    "hang_s": "hang_s",
    "throttle_rps": "throttle_rps",
    "seed": "seed",
    "down": "down",
}
# What POST /_control may change (the listening address and the token are fixed at start).
CONTROL_KEYS = frozenset(_NAMES) - {"host", "port", "token"}
_RATES = ("failure_rate", "timeout_rate", "rate_429", "reject_rate")


@dataclass(frozen=True, slots=True)
class Settings:
    """How the fake behaves. Rates are probabilities per valid request; they are drawn in the
    order timeout, failure (500), 429, reject (400), so their sum must not exceed 1."""

    host: str = "127.0.0.1"
    port: int = 8010
    token: str = DEFAULT_TOKEN
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    failure_rate: float = 0.0
    timeout_rate: float = 0.0
    rate_429: float = 0.0
    reject_rate: float = 0.0
    hang_s: float = 30.0
    # Answer 429 (without Retry-After, as a plain rate limiter does) to what exceeds this many
    # requests a second, counted in 100 ms windows; 0: no throttle.
    throttle_rps: float = 0.0
    seed: int | None = None
    down: bool = False

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{_external(name)} must be between 0 and 1")
        if sum(getattr(self, name) for name in _RATES) > 1.0 + 1e-9:
            raise ValueError("the failure, timeout, 429 and reject rates must add up to at most 1")
        for name in ("latency_ms", "jitter_ms", "hang_s", "throttle_rps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if not self.token:
            raise ValueError("token must not be empty")

    def public(self) -> dict[str, Any]:
        """Everything but the token, under the external names (the GET /_control answer)."""
        return {key: getattr(self, field) for key, field in _NAMES.items() if field != "token"}


def _external(field: str) -> str:
    return next(key for key, value in _NAMES.items() if value == field)


def _convert(field: str, value: Any) -> Any:
    """Coerce one value (a string from env/CLI, or a JSON value) to the field's type."""
    kind = {f.name: f.type for f in dataclasses.fields(Settings)}[field]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"{_external(field)} must be a boolean")
    if isinstance(value, bool):
        raise ValueError(f"{_external(field)} must not be a boolean")
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"{_external(field)} must be a string")
        return value
    if kind == "int | None":
        if value is None or value == "":
            return None
        return _to_int(field, value)
    if kind == "int":
        return _to_int(field, value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{_external(field)} must be a number") from None


def _to_int(field: str, value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{_external(field)} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{_external(field)} must be an integer") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sms-fake-provider",
        description="Fake SMS probe API. Every flag defaults to its FAKE_PROVIDER_* variable.",
    )
    for key in _NAMES:
        if key == "down":
            parser.add_argument("--down", action="store_const", const="true", default=None)
        else:
            parser.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None)
    return parser


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, overridden by FAKE_PROVIDER_<NAME> variables, overridden by CLI flags."""
    values: dict[str, Any] = {}
    for key, field in _NAMES.items():
        raw = (environ or {}).get(f"FAKE_PROVIDER_{key.upper()}")
        if raw is not None:
            values[field] = _convert(field, raw)
    args = vars(_parser().parse_args(list(argv or [])))
    for key, field in _NAMES.items():
        if args.get(key) is not None:
            values[field] = _convert(field, args[key])
    return Settings(**values)


def apply_control(settings: Settings, changes: Mapping[str, Any]) -> Settings:
    """The settings after a POST /_control body; raises ValueError on unknown keys or values."""
    unknown = sorted(set(changes) - CONTROL_KEYS)
    if unknown:
        raise ValueError(f"unknown or read-only settings: {', '.join(unknown)}")
    fields = {_NAMES[key]: _convert(_NAMES[key], value) for key, value in changes.items()}
    return dataclasses.replace(settings, **fields)
