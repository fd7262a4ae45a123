"""The process supervisor as the tests know it (``sms_events.supervisor``, where it lives)."""

from __future__ import annotations

from sms_events.supervisor import (
    SERVICES,
    ProcessGroup,
    ServiceSpec,
    free_port,
    system_env,
    wait_http_ok,
)

__all__ = ["SERVICES", "ProcessGroup", "ServiceSpec", "free_port", "system_env", "wait_http_ok"]
