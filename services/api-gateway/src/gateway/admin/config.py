"""Settings of the admin web UI: OpenID Connect login, sessions, access rules, the reporter.

Read from the environment (and the untracked .env) like the gateway's own ``Settings``; no
prefix, so the seed's ``AUTH0_*`` names and the shared ``REPORTER_URL`` work as they are.
"""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.admin.roles import Role, RoleRule
from sms_events.bearer import is_loopback

__all__ = ["MIN_SECRET_LENGTH", "AdminSettings"]

MIN_SECRET_LENGTH: Final = 32
# Values copied from examples and templates that must never guard a real deployment.
_PLACEHOLDERS: Final = frozenset(
    {"changeme", "change-me", "change_me", "secret", "your-secret", "your_secret", "xxx",
     "todo", "test", "password", "session-secret", "client-secret", "your-client-secret"}
)  # fmt: skip


def _is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return lowered in _PLACEHOLDERS or len(set(lowered)) <= 2 or "change" in lowered


def _origin(url: str, name: str, *, allow_http_locally: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{name} must be an absolute http(s) URL")
    if parts.scheme == "http" and not (allow_http_locally and is_loopback(parts.hostname)):
        raise ValueError(f"{name} must use https (http only for localhost)")
    return url


class AdminSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer URL (discovery at <issuer>/.well-known/...)",
    )
    oidc_client_id: str | None = Field(default=None, description="Client id at the provider")
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="Client secret at the provider"
    )
    auth0_domain: str | None = Field(
        default=None, description="Seed name: the issuer becomes https://<AUTH0_DOMAIN>/"
    )
    auth0_client_id: str | None = Field(default=None, description="Seed name of OIDC_CLIENT_ID")
    auth0_client_secret: SecretStr | None = Field(
        default=None, description="Seed name of OIDC_CLIENT_SECRET"
    )
    oidc_scopes: str = Field(
        default="openid email profile", description="Scopes asked for at login"
    )
    admin_allowed_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated emails (verified only) let in as admins",
    )
    admin_operator_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated emails (verified only) let in as operators: every change, "
        "no audit trail or sessions page",
    )
    admin_viewer_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated emails (verified only) let in as viewers: every page, no "
        "change",
    )
    admin_role_claim: str | None = Field(
        default=None, description="ID token claim holding the user's roles, e.g. roles"
    )
    admin_admin_role: str | None = Field(
        default=None, description="Value of ADMIN_ROLE_CLAIM that makes the user an admin"
    )
    admin_operator_role: str | None = Field(
        default=None, description="Value of ADMIN_ROLE_CLAIM that makes the user an operator"
    )
    admin_viewer_role: str | None = Field(
        default=None, description="Value of ADMIN_ROLE_CLAIM that makes the user a viewer"
    )
    admin_required_role: str | None = Field(
        default=None,
        description="Older name of ADMIN_ADMIN_ROLE (it let its holders do everything, as an "
        "admin does); both may be set",
    )
    admin_allow_any_user: bool = Field(
        default=False,
        description="With OIDC and no access rule, let every account the provider "
        "authenticates in (otherwise the gateway refuses to start)",
    )
    admin_session_secret: SecretStr | None = Field(
        default=None,
        description=f"Key signing the session cookie (at least {MIN_SECRET_LENGTH} characters); "
        "required with OIDC",
    )
    admin_session_max_age_s: int = Field(
        default=8 * 3600, ge=60, le=7 * 24 * 3600, description="Session lifetime in seconds"
    )
    admin_cookie_secure: bool | None = Field(
        default=None, description="Secure flag of the cookies (default: on, off in dev login)"
    )
    admin_dev_login: bool = Field(
        default=False,
        description="Development only: a button logging in as a fixed dev user, without OIDC",
    )
    admin_base_url: str | None = Field(
        default=None,
        description="Public URL of the gateway, the base of every absolute link of the admin "
        "(login redirect, logout return, the origin forms must come from); required with OIDC",
    )
    admin_time_zone: str = Field(
        default="UTC", description="IANA zone in which the admin shows and reads dates"
    )
    reporter_url: str = Field(
        default="http://127.0.0.1:8003", description="Base URL of the reporter's internal API"
    )
    internal_api_token: SecretStr | None = Field(
        default=None, description="Bearer token of the reporter's internal API"
    )
    admin_reporter_timeout_s: float = Field(
        default=3.0, gt=0, le=60, description="Timeout of each call to the reporter"
    )

    @field_validator(
        "admin_allowed_emails", "admin_operator_emails", "admin_viewer_emails", mode="before"
    )
    @classmethod
    def _split_emails(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            stripped = (v.strip().lower() if isinstance(v, str) else v for v in value)
            return [v for v in stripped if v != ""]
        return value

    @field_validator("admin_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in zoneinfo.available_timezones():
            raise ValueError("ADMIN_TIME_ZONE must be an IANA zone such as UTC or Europe/Moscow")
        return value

    @field_validator("admin_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return _origin(value.strip(), "ADMIN_BASE_URL", allow_http_locally=True).rstrip("/")

    @model_validator(mode="after")
    def _resolve(self) -> AdminSettings:
        if self.oidc_issuer is None and self.auth0_domain:
            domain = self.auth0_domain.strip().removeprefix("https://").strip("/")
            self.oidc_issuer = f"https://{domain}/"
        self.oidc_client_id = self.oidc_client_id or self.auth0_client_id
        self.oidc_client_secret = self.oidc_client_secret or self.auth0_client_secret
        given = [self.oidc_issuer, self.oidc_client_id, self.oidc_client_secret]
        if any(given) and not all(given):
            raise ValueError(
                "OIDC_ISSUER (or AUTH0_DOMAIN), OIDC_CLIENT_ID and OIDC_CLIENT_SECRET "
                "must be set together"
            )
        self._check_oidc()
        self._check_roles()
        self._check_session_secret()
        self._check_base_url()
        return self

    def _check_base_url(self) -> None:
        if self.oidc_enabled and self.admin_base_url is None:
            # Redirect URIs, logout returns and the CSRF origin would otherwise come from the
            # request's Host, which whoever sends the request chooses.
            raise ValueError(
                "ADMIN_BASE_URL is required with OIDC login: the public URL of the gateway, "
                "e.g. https://sms.example.com"
            )

    def _check_oidc(self) -> None:
        if not self.oidc_enabled:
            return
        assert self.oidc_issuer is not None and self.oidc_client_secret is not None
        _origin(self.oidc_issuer, "OIDC_ISSUER", allow_http_locally=True)
        if _is_placeholder(self.oidc_client_secret.get_secret_value()):
            raise ValueError("OIDC_CLIENT_SECRET is a placeholder; use the provider's secret")
        if self.admin_dev_login:
            raise ValueError("ADMIN_DEV_LOGIN cannot be combined with OIDC login; unset one")

    def _role_names(self) -> dict[Role, list[str]]:
        named = {
            Role.ADMIN: [self.admin_admin_role, self.admin_required_role],
            Role.OPERATOR: [self.admin_operator_role],
            Role.VIEWER: [self.admin_viewer_role],
        }
        return {role: [n for n in names if n] for role, names in named.items()}

    def _check_roles(self) -> None:
        named = any(self._role_names().values())
        if bool(self.admin_role_claim) != named:
            raise ValueError(
                "ADMIN_ROLE_CLAIM goes with at least one of ADMIN_ADMIN_ROLE, "
                "ADMIN_OPERATOR_ROLE, ADMIN_VIEWER_ROLE (or ADMIN_REQUIRED_ROLE)"
            )
        if self.oidc_enabled and not self._ruled and not self.admin_allow_any_user:
            # Public sign-up or social login would make anyone a full admin.
            raise ValueError(
                "OIDC login has no access rule: every account the provider authenticates "
                "would be an admin. Set ADMIN_ALLOWED_EMAILS (or ADMIN_OPERATOR_EMAILS, "
                "ADMIN_VIEWER_EMAILS), or ADMIN_ROLE_CLAIM with role names, or "
                "ADMIN_ALLOW_ANY_USER=true to mean exactly that"
            )

    @property
    def _ruled(self) -> bool:
        emails = self.admin_allowed_emails or self.admin_operator_emails
        return bool(emails or self.admin_viewer_emails or self.admin_role_claim)

    def role_rule(self) -> RoleRule:
        """The access rule these settings make (``gateway.admin.roles``)."""
        return RoleRule(
            emails={
                Role.ADMIN: frozenset(self.admin_allowed_emails),
                Role.OPERATOR: frozenset(self.admin_operator_emails),
                Role.VIEWER: frozenset(self.admin_viewer_emails),
            },
            claim=self.admin_role_claim,
            claim_roles={r: frozenset(n) for r, n in self._role_names().items()},
            open_to_all=self.admin_allow_any_user and not self._ruled,
            dev_login=self.admin_dev_login,
        )

    def _check_session_secret(self) -> None:
        secret = self.admin_session_secret
        if secret is None:
            if self.oidc_enabled:
                raise ValueError(
                    "ADMIN_SESSION_SECRET is required with OIDC login; generate one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
                )
            return
        value = secret.get_secret_value()
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"ADMIN_SESSION_SECRET must be at least {MIN_SECRET_LENGTH} characters"
            )
        if _is_placeholder(value):
            raise ValueError("ADMIN_SESSION_SECRET is a placeholder; generate a random one")

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret)

    @property
    def login_enabled(self) -> bool:
        """Whether anyone can log in at all (otherwise /admin only says how to set it up)."""
        return self.oidc_enabled or self.admin_dev_login

    @property
    def cookies_secure(self) -> bool:
        if self.admin_cookie_secure is not None:
            return self.admin_cookie_secure
        return not self.admin_dev_login

    @property
    def uses_auth0_logout(self) -> bool:
        """Whether the provider is Auth0, whose older tenants log out at /v2/logout."""
        host = urlsplit(self.oidc_issuer or "").hostname or ""
        return bool(self.auth0_domain) or host.endswith(".auth0.com")
