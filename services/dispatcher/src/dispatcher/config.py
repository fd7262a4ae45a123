"""Dispatcher settings, read once from the environment (and an untracked .env)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from dispatcher.recorder import RECORD_RETRIES
from sms_events.bearer import is_loopback
from sms_events.retrying import RetryPolicy
from sms_events.settings import ServiceSettings

_PLACEHOLDERS = {"", "changeme", "change-me", "token", "secret", "xxx"}


class Settings(ServiceSettings):
    dispatcher_http_host: str = Field(
        default="127.0.0.1", description="Address of /healthz, /readyz, /metrics"
    )
    dispatcher_http_port: int = Field(
        default=8002, description="Port of /healthz, /readyz, /metrics"
    )
    sms_api_url: str = Field(description="Base URL of the external SMS API (…/send/{msgId})")
    sms_api_token: SecretStr = Field(description="Bearer token of the external SMS API")
    sms_api_allow_http: bool = Field(
        default=False,
        description=(
            "Allow a plain http:// SMS_API_URL on a non-loopback host (the token then travels "
            "in clear: for a fake provider on a private network only)"
        ),
    )
    dispatch_concurrency: int = Field(
        default=200, ge=1, description="Provider calls in flight at once"
    )
    dispatch_prefetch: int = Field(
        default=16, ge=1, description="Due-message batches taken from the queue at once"
    )
    dispatch_timeout_s: float = Field(default=10, gt=0, description="Timeout of one provider call")
    dispatch_rate_limit: float = Field(
        default=0,
        ge=0,
        description=(
            "Most messages per second across all replicas (0: no ceiling; with the adaptive "
            "rate on, free until the provider throttles)"
        ),
    )
    dispatch_rate_adaptive: bool = Field(
        default=True,
        description=(
            "Adapt the send rate to the provider: a step up each second while it keeps up, "
            "halved on 429, 5xx or Retry-After"
        ),
    )
    dispatch_rate_floor: float = Field(
        default=10,
        gt=0,
        description="The adaptive rate never goes below this, nor above a lower limit (msg/s)",
    )
    dispatch_rate_step: float = Field(
        default=20, ge=0, description="Adaptive rate increase per second (messages/s)"
    )
    dispatch_retry_base_s: float = Field(default=2, ge=0, description="Backoff base")
    dispatch_retry_cap_s: float = Field(default=300, ge=0, description="Backoff cap")
    dispatch_max_attempts: int = Field(
        default=0, ge=0, description="Provider calls per message (0: no limit)"
    )
    dispatch_claim_lease_s: float = Field(
        default=30,
        ge=3,
        description=(
            "Lease on a dispatcher's claims: after a crash its unrecorded calls are made again "
            "after this long (longer than any provider call)"
        ),
    )
    dispatch_record_interval_ms: float = Field(
        default=5, ge=0, description="How long outcomes gather before they are recorded together"
    )
    dispatch_record_retry_base_s: float = Field(
        default=RECORD_RETRIES.base_s,
        gt=0,
        description="First wait (at most, full jitter) before writing outcomes again after the"
        " write failed; doubles with each try (they go on until it goes through)",
    )
    dispatch_record_retry_cap_s: float = Field(
        default=RECORD_RETRIES.cap_s,
        gt=0,
        description="Longest wait between two tries of writing outcomes (short: they land soon"
        " after the database is back, before their claims lapse)",
    )
    breaker_failure_threshold: int = Field(
        default=20, ge=1, description="Consecutive retryable failures that open the circuit"
    )
    breaker_cooldown_s: float = Field(
        default=5, gt=0, description="First wait before probing again"
    )
    breaker_max_cooldown_s: float = Field(
        default=60, gt=0, description="Longest wait between probes"
    )

    def record_retry(self) -> RetryPolicy:
        """How the outcome recorder tries again a write that failed."""
        return RetryPolicy(
            None, self.dispatch_record_retry_base_s, self.dispatch_record_retry_cap_s
        )

    @model_validator(mode="after")
    def _token_over_tls(self) -> Settings:
        url = urlsplit(self.sms_api_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("SMS_API_URL must be an http(s) URL with a host")
        if url.scheme == "http" and not is_loopback(url.hostname) and not self.sms_api_allow_http:
            raise ValueError(
                "SMS_API_URL must be https:// (the provider token is sent with every call); "
                "set SMS_API_ALLOW_HTTP=true only for a fake provider on a private network"
            )
        return self

    @field_validator("sms_api_token")
    @classmethod
    def _not_placeholder(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value().strip().lower() in _PLACEHOLDERS:
            raise ValueError("set SMS_API_TOKEN to the provider's real token")
        return value
