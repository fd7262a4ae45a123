"""Gateway settings from the environment: API_KEYS, GATEWAY_HOST, GATEWAY_PORT, REPORTER_URL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.config import Settings


def _settings() -> Settings:
    return Settings(_env_file=None)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("API_KEYS", "GATEWAY_HOST", "GATEWAY_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = _settings()
    assert settings.api_keys == []
    assert (settings.gateway_host, settings.gateway_port) == ("127.0.0.1", 8000)


def test_reads_comma_separated_keys_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = "first-key-" + "1" * 30, "crm:read:second-key-" + "2" * 30
    monkeypatch.setenv("API_KEYS", f" {first} ,{second},, ")
    monkeypatch.setenv("GATEWAY_HOST", "0.0.0.0")
    monkeypatch.setenv("GATEWAY_PORT", "9001")
    settings = _settings()
    assert [k.get_secret_value() for k in settings.api_keys] == [first, second]
    assert (settings.gateway_host, settings.gateway_port) == ("0.0.0.0", 9001)


def test_keys_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "very-secret-key-" + "1" * 30
    monkeypatch.setenv("API_KEYS", secret)
    settings = _settings()
    assert secret not in repr(settings)
    assert secret not in str(settings.model_dump())


@pytest.mark.parametrize("placeholder", ["changeme", "CHANGEME", "secret"])
def test_placeholder_keys_are_refused(monkeypatch: pytest.MonkeyPatch, placeholder: str) -> None:
    monkeypatch.setenv("API_KEYS", f"good-key-{'1' * 30},{placeholder}")
    with pytest.raises(ValidationError, match="placeholder"):
        _settings()


@pytest.mark.parametrize(
    ("keys", "says"),
    [("short-key-1", "shorter than 32"), (f"a:read:{'k' * 40},a:admin:{'j' * 40}", "'a' twice")],
)
def test_short_or_twice_named_keys_are_refused(
    monkeypatch: pytest.MonkeyPatch, keys: str, says: str
) -> None:
    monkeypatch.setenv("API_KEYS", keys)
    with pytest.raises(ValidationError, match=says):
        _settings()


def test_bad_port_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "70000")
    with pytest.raises(ValidationError):
        _settings()


def test_reporter_url_and_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REPORTER_URL", "REPORTER_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    defaults = _settings()
    assert (defaults.reporter_url, defaults.reporter_timeout_s) == ("http://127.0.0.1:8003", 5.0)
    monkeypatch.setenv("REPORTER_URL", "http://reporter:8003")
    monkeypatch.setenv("REPORTER_TIMEOUT_S", "2.5")
    assert (_settings().reporter_url, _settings().reporter_timeout_s) == (
        "http://reporter:8003",
        2.5,
    )
    monkeypatch.setenv("REPORTER_TIMEOUT_S", "0")
    with pytest.raises(ValidationError):
        _settings()


def test_the_dev_login_only_on_a_loopback_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_DEV_LOGIN", "true")
    monkeypatch.setenv("GATEWAY_HOST", "0.0.0.0")
    with pytest.raises(ValidationError, match="loopback GATEWAY_HOST"):
        _settings()
    monkeypatch.setenv("GATEWAY_HOST", "127.0.0.1")
    assert _settings().admin_dev_login
