"""Reporter settings, read once from the environment (and an untracked .env)."""

from __future__ import annotations

from pydantic import Field

from sms_events.settings import ServiceSettings


class Settings(ServiceSettings):
    reporter_http_host: str = Field(
        default="127.0.0.1", description="Address of the internal API, /healthz, /readyz, /metrics"
    )
    reporter_http_port: int = Field(
        default=8003, description="Port of the internal API, /healthz, /readyz, /metrics"
    )
