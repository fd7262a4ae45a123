"""Make PostgreSQL and RabbitMQ answer where the settings say, before `make run` and `make test`.

    python3 scripts/ensure_services.py --for run     # DATABASE_URL, AMQP_URL
    python3 scripts/ensure_services.py --for test    # TEST_DATABASE_URL, TEST_AMQP_URL

Each URL comes from the environment, else from .env, else from the services' default. The host
and port it names are probed; what answers is used as it is. For each server that does not
answer, the first of these that applies is done:

1. it is installed on this machine but stopped: start it (pg_ctlcluster, rabbitmq-server);
2. a Docker engine answers: start it from deploy/docker-compose.yml (published on 127.0.0.1,
   health-checked, data in a named volume) and write the URLs of those containers into .env;
3. root on Debian or Ubuntu: install the distribution's package with apt-get and start it;
4. otherwise: stop at once and print the commands that would fix it.

Only servers on this machine are started: a URL naming another host that does not answer is a
mistake to report, not something to paper over with a local server. A URL the user chose
(set in the environment or .env) is never rewritten; only one left at its default, or one this
script wrote before, is pointed at the compose containers.

The rules are the pure function `decide()` over `Facts` (what the probes found), so that the
tests can cover every branch on a machine where both servers run and Docker has no engine.
Standard library only: .ci/run calls this before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".env"
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
# The compose project name is given on the command line (not as `name:` in the file) so that
# Debian's docker-compose 1.29 reads the file too.
COMPOSE_PROJECT = "sms-platform"

POSTGRES, RABBITMQ = "postgres", "rabbitmq"
# Per server: (variable of `make run`, variable of `make test`, default URL of each).
VARIABLES = {
    POSTGRES: (
        ("DATABASE_URL", "postgresql://postgres@localhost:5432/sms"),
        ("TEST_DATABASE_URL", "postgresql://postgres@localhost:5432/postgres"),
    ),
    RABBITMQ: (
        ("AMQP_URL", "amqp://guest:guest@localhost:5672/"),
        ("TEST_AMQP_URL", "amqp://guest:guest@localhost:5672/"),
    ),
}
DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "amqp": 5672, "amqps": 5671}
# Published ports of deploy/docker-compose.yml (tests/deploy checks they match the file).
COMPOSE_PUBLISHED = {
    POSTGRES: ("POSTGRES_PUBLISHED_PORT", 15432),
    RABBITMQ: ("RABBITMQ_PUBLISHED_PORT", 5673),
}
# Secrets the compose file requires (${X:?...}): generated into .env when missing, because
# compose refuses the whole file without them even when it starts only two services.
COMPOSE_SECRETS = (
    "POSTGRES_PASSWORD",
    "RABBITMQ_DEFAULT_PASS",
    "GRAFANA_ADMIN_PASSWORD",
    "API_KEYS",
    "SMS_API_TOKEN",
    "INTERNAL_API_TOKEN",
    "EVENT_SIGNING_KEY",
    # The services' broker users: the broker starts only once their definitions are written.
    "RABBITMQ_GATEWAY_PASS",
    "RABBITMQ_SCHEDULER_PASS",
    "RABBITMQ_DISPATCHER_PASS",
    "RABBITMQ_REPORTER_PASS",
)
_DEFAULT_PORT = {POSTGRES: 5432, RABBITMQ: 5672}
APT_PACKAGES = {POSTGRES: "postgresql", RABBITMQ: "rabbitmq-server"}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}
WAIT_S = 90.0


# ----------------------------------------------------------------------------- the settings


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments, blanks and `export ` skipped, quotes removed)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclass(frozen=True)
class Dependency:
    """One server a URL names."""

    server: str  # POSTGRES or RABBITMQ
    variable: str
    url: str
    explicit: bool  # set in the environment or .env (else the default)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or DEFAULT_PORTS.get(parts.scheme, 0)

    @property
    def local(self) -> bool:
        return self.host in LOCAL_HOSTS

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def dependencies(
    purpose: str, environ: Mapping[str, str], dotenv: Mapping[str, str]
) -> list[Dependency]:
    """The servers `make run` (purpose "run") or `make test` ("test") connects to."""
    index = 0 if purpose == "run" else 1
    found = []
    for server, choices in VARIABLES.items():
        variable, default = choices[index]
        value = environ.get(variable) or dotenv.get(variable)
        found.append(Dependency(server, variable, value or default, explicit=bool(value)))
    return found


# ----------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Facts:
    """What the probes found on this machine."""

    reachable: frozenset[str] = frozenset()  # addresses "host:port" that accept a connection
    docker_engine: bool = False  # `docker info` answered
    docker_cli: bool = False
    compose: tuple[str, ...] = ()  # ("docker", "compose") or ("docker-compose",) or ()
    root: bool = False
    debian: bool = False  # Debian, Ubuntu or a derivative (apt-get present)
    systemd: bool = False
    postgres_cluster: str | None = None  # "15 main": an installed cluster pg_ctlcluster starts
    rabbitmq_server: str | None = None  # path of an installed rabbitmq-server


@dataclass(frozen=True)
class Step:
    """A command to run, and why."""

    why: str
    command: tuple[str, ...]


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    env_updates: dict[str, str] = field(default_factory=dict)  # written into .env first
    waits: list[Dependency] = field(default_factory=list)  # must answer afterwards
    compose_services: list[str] = field(default_factory=list)  # must be healthy afterwards
    failures: list[str] = field(default_factory=list)  # what cannot be fixed here
    fixes: list[str] = field(default_factory=list)  # commands that would fix it

    @property
    def ready(self) -> bool:
        return not self.steps and not self.failures


def compose_command(facts: Facts) -> tuple[str, ...]:
    return (
        *facts.compose,
        "-p",
        COMPOSE_PROJECT,
        "-f",
        str(COMPOSE_FILE),
        "--env-file",
        str(ENV_FILE),
    )


def compose_urls(purpose: str, dotenv: Mapping[str, str]) -> dict[str, str]:
    """Per server, the URL of the compose container as published on this machine."""
    user = quote(dotenv.get("POSTGRES_USER") or "sms", safe="")
    password = quote(dotenv.get("POSTGRES_PASSWORD", ""), safe="")
    database = "postgres" if purpose == "test" else (dotenv.get("POSTGRES_DB") or "sms")
    pg_port = dotenv.get(COMPOSE_PUBLISHED[POSTGRES][0]) or COMPOSE_PUBLISHED[POSTGRES][1]
    mq_user = quote(dotenv.get("RABBITMQ_DEFAULT_USER") or "sms", safe="")
    mq_password = quote(dotenv.get("RABBITMQ_DEFAULT_PASS", ""), safe="")
    mq_port = dotenv.get(COMPOSE_PUBLISHED[RABBITMQ][0]) or COMPOSE_PUBLISHED[RABBITMQ][1]
    return {
        POSTGRES: f"postgresql://{user}:{password}@127.0.0.1:{pg_port}/{database}",
        RABBITMQ: f"amqp://{mq_user}:{mq_password}@127.0.0.1:{mq_port}/",
    }


def _start_installed(dep: Dependency, facts: Facts) -> list[Step] | None:
    # An installed server listens on its default port (this is no place to parse its config).
    if dep.port != _DEFAULT_PORT[dep.server]:
        return None
    if dep.server == POSTGRES and facts.postgres_cluster:
        version, cluster = facts.postgres_cluster.split()
        pg = ("pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "start")
        return [Step(f"PostgreSQL {version} is installed but stopped: start it", pg)]
    if dep.server == RABBITMQ and facts.rabbitmq_server:
        mq = (facts.rabbitmq_server, "-detached")
        return [Step("RabbitMQ is installed but stopped: start it", mq)]
    return None


def _apt_applies(dep: Dependency) -> bool:
    # The distribution's servers listen on the default port; its PostgreSQL has the role
    # "postgres" only, and RabbitMQ's guest login works from localhost.
    parts = urlsplit(dep.url)
    if dep.port != _DEFAULT_PORT[dep.server]:
        return False
    if dep.server == POSTGRES:
        return (parts.username or "postgres") == "postgres" and not parts.password
    return (parts.username, parts.password) in ((None, None), ("guest", "guest"))


def _apt_steps(servers: list[str], facts: Facts) -> list[Step]:
    packages = [APT_PACKAGES[s] for s in servers]
    env = ("env", "DEBIAN_FRONTEND=noninteractive")
    steps = [
        Step("no Docker engine, root on Debian/Ubuntu: install the distribution's packages",
             (*env, "apt-get", "update")),
        Step(f"install {' '.join(packages)}",
             (*env, "apt-get", "install", "-y", "--no-install-recommends", *packages)),
    ]  # fmt: skip
    if POSTGRES in servers:
        # Debian's cluster asks for a password over TCP; the default URL has none. Trust the
        # role postgres on the loopback only (what CI does), then (re)start the cluster.
        steps.append(
            Step(
                "let the role postgres log in over the loopback without a password",
                ("sh", "-c", _PG_TRUST_SCRIPT),
            )
        )
    if RABBITMQ in servers:
        start = (
            ("systemctl", "start", "rabbitmq-server")
            if facts.systemd
            else ("sh", "-c", "rabbitmq-server -detached")
        )
        steps.append(Step("start RabbitMQ", start))
    return steps


_PG_TRUST_SCRIPT = (
    "set -e; v=$(ls /etc/postgresql | sort -n | tail -n1); "
    "f=/etc/postgresql/$v/main/pg_hba.conf; "
    "grep -q '^host all postgres 127.0.0.1/32 trust' $f || "
    "sed -i '1i host all postgres 127.0.0.1/32 trust\\nhost all postgres ::1/128 trust' $f; "
    "pg_ctlcluster --skip-systemctl-redirect $v main restart || "
    "pg_ctlcluster --skip-systemctl-redirect $v main start"
)


def decide(deps: list[Dependency], facts: Facts, dotenv: Mapping[str, str], purpose: str) -> Plan:
    """What to do so that every dependency answers: nothing, some steps, or fail with fixes."""
    plan = Plan()
    missing = [d for d in deps if d.address not in facts.reachable]
    if not missing:
        return plan
    urls = compose_urls(purpose, dotenv)
    to_compose: list[Dependency] = []
    to_apt: list[Dependency] = []
    for dep in missing:
        if not dep.local:
            plan.failures.append(
                f"{dep.variable} names {dep.address}, which does not answer; only servers on "
                "this machine are started here"
            )
            plan.fixes.append(f"check that {dep.address} is up and reachable from here, or "
                              f"remove {dep.variable} from .env to use a local server")  # fmt: skip
            continue
        started = _start_installed(dep, facts)
        if started is not None:
            plan.steps += started
            plan.waits.append(dep)
        elif (
            facts.docker_engine
            and facts.compose
            and (not dep.explicit or _same_server(dep.url, urls[dep.server]))
        ):
            to_compose.append(dep)
        elif facts.root and facts.debian and _apt_applies(dep):
            to_apt.append(dep)
        else:
            plan.failures.append(f"{dep.variable}: nothing answers on {dep.address}")
            plan.fixes += _fixes(dep, facts, purpose)
    if to_compose:
        _plan_compose(plan, to_compose, facts, dotenv, purpose)
    if to_apt:
        plan.steps += _apt_steps([d.server for d in to_apt], facts)
        plan.waits += to_apt
    plan.fixes = list(dict.fromkeys(plan.fixes))
    return plan


def _same_server(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return (a.hostname, a.port, a.username) == (b.hostname, b.port, b.username)


def _plan_compose(
    plan: Plan, deps: list[Dependency], facts: Facts, dotenv: Mapping[str, str], purpose: str
) -> None:
    updates = {name: secrets.token_urlsafe(24) for name in COMPOSE_SECRETS if not dotenv.get(name)}
    urls = compose_urls(purpose, {**dotenv, **updates})
    for dep in deps:
        if dep.url != urls[dep.server]:
            updates[dep.variable] = urls[dep.server]
    services = [d.server for d in deps]
    plan.env_updates |= updates
    plan.steps.append(
        Step(
            f"start {' and '.join(services)} from deploy/docker-compose.yml (Docker)",
            (*compose_command(facts), "up", "-d", *services),
        )
    )
    plan.compose_services += services
    plan.waits += [Dependency(d.server, d.variable, urls[d.server], True) for d in deps]


def _fixes(dep: Dependency, facts: Facts, purpose: str) -> list[str]:
    """Commands that would make `dep` answer on this machine."""
    target = f"make {purpose}"
    if dep.explicit:
        # The user chose this URL: only its server, or dropping the choice, can fix it.
        return [
            f"start the {dep.server} server {dep.variable} names on {dep.address}",
            f"or remove {dep.variable} from .env and the environment, then: {target}",
        ]
    fixes = []
    if facts.docker_cli and not facts.docker_engine:
        fixes.append(f"sudo systemctl start docker   # or start Docker Desktop; then: {target}")
    elif facts.docker_engine and not facts.compose:
        fixes.append(f"sudo apt-get install -y docker-compose-plugin   # then: {target}")
    elif not facts.docker_cli:
        fixes.append(f"install Docker (https://docs.docker.com/engine/install/), then: {target}")
    if facts.debian and not facts.root:
        fixes.append(f"sudo {sys.executable} scripts/ensure_services.py --for {purpose}"
                     f"   # installs {APT_PACKAGES[dep.server]} with apt-get")  # fmt: skip
    fixes.append(f"or set {dep.variable} in .env to a {dep.server} server that answers")
    return fixes


# ----------------------------------------------------------------------------- the probes


def port_open(address: str, timeout: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _runs(command: list[str], timeout: float = 5.0) -> bool:
    if shutil.which(command[0]) is None:
        return False
    try:
        result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _os_release() -> dict[str, str]:
    path = Path("/etc/os-release")
    return read_env_file(path) if path.exists() else {}


def _postgres_cluster() -> str | None:
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(
        (p.name for p in Path("/etc/postgresql").iterdir() if (p / "main").is_dir()),
        key=lambda v: float(v) if v.replace(".", "").isdigit() else 0.0,
    )
    return f"{versions[-1]} main" if versions else None


def gather(deps: Iterable[Dependency], probe: Callable[[str], bool] = port_open) -> Facts:
    """Probe the addresses; look at Docker and the system only when something is missing."""
    reachable = frozenset(d.address for d in deps if probe(d.address))
    if all(d.address in reachable for d in deps):
        return Facts(reachable=reachable)
    release = _os_release()
    family = {release.get("ID", ""), *release.get("ID_LIKE", "").split()}
    docker_cli = shutil.which("docker") is not None
    engine = _runs(["docker", "info", "--format", "{{.ServerVersion}}"])
    compose: tuple[str, ...] = ()
    if engine and _runs(["docker", "compose", "version"]):
        compose = ("docker", "compose")
    elif engine and shutil.which("docker-compose"):
        compose = ("docker-compose",)
    rabbit = shutil.which("rabbitmq-server") or shutil.which(
        "rabbitmq-server", path="/usr/sbin:/usr/lib/rabbitmq/bin"
    )
    return Facts(
        reachable=reachable,
        docker_engine=engine,
        docker_cli=docker_cli,
        compose=compose,
        root=hasattr(os, "geteuid") and os.geteuid() == 0,
        debian=bool(family & {"debian", "ubuntu"}) and shutil.which("apt-get") is not None,
        systemd=Path("/run/systemd/system").is_dir(),
        postgres_cluster=_postgres_cluster(),
        rabbitmq_server=rabbit,
    )


# ----------------------------------------------------------------------------- carrying it out


def update_env_file(path: Path, updates: Mapping[str, str]) -> None:
    """Set the variables in .env: replace their lines, append the new ones (mode 0600)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    pending = dict(updates)
    for i, line in enumerate(lines):
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and key in pending:
            lines[i] = f"{key}={pending.pop(key)}"
    lines += [f"{key}={value}" for key, value in pending.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


def _healthy(facts: Facts, service: str) -> bool:
    ids = subprocess.run(
        [*compose_command(facts), "ps", "-q", service], capture_output=True, text=True, check=False
    ).stdout.split()
    if not ids:
        return False
    status = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Health.Status}}", ids[0]],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return status == "healthy"


def carry_out(plan: Plan, facts: Facts, out: Callable[[str], None] = print) -> bool:
    if plan.env_updates:
        update_env_file(ENV_FILE, plan.env_updates)
        out(f"wrote {', '.join(sorted(plan.env_updates))} into .env")
    for step in plan.steps:
        out(f"{step.why}:\n    {' '.join(step.command)}")
        if subprocess.run(list(step.command), check=False).returncode != 0:
            out(f"failed: {' '.join(step.command)}")
            return False
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if all(port_open(d.address) for d in plan.waits) and all(
            _healthy(facts, s) for s in plan.compose_services
        ):
            return True
        time.sleep(1)
    late = [d.address for d in plan.waits if not port_open(d.address)] or plan.compose_services
    out(f"still not answering after {WAIT_S:.0f} s: {', '.join(late)}")
    return False


def main(
    argv: list[str] | None = None,
    environ: Mapping[str, str] = os.environ,
    gather_facts: Callable[[list[Dependency]], Facts] = gather,
    out: Callable[[str], None] = print,
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--for", dest="purposes", action="append", choices=["run", "test"])
    args = parser.parse_args(argv)
    for purpose in args.purposes or ["run", "test"]:
        dotenv = read_env_file(ENV_FILE)
        deps = dependencies(purpose, environ, dotenv)
        facts = gather_facts(deps)
        plan = decide(deps, facts, dotenv, purpose)
        if plan.failures:
            out("PostgreSQL/RabbitMQ are not available for `make " + purpose + "`:")
            out("".join(f"  - {failure}\n" for failure in plan.failures).rstrip())
            out("Fix it with one of:")
            out("".join(f"    {fix}\n" for fix in plan.fixes).rstrip())
            return 1
        if not plan.ready and not carry_out(plan, facts, out):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
