"""The pure client rules: phone normalisation, operator code, time zones, change validation."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.clients.rules import (
    PHONE_MESSAGE,
    ClientChange,
    ClientState,
    apply_change,
    is_time_zone,
    normalize_phone,
    operator_code,
)
from gateway.clients.schemas import parse_change
from gateway.errors import InvalidInput
from gateway.fields import UNSET


@pytest.mark.parametrize(
    ("raw", "phone"),
    [("79991234567", "79991234567"), ("+79991234567", "79991234567"),
     (" 79991234567 ", "79991234567"), ("\t+70000000000\n", "70000000000")],
)  # fmt: skip
def test_normalize_phone_accepts_11_digits_starting_with_7(raw: str, phone: str) -> None:
    assert normalize_phone(raw) == phone


@pytest.mark.parametrize(
    "raw",
    ["", "+", "7999123456", "799912345678", "89991234567", "+89991234567", "++79991234567",
     "7 999 123 45 67", "7999123456a", "7(999)1234567", "7\u0669\u0669\u06691234567",
     "\uff17\uff19\uff19\uff19\uff11\uff12\uff13\uff14\uff15\uff16\uff17", "79991234567\x00"],
)  # fmt: skip
def test_normalize_phone_rejects_everything_else(raw: str) -> None:
    with pytest.raises(ValueError, match=PHONE_MESSAGE.replace(".", r"\.")):
        normalize_phone(raw)


def test_operator_code_is_digits_two_to_four() -> None:
    assert operator_code("79161234567") == "916"
    assert ClientState("71230000001").operator_code == "123"


@pytest.mark.parametrize("name", ["UTC", "Europe/Moscow", "Asia/Kamchatka", "America/New_York"])
def test_real_iana_zones_are_time_zones(name: str) -> None:
    assert is_time_zone(name)


@pytest.mark.parametrize(
    "name", ["", "utc ", "europe/moscow", "Mars/Olympus", "../etc/passwd", "localtime", "+03:00"]
)
def test_other_names_are_not_time_zones(name: str) -> None:
    assert not is_time_zone(name)


def test_parse_change_reports_every_bad_field_at_once() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_change({"phone": "1", "tag": "x" * 21, "time_zone": "Nope"}, require_phone=True)
    assert set(caught.value.errors) == {"phone", "tag", "time_zone"}
    assert all(len(messages) == 1 for messages in caught.value.errors.values())


def test_parse_change_keeps_left_out_fields_unset_and_ignores_unknown_ones() -> None:
    change = parse_change({"tag": " vip ", "colour": "red"}, require_phone=False)
    assert change == ClientChange(phone=UNSET, tag="vip", time_zone=UNSET)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({}, "phone", "This field is required."),
        ({"phone": None}, "phone", "This field may not be null."),
        ({"phone": False}, "phone", "Not a valid string."),
        ({"phone": "79991234567", "time_zone": None}, "time_zone", "This field may not be null."),
        ({"phone": "79991234567", "tag": ["a"]}, "tag", "Not a valid string."),
        ({"phone": "79991234567", "tag": "\x00"}, "tag", "Null characters are not allowed."),
    ],
)
def test_parse_change_messages(data: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_change(data, require_phone=True)
    assert caught.value.errors == {field: [message]}


def test_a_phone_sent_as_a_number_is_accepted_like_drf_does() -> None:
    assert parse_change({"phone": 79991234567}, require_phone=True).phone == "79991234567"


@pytest.mark.parametrize("data", [[], "x", 1, None])
def test_parse_change_wants_an_object(data: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_change(data, require_phone=False)
    assert list(caught.value.errors) == ["non_field_errors"]


def test_blank_tag_means_no_tag() -> None:
    assert parse_change({"tag": "   "}, require_phone=False).tag is None


def test_new_client_gets_defaults() -> None:
    state = apply_change(None, ClientChange(phone="79991234567"))
    assert state == ClientState("79991234567", None, "UTC")


def test_apply_change_keeps_fields_left_out() -> None:
    current = ClientState("79991234567", "vip", "Asia/Omsk")
    assert apply_change(current, ClientChange(time_zone="UTC")) == ClientState(
        "79991234567", "vip", "UTC"
    )
    assert apply_change(current, ClientChange(tag=None)).tag is None
    assert apply_change(current, ClientChange()) == current


def test_a_new_client_needs_a_phone() -> None:
    with pytest.raises(InvalidInput):
        apply_change(None, ClientChange(tag="x"))
