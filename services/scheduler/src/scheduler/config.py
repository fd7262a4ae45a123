"""Scheduler settings, read once from the environment (and an untracked .env)."""

from __future__ import annotations

from pydantic import Field

from sms_events.settings import ServiceSettings


class Settings(ServiceSettings):
    scheduler_http_host: str = Field(default="127.0.0.1", description="Address of /healthz, /readyz, /metrics")
    scheduler_http_port: int = Field(default=8001, description="Port of /healthz, /readyz, /metrics")
