"""Broker users: the permission patterns say exactly which names each user may touch."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest

from sms_events.broker_users import (
    BrokerUsersSettings,
    User,
    main,
    password_hash,
    reader_permissions,
    service_permissions,
    url_with_user,
)


def _allows(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None  # RabbitMQ searches, it does not fullmatch


def test_a_service_may_touch_the_exchanges_and_its_own_queues_only() -> None:
    p = service_permissions(["dispatcher", "dispatcher-projections"], "sms.events", "t.")
    for name in ("sms.events", "sms.events.dlx", "t.dispatcher", "t.dispatcher-projections.dlq"):
        assert _allows(p.configure, name) and _allows(p.write, name) and _allows(p.read, name)
    for name in ("t.scheduler", "t.dispatcher.x", "sms.events.other", "xsms.events", "amq.default"):
        assert not _allows(p.configure, name) and not _allows(p.write, name), name


def test_a_reader_writes_only_its_own_queues_and_reads_the_exchange() -> None:
    p = reader_permissions("billing", "sms.events")
    assert _allows(p.configure, "ext.billing.q") and _allows(p.write, "ext.billing.q")
    assert _allows(p.read, "sms.events") and _allows(p.read, "ext.billing.q")
    for name in ("sms.events", "sms.events.dlx", "ext.other.q", "scheduler", "amq.default"):
        assert not _allows(p.write, name) and not _allows(p.configure, name), name


@pytest.mark.parametrize("name", ["sms-scheduler", "Billing", "a", "x.*", "ext billing"])
def test_a_reader_name_cannot_be_a_service_nor_a_pattern(name: str) -> None:
    with pytest.raises(ValueError, match="reader"):
        reader_permissions(name)


def test_password_hash_is_rabbitmq_sha256_with_its_salt() -> None:
    salt = b"\x01\x02\x03\x04"
    raw = base64.b64decode(password_hash("s3cret", salt))
    assert raw == salt + hashlib.sha256(salt + b"s3cret").digest()
    assert password_hash("s3cret") != password_hash("s3cret")  # a new salt each time


def test_url_with_user_replaces_the_credentials_and_quotes_them() -> None:
    assert (
        url_with_user("amqp://guest:guest@rabbit:5672/vh?x=1", "sms-gateway", "p@ss/w")
        == "amqp://sms-gateway:p%40ss%2Fw@rabbit:5672/vh?x=1"
    )
    assert url_with_user("amqp://localhost/", "u", "p") == "amqp://u:p@localhost/"


def test_service_users_name_every_missing_password() -> None:
    settings = BrokerUsersSettings(rabbitmq_gateway_pass="g" * 20, _env_file=None)  # type: ignore[arg-type,call-arg]
    with pytest.raises(ValueError, match="RABBITMQ_SCHEDULER_PASS, RABBITMQ_DISPATCHER_PASS"):
        settings.service_users()


def test_definitions_hold_the_administrator_and_every_service_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir("/")  # no .env
    for name in ("DEFAULT", "GATEWAY", "SCHEDULER", "DISPATCHER", "REPORTER"):
        monkeypatch.setenv(f"RABBITMQ_{name}_PASS", f"{name.lower()}-password")
    monkeypatch.setenv("AMQP_EXCHANGE", "events.x")
    assert main(["definitions"]) == 0
    document = json.loads(capsys.readouterr().out)
    users = {u["name"]: u for u in document["users"]}
    assert set(users) == {"sms", "sms-gateway", "sms-scheduler", "sms-dispatcher", "sms-reporter"}
    assert users["sms"]["tags"] == ["administrator"] and users["sms-gateway"]["tags"] == []
    assert "password" not in json.dumps(document).replace("password_hash", "")
    reporter = next(p for p in document["permissions"] if p["user"] == "sms-reporter")
    assert reporter["write"] == r"^(events\.x|events\.x\.dlx|reporter(\.dlq)?)$"


@pytest.mark.parametrize("password", ["has a space", "it's-quoted-x", "p@ss/word-long", "short"])
def test_a_password_rabbitmqctl_or_a_url_would_mangle_is_refused(password: str) -> None:
    with pytest.raises(ValueError, match="URL-safe"):
        User("sms-gateway", password, service_permissions([]))
