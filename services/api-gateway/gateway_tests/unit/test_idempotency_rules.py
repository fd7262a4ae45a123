"""Idempotency-Key rules: valid keys, when two requests are one, what a stored answer says."""

from __future__ import annotations

import pytest

from gateway.idempotency.rules import (
    InvalidKey,
    KeyReused,
    Stored,
    canonical_body,
    kept_headers,
    parse_key,
    replay_of,
    request_hash,
)


def test_no_header_is_no_key() -> None:
    assert parse_key(None) is None


@pytest.mark.parametrize("key", ["a", "0f8fad5b-d9cb-469f-a165-70867728950e", "~" * 255, "a b"])
def test_accepts_printable_ascii_up_to_255_characters(key: str) -> None:
    assert parse_key(key) == key


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "ключ", "nul\x00", "del\x7f"])
def test_refuses_empty_long_or_unprintable_keys_naming_the_header(key: str) -> None:
    with pytest.raises(InvalidKey, match="Idempotency-Key"):
        parse_key(key)


def test_key_order_and_whitespace_do_not_make_another_request() -> None:
    assert canonical_body({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == b'{"a":[1,{"c":3,"d":2}],"b":1}'
    same = request_hash("POST", "/api/v1/mailings/", {"text": "hi", "tag": None})
    assert same == request_hash("post", "/api/v1/mailings", {"tag": None, "text": "hi"})


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/api/v1/mailings/", {"text": "hi"}),
        ("POST", "/api/v1/clients/", {"text": "hi"}),
        ("POST", "/api/v1/mailings/", {"text": "hi!"}),
        ("POST", "/api/v1/mailings/", {"text": "hi", "extra": None}),
        ("POST", "/api/v1/mailings/", None),
    ],
)
def test_method_path_or_body_make_another_request(method: str, path: str, body: object) -> None:
    first = request_hash("POST", "/api/v1/mailings/", {"text": "hi"})
    assert request_hash(method, path, body) != first


def test_parts_cannot_be_shifted_into_each_other() -> None:
    assert request_hash("POST", "/a", "b") != request_hash("POST", "/a\x00", "b")


def test_replays_the_answer_to_the_same_request_only() -> None:
    stored = Stored(request_hash("POST", "/p", {}), 201, {}, b"{}")
    assert replay_of(None, stored.request_hash) is None
    assert replay_of(stored, request_hash("POST", "/p/", {})) is stored
    with pytest.raises(KeyReused, match="Idempotency-Key was used with a different request"):
        replay_of(stored, request_hash("POST", "/p", {"a": 1}))


def test_keeps_only_the_headers_a_replay_repeats() -> None:
    headers = {"content-type": "application/json", "location": "/x", "x-request-id": "r1"}
    assert kept_headers(headers) == {"content-type": "application/json", "location": "/x"}
