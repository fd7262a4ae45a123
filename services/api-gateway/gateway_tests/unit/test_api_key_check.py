"""API keys: named entries with scopes, matched exactly whichever key is sent."""

from __future__ import annotations

import pytest

from gateway.auth import LEGACY_SCOPES, MIN_KEY_LENGTH, ApiKeys, Scope, parse_key

ALPHA = "alpha-" + "a" * 40
BETA = "beta-" + "b" * 40


def test_accepts_each_configured_key_only() -> None:
    keys = ApiKeys([parse_key(f"crm:read+clients:write:{ALPHA}", 1), parse_key(BETA, 2)])
    alpha, beta = keys.match(ALPHA), keys.match(BETA)
    assert alpha is not None and (alpha.name, alpha.scopes) == (
        "crm", {Scope.READ, Scope.CLIENTS_WRITE})  # fmt: skip
    assert beta is not None and (beta.name, beta.scopes) == ("key-2", LEGACY_SCOPES)
    for wrong in ("", "alpha", ALPHA + " ", ALPHA.upper(), ALPHA + "x", f"crm:read:{ALPHA}"):
        assert keys.match(wrong) is None


def test_scopes_and_admin() -> None:
    crm = parse_key(f"crm:read:{ALPHA}", 1)
    ops = parse_key(f"ops:admin:{BETA}", 2)
    assert crm.allows(Scope.READ) and not crm.allows(Scope.MAILINGS_WRITE)
    assert all(ops.allows(s) for s in Scope)
    assert not parse_key(ALPHA, 1).allows(Scope.ADMIN)  # a bare key is never admin


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("short-key", f"shorter than {MIN_KEY_LENGTH}"),
        (f"crm:read:{'k' * 10}", "'crm' is shorter"),
        (f":read:{ALPHA}", "empty name"),
        (f"crm:write:{ALPHA}", "unknown scope"),
        (f"crm::{ALPHA}", "no scope"),
    ],
)
def test_bad_entries_are_refused_without_showing_the_key(entry: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as refused:
        parse_key(entry, 1)
    assert ALPHA not in str(refused.value)


def test_no_keys_accept_nothing() -> None:
    keys = ApiKeys([])
    assert not keys
    assert keys.match("") is None
    assert keys.match("anything") is None


def test_odd_tokens_do_not_raise() -> None:
    assert ApiKeys([parse_key(ALPHA, 1)]).match("\ud800\x00ключ") is None
