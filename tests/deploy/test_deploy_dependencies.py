"""scripts/ensure_services.py: which PostgreSQL and RabbitMQ `make run`/`make test` use, and how
they are brought up where nothing answers.

This machine runs both servers and has a Docker client without an engine, so the branches are
driven by fake probe results (`Facts`); the compose path is checked against the compose file
itself (the services, published ports and health checks it relies on) and by Debian's
docker-compose where it is installed.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import COMPOSE_FILE, ROOT, compose

SCRIPTS = ROOT / "scripts"


@cache
def _module(name: str) -> ModuleType:
    """A module of scripts/ (no package), imported from its path under its own name."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, and compose_urls' import, look it up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def es() -> ModuleType:
    return _module("ensure_services")


def _deps(es: ModuleType, purpose: str = "run", **env: str) -> list[Any]:
    deps: list[Any] = es.dependencies(purpose, env, {})
    return deps


def _commands(plan: Any) -> list[str]:
    return [" ".join(step.command) for step in plan.steps]


# ---------------------------------------------------------------------------- which URLs


def test_urls_come_from_the_environment_before_dotenv_before_the_defaults(es: ModuleType) -> None:
    environ = {"DATABASE_URL": "postgresql://u:p@db.internal:6543/sms"}
    dotenv = {"DATABASE_URL": "postgresql://x@elsewhere/sms", "AMQP_URL": "amqp://mq:5999/"}
    pg, mq = es.dependencies("run", environ, dotenv)
    assert (pg.address, pg.explicit) == ("db.internal:6543", True)
    assert (mq.address, mq.explicit) == ("mq:5999", True)
    pg, mq = es.dependencies("run", {}, {})
    assert (pg.address, mq.address, pg.explicit) == ("localhost:5432", "localhost:5672", False)


def test_make_test_probes_the_test_urls(es: ModuleType) -> None:
    pg, mq = es.dependencies("test", {"TEST_AMQP_URL": "amqp://g:g@127.0.0.1:25672/"}, {})
    assert (pg.variable, mq.variable) == ("TEST_DATABASE_URL", "TEST_AMQP_URL")
    assert mq.address == "127.0.0.1:25672"


def test_default_ports_fill_in_urls_without_one(es: ModuleType) -> None:
    pg, mq = es.dependencies(
        "run", {"DATABASE_URL": "postgresql://h/db", "AMQP_URL": "amqps://h/"}, {}
    )
    assert (pg.port, mq.port) == (5432, 5671)


def test_env_file_is_read_without_comments_exports_or_quotes(
    es: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / ".env"
    path.write_text("# DATABASE_URL=commented\nexport AMQP_URL='amqp://a/'\nAPI_KEYS=\"k\"\n\nX\n")
    assert es.read_env_file(path) == {"AMQP_URL": "amqp://a/", "API_KEYS": "k"}


def test_env_file_updates_replace_lines_and_append_new_ones(es: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# DATABASE_URL=keep this comment\nDATABASE_URL=old\nAPI_KEYS=k\n")
    es.update_env_file(path, {"DATABASE_URL": "new", "TEST_AMQP_URL": "amqp://x/"})
    assert path.read_text() == (
        "# DATABASE_URL=keep this comment\nDATABASE_URL=new\nAPI_KEYS=k\nTEST_AMQP_URL=amqp://x/\n"
    )
    assert path.stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------------------- the decisions


def test_servers_that_answer_are_used_as_they_are(es: ModuleType) -> None:
    deps = _deps(es)
    facts = es.Facts(reachable=frozenset(d.address for d in deps), docker_engine=True)
    assert es.decide(deps, facts, {}, "run").ready


def test_this_machine_is_ready_with_the_real_probes(es: ModuleType) -> None:
    # Both servers run here (CI too): the real probes find them, and nothing else is looked at.
    deps = es.dependencies("test", {}, {})
    started = time.monotonic()
    facts = es.gather(deps)
    assert es.decide(deps, facts, {}, "test").ready
    assert time.monotonic() - started < 5


def test_installed_but_stopped_servers_are_started(es: ModuleType) -> None:
    facts = es.Facts(postgres_cluster="15 main", rabbitmq_server="/usr/sbin/rabbitmq-server")
    plan = es.decide(_deps(es), facts, {}, "run")
    assert _commands(plan) == [
        "pg_ctlcluster --skip-systemctl-redirect 15 main start",
        "/usr/sbin/rabbitmq-server -detached",
    ]
    assert not plan.failures and not plan.env_updates


def test_only_the_server_that_does_not_answer_is_started(es: ModuleType) -> None:
    deps = _deps(es)
    facts = es.Facts(
        reachable=frozenset({"localhost:5432"}),
        postgres_cluster="15 main",
        rabbitmq_server="/usr/sbin/rabbitmq-server",
    )
    assert _commands(es.decide(deps, facts, {}, "run")) == ["/usr/sbin/rabbitmq-server -detached"]


def test_a_docker_engine_starts_both_from_the_compose_file(es: ModuleType) -> None:
    facts = es.Facts(docker_engine=True, docker_cli=True, compose=("docker", "compose"))
    plan = es.decide(_deps(es), facts, {"POSTGRES_PASSWORD": "pw"}, "run")
    (command,) = _commands(plan)
    assert command == (
        f"docker compose -p sms-platform -f {COMPOSE_FILE} --env-file {ROOT / '.env'} "
        "up -d postgres rabbitmq"
    )
    assert plan.compose_services == ["postgres", "rabbitmq"]
    # The URLs of the containers go into .env, with generated passwords where none were set.
    updates = plan.env_updates
    assert updates["DATABASE_URL"] == "postgresql://sms:pw@127.0.0.1:15432/sms"
    mq_password = updates["RABBITMQ_DEFAULT_PASS"]
    assert updates["AMQP_URL"] == f"amqp://sms:{mq_password}@127.0.0.1:5673/"
    assert "POSTGRES_PASSWORD" not in updates and len(mq_password) >= 24
    # Compose refuses the whole file while any of its secrets is missing.
    assert {"GRAFANA_ADMIN_PASSWORD", "API_KEYS", "SMS_API_TOKEN"} <= set(updates)
    assert [d.address for d in plan.waits] == ["127.0.0.1:15432", "127.0.0.1:5673"]


def test_tests_get_the_compose_postgres_as_a_superuser_dsn(es: ModuleType) -> None:
    facts = es.Facts(docker_engine=True, docker_cli=True, compose=("docker-compose",))
    dotenv = {"POSTGRES_PASSWORD": "pw", "RABBITMQ_DEFAULT_PASS": "mq", "POSTGRES_DB": "x"}
    plan = es.decide(_deps(es, "test"), facts, dotenv, "test")
    assert plan.env_updates["TEST_DATABASE_URL"] == "postgresql://sms:pw@127.0.0.1:15432/postgres"
    assert plan.env_updates["TEST_AMQP_URL"] == "amqp://sms:mq@127.0.0.1:5673/"
    assert _commands(plan)[0].startswith("docker-compose -p sms-platform ")


def test_urls_written_before_are_started_again_without_rewriting(es: ModuleType) -> None:
    dotenv = {k: "s" for k in es.COMPOSE_SECRETS}
    urls = es.compose_urls("run", dotenv)
    deps = es.dependencies(
        "run", {}, {"DATABASE_URL": urls["postgres"], "AMQP_URL": urls["rabbitmq"]}
    )
    facts = es.Facts(docker_engine=True, docker_cli=True, compose=("docker", "compose"))
    plan = es.decide(deps, facts, dotenv, "run")
    assert _commands(plan)[0].endswith("up -d postgres rabbitmq")
    assert plan.env_updates == {}


def test_a_url_the_user_chose_is_never_pointed_elsewhere(es: ModuleType) -> None:
    deps = _deps(es, DATABASE_URL="postgresql://app:pw@localhost:6432/sms")
    facts = es.Facts(
        reachable=frozenset({"localhost:5672"}),
        docker_engine=True,
        docker_cli=True,
        compose=("docker", "compose"),
        root=True,
        debian=True,
    )
    plan = es.decide(deps, facts, {}, "run")
    assert plan.steps == [] and plan.env_updates == {}
    assert plan.failures == ["DATABASE_URL: nothing answers on localhost:6432"]
    assert plan.fixes == [
        "start the postgres server DATABASE_URL names on localhost:6432",
        "or remove DATABASE_URL from .env and the environment, then: make run",
    ]


def test_another_host_that_does_not_answer_is_reported_not_replaced(es: ModuleType) -> None:
    deps = _deps(es, AMQP_URL="amqp://u:p@mq.example.com:5672/")
    facts = es.Facts(
        reachable=frozenset({"localhost:5432"}),
        docker_engine=True,
        compose=("docker", "compose"),
        root=True,
        debian=True,
        rabbitmq_server="/usr/sbin/rabbitmq-server",
    )
    plan = es.decide(deps, facts, {}, "run")
    assert plan.steps == []
    assert "AMQP_URL names mq.example.com:5672, which does not answer" in plan.failures[0]


def test_root_on_debian_without_docker_installs_the_distribution_packages(es: ModuleType) -> None:
    facts = es.Facts(docker_cli=True, root=True, debian=True)
    plan = es.decide(_deps(es), facts, {}, "run")
    commands = _commands(plan)
    assert commands[0] == "env DEBIAN_FRONTEND=noninteractive apt-get update"
    assert commands[1] == (
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
        "postgresql rabbitmq-server"
    )
    assert "pg_hba.conf" in commands[2] and "pg_ctlcluster" in commands[2]
    assert commands[3] == "sh -c rabbitmq-server -detached"
    assert [d.address for d in plan.waits] == ["localhost:5432", "localhost:5672"]


def test_apt_starts_rabbitmq_through_systemd_where_it_runs(es: ModuleType) -> None:
    facts = es.Facts(root=True, debian=True, systemd=True, reachable=frozenset({"localhost:5432"}))
    plan = es.decide(_deps(es), facts, {}, "run")
    assert _commands(plan)[-1] == "systemctl start rabbitmq-server"


def test_apt_is_not_used_for_urls_its_packages_cannot_serve(es: ModuleType) -> None:
    # Debian's PostgreSQL has no role "app", and listens on 5432 only.
    facts = es.Facts(root=True, debian=True, reachable=frozenset({"localhost:5672"}))
    for url in ("postgresql://app@localhost:5432/sms", "postgresql://postgres@localhost:5433/x"):
        plan = es.decide(_deps(es, DATABASE_URL=url), facts, {}, "run")
        assert plan.steps == [] and plan.failures, url


def test_without_docker_or_root_it_prints_the_commands_that_fix_it(es: ModuleType) -> None:
    facts = es.Facts(docker_cli=True, debian=True)
    plan = es.decide(_deps(es, "test"), facts, {}, "test")
    assert plan.steps == []
    assert plan.failures == [
        "TEST_DATABASE_URL: nothing answers on localhost:5432",
        "TEST_AMQP_URL: nothing answers on localhost:5672",
    ]
    assert (
        plan.fixes[0] == "sudo systemctl start docker   # or start Docker Desktop; then: make test"
    )
    assert f"sudo {sys.executable} scripts/ensure_services.py --for test" in plan.fixes[1]
    assert plan.fixes[-1] == "or set TEST_AMQP_URL in .env to a rabbitmq server that answers"


def test_without_a_docker_client_it_says_where_to_get_docker(es: ModuleType) -> None:
    plan = es.decide(_deps(es), es.Facts(), {}, "run")
    assert plan.fixes[0].startswith("install Docker (https://docs.docker.com/engine/install/)")


def test_a_docker_engine_without_compose_asks_for_the_plugin(es: ModuleType) -> None:
    plan = es.decide(_deps(es), es.Facts(docker_engine=True, docker_cli=True), {}, "run")
    assert plan.steps == []
    assert plan.fixes[0].startswith("sudo apt-get install -y docker-compose-plugin")


def test_main_stops_within_seconds_printing_the_fix(es: ModuleType) -> None:
    printed: list[str] = []
    started = time.monotonic()
    code = es.main(
        ["--for", "run"],
        environ={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/sms"},
        gather_facts=lambda deps: es.gather(deps),  # the real probes: port 1 is closed
        out=printed.append,
    )
    assert code == 1
    assert time.monotonic() - started < 10
    text = "\n".join(printed)
    assert "DATABASE_URL: nothing answers on 127.0.0.1:1" in text
    assert "start the postgres server DATABASE_URL names on 127.0.0.1:1" in text


def test_main_does_nothing_where_everything_answers(es: ModuleType) -> None:
    printed: list[str] = []
    code = es.main(
        ["--for", "run", "--for", "test"],
        environ={},
        gather_facts=lambda deps: es.Facts(reachable=frozenset(d.address for d in deps)),
        out=printed.append,
    )
    assert (code, printed) == (0, [])


# ---------------------------------------------------------------------------- the compose path


def _published(service: str, container_port: int) -> str:
    for port in compose()["services"][service]["ports"]:
        if str(port).endswith(f":{container_port}"):
            return str(port)
    raise AssertionError(f"{service} does not publish {container_port}")


def test_the_compose_file_publishes_both_where_the_script_looks(es: ModuleType) -> None:
    for server, container_port in (("postgres", 5432), ("rabbitmq", 5672)):
        variable, default = es.COMPOSE_PUBLISHED[server]
        assert _published(server, container_port) == (
            f"127.0.0.1:${{{variable}:-{default}}}:{container_port}"
        )


def test_the_compose_servers_are_health_checked_and_keep_data_in_named_volumes() -> None:
    services, volumes = compose()["services"], compose()["volumes"]
    for name, data in (("postgres", "/var/lib/postgresql/data"), ("rabbitmq", "/var/lib/rabbitmq")):
        assert services[name]["healthcheck"]["test"], name
        named = [v.split(":")[0] for v in services[name]["volumes"] if v.split(":")[1] == data]
        assert named and named[0] in volumes, name


def test_the_compose_secrets_the_script_generates_are_the_ones_the_file_requires(
    es: ModuleType,
) -> None:
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE_FILE.read_text()))
    assert required == set(es.COMPOSE_SECRETS)


def test_the_compose_file_has_no_project_name_for_docker_compose_1() -> None:
    # Debian's docker-compose 1.29 rejects a top-level `name:`; -p gives the name instead.
    assert "name" not in compose()


def _secrets_env(es: ModuleType, tmp_path: Path) -> Path:
    env = tmp_path / ".env"
    env.write_text("".join(f"{name}=x{i}\n" for i, name in enumerate(es.COMPOSE_SECRETS)))
    return env


def test_debians_docker_compose_accepts_the_file(es: ModuleType, tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    env = _secrets_env(es, tmp_path)
    base = [binary, "-p", "sms-platform", "-f", str(COMPOSE_FILE), "--env-file", str(env)]
    result = subprocess.run([*base, "config"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    # 1.29 writes short syntax ("127.0.0.1:5673:5672/tcp"); the plugin the long one.
    ports = [
        p if isinstance(p, str) else f"{p['host_ip']}:{p['published']}:{p['target']}/tcp"
        for p in resolved["services"]["rabbitmq"]["ports"]
    ]
    assert "127.0.0.1:5673:5672/tcp" in ports
    assert "127.0.0.1:15432:5432/tcp" in [
        p if isinstance(p, str) else f"{p['host_ip']}:{p['published']}:{p['target']}/tcp"
        for p in resolved["services"]["postgres"]["ports"]
    ]
    assert {"postgres-data", "rabbitmq-data"} <= set(resolved["volumes"])


def test_debians_docker_compose_refuses_a_missing_secret(es: ModuleType, tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    env = tmp_path / ".env"
    env.write_text("".join(f"{name}=x\n" for name in es.COMPOSE_SECRETS[1:]))
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--env-file", str(env), "config", "-q"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert es.COMPOSE_SECRETS[0] in result.stderr


def test_make_up_prints_where_the_uis_are(es: ModuleType) -> None:
    urls = _module("compose_urls")
    lines = "\n".join(urls.lines({"GRAFANA_PUBLISHED_PORT": "3300"}))
    assert "Grafana" in lines and "http://127.0.0.1:3300/" in lines
    assert "Mailpit" in lines and "http://127.0.0.1:8025/" in lines
    assert "http://127.0.0.1:8000/admin" in lines
    # Each default is the one the compose file publishes.
    for _what, variable, default, _path in urls.UIS:
        assert f"${{{variable}:-{default}}}" in COMPOSE_FILE.read_text(), variable
