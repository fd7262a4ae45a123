"""An isolated test environment: its own database and its own exchange and queue names,
so two test runs on one machine never see each other's data or messages."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass
from uuid import uuid4

import psycopg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sms_events.migrate import apply_migrations, migration_dirs

__all__ = ["TEST_SIGNING_KEY", "TestEnvironment", "TestSettings"]

TEST_SIGNING_KEY = "tests-only-event-signing-key-0123456789"
"""The test runs' EVENT_SIGNING_KEY: every process and every Settings a test builds signs and
verifies with it (signing stays on in every test, as in production)."""


class TestSettings(BaseSettings):
    """Where the tests find PostgreSQL and RabbitMQ: the environment, else .env (where
    scripts/ensure_services.py writes the URLs of servers it started in Docker)."""

    __test__ = False  # not a test class, despite the name
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    test_database_url: str = Field(
        default="postgresql://postgres@localhost:5432/postgres",
        description="A superuser DSN: each run creates (and drops) a database of its own",
    )
    test_amqp_url: str = Field(default="amqp://guest:guest@localhost:5672/")


def _replace_db(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


@dataclass
class TestEnvironment:
    __test__ = False  # not a test class, despite the name

    database_url: str
    amqp_url: str
    amqp_exchange: str
    amqp_queue_prefix: str
    admin_url: str
    database: str

    @classmethod
    def create(cls, packages: list[str]) -> TestEnvironment:
        run = uuid4().hex[:10]
        settings = TestSettings()
        admin = settings.test_database_url
        name = f"sms_test_{run}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env = cls(
            database_url=_replace_db(admin, name),
            amqp_url=settings.test_amqp_url,
            amqp_exchange=f"sms.events.test.{run}",
            amqp_queue_prefix=f"test.{run}.",
            admin_url=admin,
            database=name,
        )
        apply_migrations(env.database_url, migration_dirs(*packages))
        return env

    def env_vars(self) -> dict[str, str]:
        """Environment for a service process started by the tests."""
        return {
            "DATABASE_URL": self.database_url,
            "AMQP_URL": self.amqp_url,
            "AMQP_EXCHANGE": self.amqp_exchange,
            "AMQP_QUEUE_PREFIX": self.amqp_queue_prefix,
            "EVENT_SIGNING_KEY": TEST_SIGNING_KEY,
        }

    def destroy(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self._delete_broker_objects()

    def _delete_broker_objects(self) -> None:
        # Best effort: rabbitmqctl is there when the broker runs on this machine (as in CI).
        ctl = shutil.which("rabbitmqctl")
        if ctl is None:
            return
        with contextlib.suppress(Exception):
            out = subprocess.run(
                [ctl, "-q", "list_queues", "name"], capture_output=True, text=True, timeout=30
            ).stdout
            for queue in out.split():
                if queue.startswith(self.amqp_queue_prefix):
                    subprocess.run(
                        [ctl, "-q", "delete_queue", queue],
                        timeout=30, check=False, capture_output=True,
                    )  # fmt: skip
            for exchange in (self.amqp_exchange, f"{self.amqp_exchange}.dlx"):
                subprocess.run(
                    [ctl, "-q", "eval",
                     f'rabbit_exchange:delete(rabbit_misc:r(<<"/">>, exchange, <<"{exchange}">>),'
                     " false, <<\"tests\">>)."],
                    timeout=30, check=False, capture_output=True,
                )  # fmt: skip
