"""The tests find PostgreSQL and RabbitMQ in the environment, else in .env."""

from __future__ import annotations

from pathlib import Path

import pytest

from sms_events.testing.environment import TestSettings


def test_test_urls_are_read_from_dotenv_where_the_environment_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.setenv("TEST_AMQP_URL", "amqp://from-env:5672/")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "TEST_DATABASE_URL=postgresql://sms:pw@127.0.0.1:15432/postgres\n"
        "TEST_AMQP_URL=amqp://from-dotenv:5673/\n"
    )

    settings = TestSettings()

    assert settings.test_database_url == "postgresql://sms:pw@127.0.0.1:15432/postgres"
    assert settings.test_amqp_url == "amqp://from-env:5672/"


def test_test_urls_default_to_localhost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEST_DATABASE_URL", "TEST_AMQP_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

    settings = TestSettings()

    assert settings.test_database_url == "postgresql://postgres@localhost:5432/postgres"
    assert settings.test_amqp_url == "amqp://guest:guest@localhost:5672/"
