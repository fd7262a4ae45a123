"""AdminSettings: OIDC from its own names or the seed's AUTH0_* ones, a session secret that must
be real, dev login never by default and never with OIDC, Secure cookies unless developing."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.admin import AdminSettings

SECRET = secrets.token_urlsafe(48)
CLIENT_SECRET = secrets.token_urlsafe(32)


def settings(**values: Any) -> AdminSettings:
    return AdminSettings(_env_file=None, **values)


def oidc(**values: Any) -> AdminSettings:
    base = {
        "oidc_issuer": "https://login.example.com/",
        "oidc_client_id": "admin",
        "oidc_client_secret": CLIENT_SECRET,
        "admin_session_secret": SECRET,
        "admin_allowed_emails": "ops@example.com",
        "admin_base_url": "https://sms.example.com",
    }
    return settings(**(base | values))


def test_nothing_configured_means_the_admin_is_closed() -> None:
    s = settings()
    assert not s.oidc_enabled
    assert not s.login_enabled
    assert not s.admin_dev_login


def test_oidc_settings_enable_login_with_secure_cookies() -> None:
    s = oidc()
    assert s.oidc_enabled and s.login_enabled
    assert s.cookies_secure


def test_auth0_names_are_accepted_as_the_oidc_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH0_DOMAIN", "tenant.eu.auth0.com")
    monkeypatch.setenv("AUTH0_CLIENT_ID", "abc")
    monkeypatch.setenv("AUTH0_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("ADMIN_SESSION_SECRET", SECRET)
    monkeypatch.setenv("ADMIN_ALLOWED_EMAILS", "ops@example.com")
    monkeypatch.setenv("ADMIN_BASE_URL", "https://sms.example.com/")
    s = settings()
    assert s.admin_base_url == "https://sms.example.com"
    assert s.oidc_issuer == "https://tenant.eu.auth0.com/"
    assert s.oidc_client_id == "abc"
    assert s.oidc_client_secret is not None
    assert s.oidc_client_secret.get_secret_value() == CLIENT_SECRET
    assert s.uses_auth0_logout


def test_oidc_names_win_over_auth0_ones() -> None:
    s = oidc(auth0_domain="other.auth0.com", auth0_client_id="other")
    assert s.oidc_issuer == "https://login.example.com/"
    assert s.oidc_client_id == "admin"


def test_part_of_the_oidc_settings_is_an_error() -> None:
    with pytest.raises(ValidationError, match="must be set together"):
        settings(oidc_issuer="https://login.example.com/", admin_session_secret=SECRET)


@pytest.mark.parametrize(
    "secret", [None, "short", "changeme" * 5, "a" * 40, "your-secret-change-me-please-0123456789"]
)
def test_oidc_needs_a_real_session_secret(secret: str | None) -> None:
    with pytest.raises(ValidationError, match="ADMIN_SESSION_SECRET"):
        settings(
            oidc_issuer="https://login.example.com/",
            oidc_client_id="admin",
            oidc_client_secret=CLIENT_SECRET,
            admin_session_secret=secret,
            admin_allow_any_user=True,
        )


def test_a_placeholder_client_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="OIDC_CLIENT_SECRET"):
        oidc(oidc_client_secret="changeme")


def test_a_plain_http_issuer_is_refused_except_on_this_machine() -> None:
    with pytest.raises(ValidationError, match="https"):
        oidc(oidc_issuer="http://login.example.com/")
    assert oidc(oidc_issuer="http://127.0.0.1:9000").oidc_enabled


def test_dev_login_is_off_by_default_and_never_with_oidc() -> None:
    assert not settings().admin_dev_login
    with pytest.raises(ValidationError, match="ADMIN_DEV_LOGIN"):
        oidc(admin_dev_login=True)


def test_dev_login_relaxes_the_secure_flag_unless_told_otherwise() -> None:
    assert not settings(admin_dev_login=True).cookies_secure
    assert settings(admin_dev_login=True, admin_cookie_secure=True).cookies_secure
    assert not oidc(admin_cookie_secure=False).cookies_secure


def test_allowed_emails_are_split_and_lowercased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_ALLOWED_EMAILS", " Ops@Example.com, ,boss@example.com,")
    assert settings().admin_allowed_emails == ["ops@example.com", "boss@example.com"]


def test_role_claim_and_role_go_together() -> None:
    with pytest.raises(ValidationError, match="ADMIN_ROLE_CLAIM"):
        oidc(admin_role_claim="roles")


def test_oidc_needs_the_public_base_url() -> None:
    # Every absolute link (redirect URI, logout return, the forms' origin) comes from it,
    # never from the request's Host.
    with pytest.raises(ValidationError, match="ADMIN_BASE_URL is required"):
        oidc(admin_base_url=None)
    with pytest.raises(ValidationError, match="https"):
        oidc(admin_base_url="http://sms.example.com")
    assert oidc(admin_base_url="http://127.0.0.1:8000").admin_base_url == "http://127.0.0.1:8000"
    assert settings(admin_dev_login=True).admin_base_url is None  # the dev login needs none


def test_role_names_and_email_lists_are_each_an_access_rule() -> None:
    for values in (
        {"admin_operator_emails": "op@example.com"},
        {"admin_viewer_emails": "Look@Example.com, "},
        {"admin_role_claim": "roles", "admin_viewer_role": "sms-viewer"},
    ):
        assert oidc(admin_allowed_emails="", **values).oidc_enabled
    assert oidc(admin_viewer_emails="Look@Example.com, ").admin_viewer_emails == [
        "look@example.com"
    ]


def test_the_time_zone_must_exist() -> None:
    with pytest.raises(ValidationError, match="ADMIN_TIME_ZONE"):
        settings(admin_time_zone="Mars/Olympus")


def test_the_secrets_do_not_show_in_the_settings_repr() -> None:
    text = repr(oidc()) + str(oidc().model_dump())
    assert SECRET not in text and CLIENT_SECRET not in text


def test_oidc_without_an_access_rule_is_refused_unless_said_explicitly() -> None:
    with pytest.raises(ValidationError, match="no access rule"):
        oidc(admin_allowed_emails="")
    assert oidc(admin_allowed_emails="", admin_allow_any_user=True).oidc_enabled
    assert oidc(admin_allowed_emails="", admin_role_claim="roles",
                admin_required_role="admin").oidc_enabled  # fmt: skip
