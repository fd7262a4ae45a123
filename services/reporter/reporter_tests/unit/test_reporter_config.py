"""Reporter settings: the report's time, zone and recipients (RECIPIENT_EMAIL_n included),
and the SMTP options."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from reporter.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith(("EMAIL_", "REPORT_", "RECIPIENT_EMAIL")):
            monkeypatch.delenv(name)


def test_defaults_leave_the_email_off() -> None:
    s = Settings(_env_file=None)
    assert (s.report_time, s.report_tz, s.report_catch_up_days) == (time(0, 1), "UTC", 7)
    assert s.email_from == "sms-platform@localhost" and s.email_host_password is None
    assert not s.daily_report_enabled and s.smtp_port == 25


def test_numbered_recipients_in_number_order_after_report_recipients(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("RECIPIENT_EMAIL_3=three@example.com\nRECIPIENT_EMAIL_1=file@example.com\n")
    monkeypatch.setenv("REPORT_RECIPIENTS", " ops@example.com ,Two@Example.com,")
    monkeypatch.setenv("RECIPIENT_EMAIL_1", "one@example.com")
    monkeypatch.setenv("RECIPIENT_EMAIL_10", "two@example.com")
    monkeypatch.setenv("EMAIL_HOST", "smtp.example.com")
    s = Settings(_env_file=dotenv)
    assert s.recipient_emails == ["one@example.com", "three@example.com", "two@example.com"]
    assert s.report_to == [
        "ops@example.com",
        "Two@Example.com",
        "one@example.com",
        "three@example.com",
    ]
    assert s.daily_report_enabled


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = [
        {"REPORT_TZ": "Mars/Olympus"},
        {"REPORT_TIME": "25:00"},
        {"REPORT_RECIPIENTS": "not-an-address"},
        {"RECIPIENT_EMAIL_2": "nobody@"},
        {"EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"},
        {"EMAIL_HOST_USER": "me"},
        {"EMAIL_HOST_USER": "me", "EMAIL_HOST_PASSWORD": "changethis"},
        {"REPORT_CATCH_UP_DAYS": "0"},
    ]
    for env in bad:
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            with pytest.raises(ValidationError):
                Settings(_env_file=None)


def test_the_password_is_a_secret_and_ports_follow_the_tls_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMAIL_HOST_USER", "me")
    monkeypatch.setenv("EMAIL_HOST_PASSWORD", "s3cret-value")
    monkeypatch.setenv("EMAIL_USE_SSL", "true")
    s = Settings(_env_file=None)
    assert "s3cret-value" not in repr(s) and s.smtp_port == 465
    assert s.email_host_password is not None
    assert s.email_host_password.get_secret_value() == "s3cret-value"
    monkeypatch.setenv("EMAIL_USE_SSL", "false")
    monkeypatch.setenv("EMAIL_USE_TLS", "true")
    assert Settings(_env_file=None).smtp_port == 587
    monkeypatch.setenv("EMAIL_PORT", "2525")
    assert Settings(_env_file=None).smtp_port == 2525


def test_a_smtp_login_goes_only_over_tls_except_to_a_loopback_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMAIL_HOST", "smtp.example.com")
    monkeypatch.setenv("EMAIL_HOST_USER", "me")
    monkeypatch.setenv("EMAIL_HOST_PASSWORD", "s3cret-value")
    with pytest.raises(ValidationError, match="EMAIL_USE_TLS or EMAIL_USE_SSL"):
        Settings(_env_file=None)
    monkeypatch.setenv("EMAIL_USE_TLS", "true")
    assert Settings(_env_file=None).email_use_tls
    monkeypatch.setenv("EMAIL_USE_TLS", "false")
    monkeypatch.setenv("EMAIL_HOST", "127.0.0.1")
    assert Settings(_env_file=None).email_host == "127.0.0.1"
