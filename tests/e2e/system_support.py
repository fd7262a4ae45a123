"""The system an end-to-end test drives: every service as a process, the URLs to reach them,
and the TCP proxies a module may put between them and PostgreSQL and RabbitMQ. The fixtures
that start it are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from sms_events.testing.environment import TestEnvironment
from sms_events.testing.processes import SERVICES, ProcessGroup, wait_http_ok
from tests.support.tcp_proxy import TcpProxy, url_target

__all__ = ["API_KEY", "PROVIDER_TOKEN", "Proxies", "System"]

API_KEY = "e2e-test-key-not-a-secret-0123456789"
PROVIDER_TOKEN = "e2e-provider-token"


@dataclass
class Proxies:
    """The TCP proxies between the services and PostgreSQL and RabbitMQ (marker
    ``through_proxies``); the tests' own database connections go around them."""

    database: TcpProxy
    broker: TcpProxy

    @classmethod
    def start(cls, env: TestEnvironment) -> Proxies:
        database = TcpProxy(url_target(env.database_url), name="postgres").start()
        try:
            broker = TcpProxy(url_target(env.amqp_url), name="rabbitmq").start()
        except BaseException:
            database.stop()
            raise
        return cls(database, broker)

    def env_vars(self, env: TestEnvironment) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database.url(env.database_url),
            "AMQP_URL": self.broker.url(env.amqp_url),
        }

    def stop(self) -> None:
        self.database.stop()
        self.broker.stop()


@dataclass
class System:
    env: TestEnvironment
    group: ProcessGroup
    ports: dict[str, int]
    service_env: dict[str, str]
    proxies: Proxies | None = None

    @property
    def through(self) -> Proxies:
        """The proxies; the module must be marked ``through_proxies``."""
        assert self.proxies is not None, "mark the module pytest.mark.through_proxies"
        return self.proxies

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
