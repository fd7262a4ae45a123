"""API keys are matched exactly, whichever of several keys is sent."""

from __future__ import annotations

from gateway.auth import ApiKeys


def test_accepts_each_configured_key_only() -> None:
    keys = ApiKeys(["alpha-key", "beta-key"])
    assert keys.accepts("alpha-key")
    assert keys.accepts("beta-key")
    for wrong in ("", "alpha", "alpha-key ", "ALPHA-KEY", "alpha-keyx", "gamma-key"):
        assert not keys.accepts(wrong)


def test_no_keys_accept_nothing() -> None:
    keys = ApiKeys([])
    assert not keys
    assert not keys.accepts("")
    assert not keys.accepts("anything")


def test_odd_tokens_do_not_raise() -> None:
    assert not ApiKeys(["k"]).accepts("\ud800\x00ключ")
