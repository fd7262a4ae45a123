"""Reporter settings, read once from the environment (and an untracked .env)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from email.utils import parseaddr
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
)

from sms_events.bearer import is_loopback
from sms_events.settings import ServiceSettings

__all__ = ["Settings"]

_NUMBERED = re.compile(r"recipient_email_(\d+)", re.IGNORECASE)
_PLACEHOLDERS = {"changethis", "changeme", "password", "secret", "example", "xxx"}


class _NumberedRecipients(PydanticBaseSettingsSource):
    """``RECIPIENT_EMAIL_1``, ``RECIPIENT_EMAIL_2``, ... (the system we replace reads them
    from its .env) as the ``recipient_emails`` list, in number order. It reads what the
    environment and .env sources have loaded, so the process environment wins over .env as it
    does for every other setting, and nothing else touches os.environ."""

    def __init__(
        self, settings_cls: type[BaseSettings], *sources: PydanticBaseSettingsSource
    ) -> None:
        super().__init__(settings_cls)
        self._sources = sources

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        found: dict[int, str] = {}
        for source in reversed(self._sources):  # lowest priority first, so later ones win
            if isinstance(source, EnvSettingsSource):
                found.update(_numbered(source.env_vars))
        if not found:
            return {}
        return {"recipient_emails": [found[n] for n in sorted(found) if found[n]]}


def _numbered(env: Mapping[str, str | None]) -> dict[int, str]:
    out = {}
    for name, value in env.items():
        match = _NUMBERED.fullmatch(name)
        if match and value is not None:
            out[int(match.group(1))] = value.strip()
    return out


def _address(value: str) -> str:
    _, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain.strip(".") or " " in address:
        raise ValueError(f"{value!r} is not an email address")
    return address


class Settings(ServiceSettings):
    reporter_http_host: str = Field(
        default="127.0.0.1", description="Address of the internal API, /healthz, /readyz, /metrics"
    )
    internal_api_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token the gateway sends to the internal API (required unless the reporter "
            "binds a loopback address)"
        ),
    )
    reporter_http_port: int = Field(
        default=8003, description="Port of the internal API, /healthz, /readyz, /metrics"
    )

    # --- the daily statistics email ------------------------------------------------------------
    report_time: time = Field(
        default=time(0, 1), description="Local time (in REPORT_TZ) the previous day is emailed"
    )
    report_tz: str = Field(default="UTC", description="IANA time zone the report's days are in")
    report_recipients: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated addresses (with RECIPIENT_EMAIL_n)"
    )
    recipient_emails: list[str] = Field(
        default_factory=list,
        description="RECIPIENT_EMAIL_1, RECIPIENT_EMAIL_2, ... (read as numbered variables)",
    )
    report_catch_up_days: int = Field(
        default=7,
        ge=1,
        le=366,
        description="After downtime, how many of the latest days are still sent (oldest first)",
    )
    email_host: str | None = Field(
        default=None, description="SMTP server; unset: no daily email is sent"
    )
    email_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="SMTP port (default 465 with SSL, 587 with TLS, 25)",
    )
    email_host_user: str | None = Field(default=None, description="SMTP login, if it needs one")
    # No default value: a login without a password is refused below. None means no login.
    email_host_password: SecretStr | None = Field(
        default=None, description="SMTP password (required with EMAIL_HOST_USER)"
    )
    email_use_tls: bool = Field(default=False, description="STARTTLS after connecting")
    email_use_ssl: bool = Field(default=False, description="Implicit TLS from the first byte")
    email_from: str = Field(default="sms-platform@localhost", description="From address")
    email_timeout_s: float = Field(default=30.0, gt=0, description="SMTP timeout per operation")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        numbered = _NumberedRecipients(settings_cls, env_settings, dotenv_settings)
        return init_settings, numbered, env_settings, dotenv_settings, file_secret_settings

    @field_validator("report_recipients", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.split(",") if part.strip()]
        return value

    @field_validator("report_recipients", "recipient_emails")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @field_validator("email_from")
    @classmethod
    def _from_address(cls, value: str) -> str:
        _, address = parseaddr(value)
        if "@" not in address:
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("report_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("report_time")
    @classmethod
    def _naive(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("a local time without offset: the zone is REPORT_TZ")
        return value

    @model_validator(mode="after")
    def _internal_api_closed(self) -> Settings:
        # Counters and message pages (phones included) must not be readable by whoever can
        # reach the port: off loopback the token is required.
        if self.internal_api_token is None and not is_loopback(self.reporter_http_host):
            raise ValueError(
                f"set INTERNAL_API_TOKEN: the internal API binds {self.reporter_http_host}"
            )
        if self.internal_api_token is not None and len(
            self.internal_api_token.get_secret_value()
        ) < 32:  # fmt: skip
            raise ValueError("INTERNAL_API_TOKEN must be at least 32 characters")
        return self

    @model_validator(mode="after")
    def _smtp(self) -> Settings:
        if self.email_use_tls and self.email_use_ssl:
            raise ValueError("EMAIL_USE_TLS (STARTTLS) and EMAIL_USE_SSL exclude each other")
        password = self.email_host_password
        if self.email_host_user and password is None:
            raise ValueError("EMAIL_HOST_USER is set: EMAIL_HOST_PASSWORD is required")
        if password is not None and password.get_secret_value().lower() in _PLACEHOLDERS:
            raise ValueError("EMAIL_HOST_PASSWORD is a placeholder: set the real one")
        if (
            password is not None
            and not (self.email_use_tls or self.email_use_ssl)
            and not is_loopback(self.email_host or "")
        ):
            # A login over plain SMTP sends the password in clear to whoever is on the path.
            raise ValueError(
                "EMAIL_HOST_PASSWORD needs EMAIL_USE_TLS or EMAIL_USE_SSL (a login is never sent"
                " in clear, except to a loopback server)"
            )
        return self

    @property
    def report_zone(self) -> ZoneInfo:
        return ZoneInfo(self.report_tz)

    @property
    def report_to(self) -> list[str]:
        """Every recipient once (addresses compared without case), REPORT_RECIPIENTS first."""
        seen: set[str] = set()
        out = []
        for address in [*self.report_recipients, *self.recipient_emails]:
            if address.lower() not in seen:
                seen.add(address.lower())
                out.append(address)
        return out

    @property
    def smtp_port(self) -> int:
        if self.email_port is not None:
            return self.email_port
        return 465 if self.email_use_ssl else 587 if self.email_use_tls else 25

    @property
    def daily_report_enabled(self) -> bool:
        return bool(self.email_host and self.report_to)
