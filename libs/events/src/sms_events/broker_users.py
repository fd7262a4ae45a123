"""Broker users: the platform's services may publish; other projects may only read.

    sms-broker-users setup               # the four service users (passwords from the environment)
    sms-broker-users add-reader billing  # a read-only user for another project (prints its URL)
    sms-broker-users add-reader billing --print | sh  # the same, where sh has rabbitmqctl
    sms-broker-users definitions -o f    # the same users as a definitions file RabbitMQ loads

Each service connects as its own user (``sms-gateway``, …), allowed on the events exchange,
the dead-letter exchange and its own queues only: every service runs an outbox relay candidate
(sms_events.relay), so each may publish, and nothing else may. A reader may declare, bind and
consume queues named ``ext.<reader>.*`` and read ``sms.events``, nothing else: RabbitMQ wants
write on the queue and read on the exchange to bind, and write on an exchange to publish to it.
It also refuses a queue dead-lettering, or an exchange falling back, into an exchange its
declarer cannot write to, so a reader has no side door into ``sms.events`` either.

Permissions do not stop a service's credentials from being misused: the signature does
(sms_events.signing). The two together close the bus.

Users are put with ``rabbitmqctl`` where it reaches the broker (a development machine, a
shell in the broker's container or pod), or written as a definitions file that RabbitMQ loads
at every boot (``load_definitions``: compose, Kubernetes), with the passwords hashed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sms_events.settings import RabbitSettings

__all__ = [
    "SERVICE_USERS",
    "BrokerUsersSettings",
    "Permissions",
    "RabbitmqCtl",
    "ServiceUser",
    "User",
    "definitions",
    "main",
    "password_variable",
    "rabbitmqctl_script",
    "reader_permissions",
    "service_permissions",
    "url_with_user",
]

EXCHANGE = RabbitSettings.model_fields["amqp_exchange"].default


@dataclass(frozen=True, slots=True)
class ServiceUser:
    user: str
    queues: tuple[str, ...]  # QueueSpec names (a test checks them against the services')


SERVICE_USERS: Mapping[str, ServiceUser] = {
    "api-gateway": ServiceUser("sms-gateway", ()),
    "scheduler": ServiceUser("sms-scheduler", ("scheduler",)),
    "dispatcher": ServiceUser("sms-dispatcher", ("dispatcher", "dispatcher-projections")),
    "reporter": ServiceUser("sms-reporter", ("reporter",)),
}

_READER_NAME = re.compile(r"[a-z][a-z0-9-]{1,62}")
_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]{12,}")


@dataclass(frozen=True, slots=True)
class Permissions:
    """RabbitMQ's three regular expressions over resource names (unanchored: anchor them)."""

    configure: str
    write: str
    read: str


def service_permissions(
    queues: Sequence[str], exchange: str = EXCHANGE, queue_prefix: str = ""
) -> Permissions:
    """Declare, publish to and read the exchange, its dead-letter exchange and the service's
    own queues with their dead-letter queues; nothing else."""
    own = [re.escape(queue_prefix + queue) + r"(\.dlq)?" for queue in queues]
    names = "^(" + "|".join([re.escape(exchange), re.escape(exchange) + r"\.dlx", *own]) + ")$"
    return Permissions(names, names, names)


def reader_queue_prefix(name: str) -> str:
    return f"ext.{name}."


def reader_permissions(name: str, exchange: str = EXCHANGE) -> Permissions:
    """Declare, bind and consume ``ext.<name>.*`` queues bound to ``exchange``; publish nowhere
    the platform reads."""
    if not _READER_NAME.fullmatch(name) or name.startswith("sms-"):
        raise ValueError(f"a reader's name is [a-z][a-z0-9-]+ and not sms-*: {name!r}")
    own = re.escape(reader_queue_prefix(name)) + ".*"
    return Permissions(f"^{own}$", f"^{own}$", f"^({re.escape(exchange)}|{own})$")


def url_with_user(url: str, user: str, password: str) -> str:
    """``url`` (an AMQP URL) with its credentials replaced."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password: str
    permissions: Permissions
    administrator: bool = False

    def __post_init__(self) -> None:
        # rabbitmqctl reads a password from stdin up to the first blank or quote, silently, and
        # every password here also goes into an AMQP URL: URL-safe characters only.
        if not _URL_SAFE.fullmatch(self.password):
            raise ValueError(f"{self.name}'s broker password must be URL-safe: [A-Za-z0-9._~-]+")


def definitions(users: Sequence[User], vhost: str = "/") -> dict[str, Any]:
    """A RabbitMQ definitions document holding ``users`` and their permissions on ``vhost``."""
    return {
        "vhosts": [{"name": vhost}],
        "users": [
            {
                "name": u.name,
                "password_hash": password_hash(u.password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"] if u.administrator else [],
            }
            for u in users
        ],
        "permissions": [
            {
                "user": u.name,
                "vhost": vhost,
                "configure": u.permissions.configure,
                "write": u.permissions.write,
                "read": u.permissions.read,
            }
            for u in users
        ],
    }


def rabbitmqctl_script(user: User, vhost: str = "/") -> str:
    """The shell commands that put ``user`` where only the broker's own container or pod has
    ``rabbitmqctl`` (the password on stdin, not on a command line)."""
    name, password = shlex.quote(user.name), shlex.quote(user.password)
    p = user.permissions
    patterns = " ".join(shlex.quote(x) for x in (p.configure, p.write, p.read))
    return (
        f"printf '%s' {password} | rabbitmqctl -q add_user {name} 2>/dev/null"
        f" || printf '%s' {password} | rabbitmqctl -q change_password {name}\n"
        f"rabbitmqctl -q set_permissions -p {shlex.quote(vhost)} {name} {patterns}\n"
    )


class RabbitmqCtl:
    """Puts users with ``rabbitmqctl`` (idempotent: an existing user gets the new password).
    Passwords go through stdin, never on a command line other processes can read."""

    def __init__(self, ctl: str = "rabbitmqctl", vhost: str = "/", timeout: float = 60) -> None:
        self.ctl, self.vhost, self.timeout = ctl, vhost, timeout

    def put_user(self, user: User) -> None:
        added = self._run("add_user", user.name, stdin=user.password, check=False)
        if added.returncode != 0:
            if "already exists" not in added.stdout + added.stderr:
                raise RuntimeError(f"rabbitmqctl add_user {user.name}: {added.stderr.strip()}")
            self._run("change_password", user.name, stdin=user.password)
        p = user.permissions
        self._run("set_permissions", "-p", self.vhost, user.name, p.configure, p.write, p.read)

    def delete_user(self, name: str) -> None:
        self._run("delete_user", name, check=False)

    def _run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.ctl, "-q", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {args[0]}: {done.stderr.strip() or done.stdout}")
        return done


class BrokerUsersSettings(BaseSettings):
    """The names the services use on the broker, the service users' passwords (and the
    administrator's, for a definitions file)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    amqp_exchange: str = EXCHANGE
    amqp_queue_prefix: str = RabbitSettings.model_fields["amqp_queue_prefix"].default
    rabbitmq_default_user: str = "sms"
    rabbitmq_default_pass: SecretStr | None = None
    rabbitmq_gateway_pass: SecretStr | None = None
    rabbitmq_scheduler_pass: SecretStr | None = None
    rabbitmq_dispatcher_pass: SecretStr | None = None
    rabbitmq_reporter_pass: SecretStr | None = None

    def service_users(self) -> dict[str, User]:
        """Each service's user, keyed by the service's name; every password must be set."""
        passwords = {
            "api-gateway": self.rabbitmq_gateway_pass,
            "scheduler": self.rabbitmq_scheduler_pass,
            "dispatcher": self.rabbitmq_dispatcher_pass,
            "reporter": self.rabbitmq_reporter_pass,
        }
        if missing := [password_variable(s) for s, p in passwords.items() if p is None]:
            raise ValueError(f"set {', '.join(missing)}: the service users' passwords")
        exchange, prefix = self.amqp_exchange, self.amqp_queue_prefix
        return {
            service: User(
                spec.user,
                cast(SecretStr, passwords[service]).get_secret_value(),
                service_permissions(spec.queues, exchange, prefix),
            )
            for service, spec in SERVICE_USERS.items()
        }


def password_variable(service: str) -> str:
    """The environment variable holding ``service``'s broker password (RABBITMQ_GATEWAY_PASS)."""
    return f"RABBITMQ_{SERVICE_USERS[service].user.removeprefix('sms-').upper()}_PASS"


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sms-broker-users", description=__doc__.split("\n")[0])
    parser.add_argument("--vhost", default="/")
    sub = parser.add_subparsers(dest="command", required=True)
    setup = sub.add_parser("setup", help="put the service users (RABBITMQ_*_PASS) with rabbitmqctl")
    reader = sub.add_parser("add-reader", help="put a read-only user with rabbitmqctl")
    reader.add_argument("name")
    reader.add_argument("--url", default="amqp://localhost:5672/", help="the URL to print")
    for command in (setup, reader):
        command.add_argument(
            "--print",
            action="store_true",
            help="print the rabbitmqctl commands (for a shell in the broker's container) instead",
        )
    defs = sub.add_parser("definitions", help="write the service users as RabbitMQ definitions")
    defs.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _args(argv)
    settings = BrokerUsersSettings()
    if args.command == "add-reader":
        password = secrets.token_urlsafe(24)
        reader = User(args.name, password, reader_permissions(args.name, settings.amqp_exchange))
        say = [
            f"AMQP URL (shown once): {url_with_user(args.url, args.name, password)}",
            f"queues it may declare and bind to {settings.amqp_exchange}:"
            f" {reader_queue_prefix(args.name)}*",
        ]
        if args.print:  # a script: what is said goes to stderr
            sys.stdout.write(rabbitmqctl_script(reader, args.vhost))
            print("\n".join(say), file=sys.stderr)
        else:
            RabbitmqCtl(vhost=args.vhost).put_user(reader)
            print("\n".join(say))
        return 0
    try:
        users = list(settings.service_users().values())
    except ValueError as exc:
        print(f"sms-broker-users: {exc}", file=sys.stderr)
        return 2
    if args.command == "setup":
        ctl = RabbitmqCtl(vhost=args.vhost)
        for user in users:
            if args.print:
                sys.stdout.write(rabbitmqctl_script(user, args.vhost))
            else:
                ctl.put_user(user)
                print(f"put broker user {user.name}")
        return 0
    if settings.rabbitmq_default_pass is not None:
        # The administrator too: a node that imports definitions at boot may skip its default.
        admin = User(
            settings.rabbitmq_default_user,
            settings.rabbitmq_default_pass.get_secret_value(),
            Permissions(".*", ".*", ".*"),
            administrator=True,
        )
        users = [admin, *users]
    text = json.dumps(definitions(users, args.vhost), indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        os.chmod(args.output, 0o644)  # read by the broker's own user; holds only hashes
    return 0


if __name__ == "__main__":
    sys.exit(main())
