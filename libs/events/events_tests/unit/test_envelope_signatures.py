"""Envelope signatures: what the relay signs is exactly what a consumer accepts."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from sms_events.settings import RabbitSettings
from sms_events.signing import Signer

KEY = "k" * 32
BODY = b'{"specversion":"1.0","type":"mailing.scheduled","data":{"n":1}}'


def test_a_signed_body_is_accepted() -> None:
    signer = Signer.of(KEY)
    assert signer.refusal(BODY, signer.sign(BODY)) is None


def test_a_missing_signature_is_unsigned() -> None:
    assert Signer.of(KEY).refusal(BODY, None) == "unsigned"
    assert Signer.of(KEY).refusal(BODY, "") == "unsigned"
    assert Signer.of(KEY).refusal(BODY, 42) == "unsigned"


def test_one_changed_byte_or_another_key_is_a_bad_signature() -> None:
    signer = Signer.of(KEY)
    assert signer.refusal(BODY.replace(b"1", b"2"), signer.sign(BODY)) == "bad signature"
    assert signer.refusal(BODY, Signer.of("x" * 32).sign(BODY)) == "bad signature"
    assert signer.refusal(BODY, signer.sign(BODY).encode()) is None  # a bytes header value


def test_a_previous_key_verifies_but_never_signs() -> None:
    old, new = Signer.of("o" * 32), Signer.of(KEY, previous=["o" * 32])
    assert new.refusal(BODY, old.sign(BODY)) is None
    assert new.sign(BODY) == Signer.of(KEY).sign(BODY)


def test_the_signature_is_an_hmac_sha256_in_hex_with_its_scheme() -> None:
    signature = Signer.of(KEY).sign(BODY)
    assert signature.startswith("v1=") and len(signature) == 3 + 64


@pytest.mark.parametrize("key", ["short", "change-me-" + "x" * 30, "CHANGEME" + "x" * 30])
def test_settings_refuse_a_short_or_placeholder_key(key: str) -> None:
    with pytest.raises(ValidationError, match="event signing keys"):
        RabbitSettings(event_signing_key=SecretStr(key), _env_file=None)  # type: ignore[call-arg]


def test_settings_read_previous_keys_as_a_comma_list() -> None:
    settings = RabbitSettings(
        event_signing_key=SecretStr(KEY),
        event_signing_keys_previous=f"{'a' * 32}, {'b' * 32}",  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    assert [k.get_secret_value() for k in settings.event_signing_keys_previous] == [
        "a" * 32,
        "b" * 32,
    ]
