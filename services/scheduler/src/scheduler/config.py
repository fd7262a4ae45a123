"""Scheduler settings, read once from the environment (and an untracked .env)."""

from __future__ import annotations

from pydantic import Field

from sms_events.settings import ServiceSettings


class Settings(ServiceSettings):
    scheduler_http_host: str = Field(
        default="127.0.0.1", description="Address of /healthz, /readyz, /metrics"
    )
    scheduler_http_port: int = Field(
        default=8001, description="Port of /healthz, /readyz, /metrics"
    )
    scheduler_tick_s: float = Field(default=0.2, gt=0, description="Timer poll interval when idle")
    scheduler_handover_batch: int = Field(
        default=2000, ge=1, description="Messages handed over per transaction"
    )
    scheduler_resolve_chunk: int = Field(
        default=5000,
        ge=1,
        description="Clients resolved per transaction when a mailing's audience is resolved",
    )
    scheduler_max_in_flight: int = Field(
        default=5000,
        ge=1,
        description="Messages with the dispatcher at once (bounds pause/cancel lag)",
    )
    scheduler_lease_s: float = Field(
        default=600, gt=0, description="Hand back to the timer a message with no result after this"
    )
