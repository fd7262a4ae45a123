"""End-to-end fixtures: every service as a real process against the real PostgreSQL, RabbitMQ
and a real (fake) SMS provider. One system per test module, on its own database and queues."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
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
from tests.e2e.system_support import API_KEY, PROVIDER_TOKEN, Proxies, System

# Fast retries so that failure scenarios finish in seconds.
FAST = {
    "DISPATCH_RETRY_BASE_S": "0.2",
    "DISPATCH_RETRY_CAP_S": "1",
    "DISPATCH_TIMEOUT_S": "2",
    "BREAKER_COOLDOWN_S": "0.5",
    "BREAKER_MAX_COOLDOWN_S": "1",
    "SCHEDULER_TICK_S": "0.1",
    # Tests call the API as fast as they can; the limits have their own tests.
    "API_RATE_LIMIT_PER_KEY": "5000",
    "API_RATE_LIMIT_PER_ADDRESS": "5000",
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
    proxies = None
    if request.node.get_closest_marker("through_proxies") is not None:
        try:
            proxies = Proxies.start(env)
        except BaseException:
            env.destroy()
            raise
        service_env |= proxies.env_vars(env)
    log_dir = tmp_path_factory.mktemp(f"e2e-{request.module.__name__.rsplit('.', 1)[-1]}")
    group = ProcessGroup(env=service_env, log_dir=Path(log_dir))
    system = System(env, group, ports, service_env, proxies)
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
        if proxies is not None:
            proxies.stop()
        env.destroy()


# Every fault the tests turn on at the fake provider, and its off value.
PROVIDER_FAULTS_OFF = {"failure_rate": 0, "reject_rate": 0, "timeout_rate": 0, "429_rate": 0,
                       "throttle_rps": 0, "down": False, "seed": None}  # fmt: skip


@pytest.fixture
def provider(system: System) -> Iterator[httpx.Client]:
    """The fake provider's control API; every fault a test turned on is off again after it."""
    with system.provider() as client:
        yield client
        client.post("/_control", json=PROVIDER_FAULTS_OFF)
