"""Gateway settings, read once from the environment (and an untracked .env) in the entrypoint."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from gateway.admin.config import AdminSettings
from gateway.auth import MIN_KEY_LENGTH, ApiKeys, parse_key
from gateway.import_limits import ImportLimits
from gateway.opt_outs.rules import DEFAULT_STOP_WORDS
from gateway.rate_limits import Rate
from sms_events.bearer import is_loopback
from sms_events.settings import ServiceSettings

__all__ = ["Settings"]

# Values copied from examples and templates that must never guard a real deployment.
_PLACEHOLDERS = frozenset(
    {"changeme", "change-me", "change_me", "secret", "apikey", "api-key", "api_key",
     "your-api-key", "your_api_key", "xxx", "todo", "test"}
)  # fmt: skip


class Settings(ServiceSettings, AdminSettings):
    """The gateway's settings, admin UI (OIDC login) included."""

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated bearer keys accepted on /api/v1/, each name:scope+scope:key "
            "(scopes read, clients:write, mailings:write, events:read, admin; a bare key has "
            "every scope but admin and events:read), at least 32 characters (none: every call "
            "is 401)"
        ),
    )
    import_max_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1, description="Largest import body, in bytes (413 above)"
    )
    import_max_rows: int = Field(
        default=2_000_000, ge=1, description="Most lines in one import (413 above)"
    )
    import_max_concurrent: int = Field(
        default=4, ge=1, description="Imports at once per gateway process (429 above)"
    )
    api_rate_limit_per_key: float = Field(
        default=100,
        ge=0,
        description="Requests a second per API key and gateway process, bursts of twice "
        "that (429 with Retry-After above; 0: no limit)",
    )
    api_rate_limit_per_address: float = Field(
        default=100,
        ge=0,
        description="Requests a second to /api/v1/ per client address and gateway process, "
        "bursts of twice that (0: no limit; behind a proxy set FORWARDED_ALLOW_IPS)",
    )
    login_rate_limit_per_minute: float = Field(
        default=30,
        ge=0,
        description="Admin login attempts (/admin/auth/) a minute per client address (0: no limit)",
    )
    inbound_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the SMS provider sends with mobile-originated messages to "
        "POST /api/v1/inbound/ (none: every inbound call is 401)",
    )
    opt_out_stop_words: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_STOP_WORDS),
        description="Comma-separated words that, sent back alone, opt the sender out",
    )
    idempotency_ttl_h: int = Field(
        default=24,
        ge=1,
        le=24 * 30,
        description="Hours the first answer to an Idempotency-Key is kept and replayed",
    )
    trusted_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Host names the gateway answers (e.g. sms.example.com, "
        "*.example.com); another Host gets 400, except on /healthz, /readyz and /metrics, "
        "which probes reach by pod IP. Empty: any Host",
    )
    gateway_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds")
    gateway_port: int = Field(default=8000, ge=1, le=65535, description="Port of the HTTP server")
    # reporter_url (the reporter's internal read API) comes from AdminSettings.
    reporter_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Timeout of each call to the reporter, in seconds"
    )

    mailing_max_segments: int = Field(
        default=0,
        ge=0,
        description="Most SMS segments a mailing's text may take (a longer text is refused "
        "with 400); 0: no cap",
    )
    sms_price_per_segment: Decimal = Field(
        default=Decimal(0),
        ge=0,
        description="What one SMS segment costs, for the forecast before a launch",
    )
    sms_price_currency: str = Field(
        default="RUB", max_length=8, description="Currency of SMS_PRICE_PER_SEGMENT"
    )
    dispatch_rate_limit: float = Field(
        default=0,
        ge=0,
        description="Messages per second across all replicas (0: unlimited); the forecast "
        "reads the dispatchers' value",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        # API_KEYS=a,b arrives as one string; blanks (a trailing comma) are not keys.
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            stripped = (v.strip() if isinstance(v, str) else v for v in value)
            return [v for v in stripped if v != ""]
        return value

    @field_validator("trusted_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [h.strip().lower() for h in value.split(",") if h.strip()]
        return value

    @field_validator("opt_out_stop_words", mode="before")
    @classmethod
    def _split_words(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [w.strip() for w in value.split(",") if w.strip()]
        return value

    @field_validator("inbound_token")
    @classmethod
    def _real_inbound_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None or not token.get_secret_value():
            return None
        value = token.get_secret_value()
        if value.lower() in _PLACEHOLDERS or len(value) < MIN_KEY_LENGTH:
            raise ValueError(f"INBOUND_TOKEN must be a real secret of {MIN_KEY_LENGTH}+ characters")
        return token

    @field_validator("api_keys")
    @classmethod
    def _real_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        names: set[str] = set()
        for position, key in enumerate(keys, start=1):
            entry = key.get_secret_value()
            if entry.rpartition(":")[2].lower() in _PLACEHOLDERS:
                raise ValueError("API_KEYS contains a placeholder value; generate a real key")
            name = parse_key(entry, position).name
            if name in names:
                raise ValueError(f"API_KEYS names {name!r} twice")
            names.add(name)
        return keys

    @model_validator(mode="after")
    def _dev_login_on_loopback(self) -> Settings:
        # The dev login needs no password: reachable only from this machine.
        if self.admin_dev_login and not is_loopback(self.gateway_host):
            raise ValueError(
                f"ADMIN_DEV_LOGIN works only on a loopback GATEWAY_HOST, not {self.gateway_host}"
            )
        return self

    def api_key_rate(self) -> Rate:
        return Rate(self.api_rate_limit_per_key, 2 * self.api_rate_limit_per_key)

    def api_address_rate(self) -> Rate:
        return Rate(self.api_rate_limit_per_address, 2 * self.api_rate_limit_per_address)

    def login_rate(self) -> Rate:
        return Rate(self.login_rate_limit_per_minute / 60, self.login_rate_limit_per_minute)

    def import_limits(self) -> ImportLimits:
        return ImportLimits(self.import_max_bytes, self.import_max_rows, self.import_max_concurrent)

    def api_key_set(self) -> ApiKeys:
        return ApiKeys(
            parse_key(key.get_secret_value(), position)
            for position, key in enumerate(self.api_keys, start=1)
        )
