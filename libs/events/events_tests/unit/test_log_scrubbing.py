"""The logging processor that masks secrets whatever a caller passed in."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import structlog
from structlog.testing import capture_logs

from sms_events.logs import configure_logging, scrub_secrets


def _scrub(**event: Any) -> dict[str, Any]:
    return dict(scrub_secrets(None, "info", dict(event)))


def test_masks_values_under_secret_looking_keys() -> None:
    out = _scrub(
        event="login",
        password="hunter2",
        api_key="k-123",
        apikey="k-456",
        Authorization="Basic Zm9vOmJhcg==",
        access_token="t",
        client_secret="s",
        cookie="session=1",
    )

    assert out == {
        "event": "login",
        "password": "***",
        "api_key": "***",
        "apikey": "***",
        "Authorization": "***",
        "access_token": "***",
        "client_secret": "***",
        "cookie": "***",
    }


def test_masks_bearer_tokens_inside_any_string() -> None:
    out = _scrub(event="call_failed", error="401 for header Bearer eyJhbGciOi.J9.abc-_~+/= sent")

    assert out["error"] == "401 for header Bearer *** sent"


def test_masks_passwords_in_urls() -> None:
    out = _scrub(
        event="connect_failed",
        dsn="postgresql://sms:s3cr%40t@db:5432/sms",
        amqp="cannot reach amqp://guest:guest@localhost:5672/ (refused)",
        redis="redis://:onlypassword@cache:6379/0",
    )

    assert out["dsn"] == "postgresql://sms:***@db:5432/sms"
    assert out["amqp"] == "cannot reach amqp://guest:***@localhost:5672/ (refused)"
    assert out["redis"] == "redis://:***@cache:6379/0"


def test_masks_a_password_that_contains_an_at_sign() -> None:
    out = _scrub(event="e", url="postgresql://sms:p@ss@db/sms")

    assert "p@ss" not in out["url"] and "ss@" not in out["url"]
    assert out["url"].endswith("@db/sms")


def test_masks_secrets_nested_in_dicts_and_lists() -> None:
    out = _scrub(
        event="request_failed",
        request={"headers": {"Authorization": "Bearer abc.def"}, "url": "https://u:pw@x/y"},
        attempts=[{"token": "t1"}, "Bearer zzz"],
    )

    assert out["request"] == {"headers": {"Authorization": "***"}, "url": "https://u:***@x/y"}
    assert out["attempts"] == [{"token": "***"}, "Bearer ***"]


def test_masks_phones_anywhere_keeping_the_operator_code() -> None:
    out = _scrub(
        event="import failed",
        error="duplicate key: Key (phone)=(79991234567) already exists",
        exception="Traceback ...\nUniqueViolationError: (phone)=(+79001112233)",
        phone="79991234567",
        recipient={"client_phone": 79991234567},
        number=79991234567,
        message_id=123456789012,  # 12 digits: not a phone
        count=42,
    )
    assert out["error"] == "duplicate key: Key (phone)=(7999***) already exists"
    assert out["exception"].endswith("(phone)=(+7900***)")
    assert out["phone"] == out["recipient"]["client_phone"] == "***"
    assert out["number"] == "7999***"
    assert (out["message_id"], out["count"]) == (123456789012, 42)


def test_leaves_ordinary_values_alone() -> None:
    out = _scrub(event="message_sent", status=200, mailing_id=4, note="no secrets: a:b@c")

    assert out == {
        "event": "message_sent",
        "status": 200,
        "mailing_id": 4,
        "note": "no secrets: a:b@c",
    }


def test_configured_logging_scrubs_before_rendering(capsys: Any) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("tests", "INFO", "json")
    try:
        structlog.get_logger("t").warning("db_down", dsn="postgresql://u:topsecret@h/db")
        logging.getLogger("asyncpg").warning("lost %s", "amqp://guest:topsecret@h/")
        err = capsys.readouterr().err
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root.handlers[:], root.level = handlers, level

    assert "topsecret" not in err
    lines = [orjson.loads(line) for line in err.splitlines()]
    assert [line["event"] for line in lines] == ["db_down", "lost amqp://guest:***@h/"]
    assert lines[0]["dsn"] == "postgresql://u:***@h/db"
    assert lines[0]["service"] == "tests"


def test_capture_logs_sees_events_with_their_keys() -> None:
    with capture_logs() as logs:
        structlog.get_logger("t").info("relay_leading", batch=3)

    assert logs == [{"event": "relay_leading", "batch": 3, "log_level": "info"}]
