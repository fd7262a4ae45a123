"""An isolated test environment: its own database and its own exchange and queue names,
so two test runs on one machine never see each other's data or messages."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from uuid import uuid4

import psycopg

from sms_events.migrate import apply_migrations, migration_dirs

__all__ = ["TestEnvironment"]


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
        admin = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@localhost:5432/postgres")
        name = f"sms_test_{run}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env = cls(
            database_url=_replace_db(admin, name),
            amqp_url=os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@localhost:5672/"),
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
