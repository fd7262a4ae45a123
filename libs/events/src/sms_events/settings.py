"""Settings shared by every service; each service extends ``ServiceSettings``."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LogSettings", "PostgresSettings", "RabbitSettings", "ServiceSettings"]

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


class ServiceSettings(PostgresSettings, RabbitSettings, LogSettings):
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
