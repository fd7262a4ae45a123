"""End-to-end fixtures: every service as a real process against the real PostgreSQL, RabbitMQ
and a real (fake) SMS provider. One system per test module, on its own database and queues."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sms_events.testing.environment import TestEnvironment
from sms_events.testing.processes import (
    SERVICES,
    ProcessGroup,
    free_port,
    system_env,
    wait_http_ok,
)

API_KEY = "e2e-test-key-not-a-secret"
PROVIDER_TOKEN = "e2e-provider-token"


@dataclass
class System:
    env: TestEnvironment
    group: ProcessGroup
    ports: dict[str, int]
    service_env: dict[str, str]

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api-gateway']}"

    @property
    def provider_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['fake-provider']}"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, name: str) -> None:
        module = {s.name: s.module for s in SERVICES} | {"fake-provider": "fake_provider"}
        self.group.start_module(name, module[name])
        wait_http_ok(f"{self.url(name)}/healthz", 60, self.group)

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.gateway_url,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )

    def provider(self) -> httpx.Client:
        return httpx.Client(base_url=self.provider_url, timeout=30)


# Fast retries so that failure scenarios finish in seconds.
FAST = {
    "DISPATCH_RETRY_BASE_S": "0.2",
    "DISPATCH_RETRY_CAP_S": "1",
    "DISPATCH_TIMEOUT_S": "2",
    "BREAKER_COOLDOWN_S": "0.5",
    "BREAKER_MAX_COOLDOWN_S": "1",
    "SCHEDULER_TICK_S": "0.1",
}


@pytest.fixture(scope="module")
def system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    env = TestEnvironment.create([s.module for s in SERVICES])
    ports = {s.name: free_port() for s in SERVICES} | {"fake-provider": free_port()}
    service_env = (
        env.env_vars()
        | FAST
        | system_env(ports, api_key=API_KEY, provider_token=PROVIDER_TOKEN)
        | {"LOG_LEVEL": os.environ.get("E2E_LOG_LEVEL", "INFO")}
    )
    marker = request.node.get_closest_marker("service_env")
    if marker is not None:
        service_env |= marker.args[0]
    log_dir = tmp_path_factory.mktemp(f"e2e-{request.module.__name__.rsplit('.', 1)[-1]}")
    group = ProcessGroup(env=service_env, log_dir=Path(log_dir))
    system = System(env, group, ports, service_env)
    try:
        system.start("fake-provider")
        for spec in SERVICES:
            group.start_module(spec.name, spec.module)
        for spec in SERVICES:
            wait_http_ok(f"{system.url(spec.name)}/readyz", 60, group)
        yield system
    finally:
        group.stop_all(timeout=30)
        failed = request.session.testsfailed
        if failed:
            for name in group.running:
                sys.stderr.write(f"\n===== {name} log (tail) =====\n{group.log(name)[-6000:]}\n")
        env.destroy()
