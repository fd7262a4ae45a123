"""Settings shared by every service; each service extends ``ServiceSettings``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sms_events.retrying import EVENT_FAILURE_ATTEMPTS, EVENT_FAILURES, OUTAGES, RetryPolicy

__all__ = ["LogSettings", "PostgresSettings", "RabbitSettings", "RetrySettings", "ServiceSettings"]

_MIN_KEY_LENGTH = 32

_ENV = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")


class PostgresSettings(BaseSettings):
    model_config = _ENV

    database_url: str = Field(
        default="postgresql://postgres@localhost:5432/sms",
        description="PostgreSQL DSN holding the event store and every service's projections",
    )
    database_pool_min: int = Field(default=2, ge=1)
    database_pool_max: int = Field(default=10, ge=1)
    database_acquire_timeout_s: float = Field(
        default=10,
        gt=0,
        description="Longest wait for a pooled connection (a free one, or a new one to connect);"
        " past it the work fails as the database being unavailable, and is retried",
    )
    database_command_timeout_s: float = Field(
        default=60,
        gt=0,
        description="Longest one SQL statement may run; a statement cut off counts as a failure"
        " of its work (an event: retried a few times, then dead-lettered), not as an outage",
    )
    database_idle_in_transaction_timeout_s: float = Field(
        default=60,
        gt=0,
        description="PostgreSQL ends a session left idle inside a transaction this long (a hung"
        " process must not hold locks, nor the event readers' horizon, for ever)",
    )


class RabbitSettings(BaseSettings):
    model_config = _ENV

    amqp_url: str = Field(default="amqp://guest:guest@localhost:5672/", description="RabbitMQ URL")
    amqp_exchange: str = Field(
        default="sms.events", description="Durable topic exchange every event is published to"
    )
    amqp_queue_prefix: str = Field(
        default="", description="Prefix for queue names (lets test runs share one broker)"
    )
    amqp_reconnect_interval_s: float = Field(
        default=2,
        gt=0,
        description="Seconds between two attempts to reconnect to RabbitMQ after the connection"
        " was lost (a reconnect_interval in AMQP_URL's query wins)",
    )
    event_signing_key: SecretStr = Field(
        description="Secret shared by the platform's services only (32+ characters): the relay"
        " signs every envelope with it, consumers dead-letter what it did not sign",
    )
    event_signing_keys_previous: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated former signing keys, still accepted (never used to sign)"
        " while a key is rotated",
    )

    @field_validator("event_signing_keys_previous", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("event_signing_key", "event_signing_keys_previous")
    @classmethod
    def _strong(cls, value: SecretStr | list[SecretStr]) -> SecretStr | list[SecretStr]:
        # A short or copied key would let anyone who guesses it publish events the services obey.
        for key in value if isinstance(value, list) else [value]:
            text = key.get_secret_value()
            if len(text) < _MIN_KEY_LENGTH or _is_placeholder(text):
                raise ValueError(
                    f"event signing keys need {_MIN_KEY_LENGTH}+ characters and no placeholder"
                    " (generate: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        return value


class LogSettings(BaseSettings):
    model_config = _ENV

    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: str = Field(default="auto", description="json, console, or auto (console on a TTY)")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return value


class RetrySettings(BaseSettings):
    """The constants of the retry policies (``sms_events.retrying``) the services' loops use."""

    model_config = _ENV

    retry_outage_base_s: float = Field(
        default=OUTAGES.base_s,
        gt=0,
        description="First wait (at most, full jitter) before trying again work that failed"
        " because the database or broker is away; doubles with each try",
    )
    retry_outage_cap_s: float = Field(
        default=OUTAGES.cap_s,
        gt=0,
        description="Longest wait between two tries while the database or broker is away"
        " (they go on until it is back or the service stops)",
    )
    retry_event_attempts: int = Field(
        default=EVENT_FAILURE_ATTEMPTS,
        ge=1,
        description="Tries of an event whose handling fails (not an outage) before it is"
        " dead-lettered",
    )
    retry_event_base_s: float = Field(
        default=EVENT_FAILURES.base_s,
        gt=0,
        description="First wait (at most, full jitter) before trying a failed event again",
    )
    retry_event_cap_s: float = Field(
        default=EVENT_FAILURES.cap_s,
        gt=0,
        description="Longest wait between two tries of a failed event",
    )

    def outage_retry(self) -> RetryPolicy:
        """How work waits out a database or broker that is away."""
        return RetryPolicy(None, self.retry_outage_base_s, self.retry_outage_cap_s)

    def event_retry(self) -> RetryPolicy:
        """How often, and how far apart, a failing event is tried before it is dead-lettered."""
        return RetryPolicy(
            self.retry_event_attempts, self.retry_event_base_s, self.retry_event_cap_s
        )


class ServiceSettings(PostgresSettings, RabbitSettings, LogSettings, RetrySettings):
    """What every service needs: the store, the broker, logging and a metrics port."""

    relay_enabled: bool = Field(
        default=True, description="Run the outbox relay (one instance is elected leader)"
    )
    processed_events_retention_h: float = Field(
        default=168,
        gt=0,
        description=(
            "Hours a consumer remembers the ids of events it handled (redeliveries come within "
            "minutes)"
        ),
    )


def _is_placeholder(text: str) -> bool:
    return "changeme" in text.lower().replace("-", "").replace("_", "")
