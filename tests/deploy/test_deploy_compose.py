"""deploy/docker-compose.yml: valid against the Compose Specification, and wired as intended."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sms_events.broker_users import SERVICE_USERS, password_variable
from tests.deploy.deploy_support import (
    APP_SERVICES,
    COMPOSE_FILE,
    DEPLOY,
    FAKE_PROVIDER,
    ROOT,
    compose,
    fake_provider_env_names,
    settings_env_names,
)

LONG_RUNNING_APPS = [*APP_SERVICES, FAKE_PROVIDER[0]]
ONE_SHOTS = ("migrate", "rabbitmq-users")


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"][name]
    return service


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_file_matches_the_compose_specification_schema() -> None:
    # check-jsonschema vendors the Compose Specification's JSON schema (no network needed).
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_every_part_of_the_platform() -> None:
    expected = {
        *APP_SERVICES,
        "postgres",
        "rabbitmq",
        "migrate",
        "fake-provider",
        "mailpit",
        "prometheus",
        "grafana",
    }
    assert expected <= set(compose()["services"])


def test_app_services_build_one_image_from_the_repository_root() -> None:
    images = set()
    for name in [*LONG_RUNNING_APPS, "migrate"]:
        service = _service(name)
        build = service["build"]
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).is_file(), name
        images.add(service["image"])
    assert len(images) == 1, images


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_runs_its_module_and_checks_its_own_port(name: str) -> None:
    module, port = APP_SERVICES[name]
    service = _service(name)
    assert service["command"] == ["python", "-m", module]
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and test[-1] == f"http://127.0.0.1:{port}/healthz", test
    assert service["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_waits_for_migrations_and_healthy_infrastructure(name: str) -> None:
    depends_on = _service(name)["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["rabbitmq"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy() -> None:
    for name, service in compose()["services"].items():
        if name in ONE_SHOTS:
            continue
        assert service.get("restart") == "unless-stopped", name
        assert service.get("healthcheck", {}).get("test"), name


def test_migrate_is_a_one_shot_job_over_every_service() -> None:
    migrate = _service("migrate")
    assert migrate["command"] == ["sms-migrate", "gateway", "scheduler", "dispatcher", "reporter"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_broker_loads_the_users_a_one_shot_writes_before_it_starts() -> None:
    users, rabbitmq = _service("rabbitmq-users"), _service("rabbitmq")
    assert users["command"][:2] == ["sms-broker-users", "definitions"]
    assert users["restart"] == "no"
    assert rabbitmq["depends_on"]["rabbitmq-users"]["condition"] == "service_completed_successfully"
    output = Path(users["command"][-1])
    (volume,) = [v for v in users["volumes"] if v.endswith(f":{output.parent}")]
    mounted = [v for v in rabbitmq["volumes"] if v.startswith(volume.split(":")[0] + ":")]
    conf = (DEPLOY / "rabbitmq" / "definitions.conf").read_text()
    (target,) = [v.split(":")[1] for v in mounted]
    assert f"load_definitions = {target}/{output.name}" in conf


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_service_connects_as_its_own_broker_user(name: str) -> None:
    url = _service(name)["environment"]["AMQP_URL"]
    user = SERVICE_USERS[name].user  # compose names the services as the platform does
    assert url.startswith(f"amqp://{user}:${{{password_variable(name)}:?"), url


def test_services_get_time_to_drain_on_stop() -> None:
    # The runtime drains for up to 30 s; the dispatcher's provider calls need more.
    for name in APP_SERVICES:
        assert _seconds(_service(name)["stop_grace_period"]) >= 35, name
    assert _seconds(_service("dispatcher")["stop_grace_period"]) >= 45


def test_app_services_run_hardened() -> None:
    for name in [*LONG_RUNNING_APPS, *ONE_SHOTS]:
        service = _service(name)
        assert service["read_only"] is True, name
        assert "ALL" in service["cap_drop"], name
        assert "no-new-privileges:true" in service["security_opt"], name


@pytest.mark.parametrize("name", [*APP_SERVICES, "migrate"])
def test_app_service_environment_names_variables_its_settings_read(name: str) -> None:
    environment = set(_service(name)["environment"])
    known = settings_env_names(name)
    assert environment - known == set(), "unknown (misspelt?) variables"


def test_fake_provider_environment_names_its_own_variables() -> None:
    environment = set(_service(FAKE_PROVIDER[0])["environment"])
    assert environment - fake_provider_env_names() == set()


def test_servers_listen_beyond_localhost_inside_their_containers() -> None:
    hosts = {
        "api-gateway": "GATEWAY_HOST",
        "scheduler": "SCHEDULER_HTTP_HOST",
        "dispatcher": "DISPATCHER_HTTP_HOST",
        "reporter": "REPORTER_HTTP_HOST",
        "fake-provider": "FAKE_PROVIDER_HOST",
    }
    for name, variable in hosts.items():
        assert _service(name)["environment"][variable] == "0.0.0.0", name


def test_reporter_mails_to_mailpit_unless_env_names_a_server() -> None:
    environment = _service("reporter")["environment"]
    assert environment["EMAIL_HOST"] == "${EMAIL_HOST:-mailpit}"
    assert environment["EMAIL_PORT"] == "${EMAIL_PORT:-1025}"


@pytest.mark.parametrize("name", [*APP_SERVICES, "migrate"])
def test_app_service_is_passed_every_variable_its_settings_read(name: str) -> None:
    # `.env.example` promises that every variable reaches its service under `make up`: a new
    # Settings field must be added to the service's environment (as a bare `NAME:` at least).
    missing = settings_env_names(name) - set(_service(name)["environment"])
    assert missing == set(), f"deploy/docker-compose.yml does not pass {sorted(missing)} to {name}"


def test_fake_provider_is_passed_every_variable_it_reads() -> None:
    missing = fake_provider_env_names() - set(_service(FAKE_PROVIDER[0])["environment"])
    assert missing == set()


def test_infrastructure_images_are_supported_releases_pinned_to_a_patch() -> None:
    # No digest can be resolved from here; an exact x.y.z tag is the pin.
    images = {name: _service(name)["image"] for name in ("postgres", "rabbitmq")}
    postgres = re.fullmatch(r"postgres:(\d+)\.(\d+)-alpine", images["postgres"])
    rabbitmq = re.fullmatch(r"rabbitmq:(\d+)\.(\d+)\.(\d+)-management-alpine", images["rabbitmq"])
    assert postgres and int(postgres[1]) >= 17, images["postgres"]
    assert rabbitmq and int(rabbitmq[1]) == 4, images["rabbitmq"]


def test_secrets_are_required_not_defaulted() -> None:
    text = COMPOSE_FILE.read_text()
    for secret in (
        "API_KEYS",
        "SMS_API_TOKEN",
        "POSTGRES_PASSWORD",
        "RABBITMQ_DEFAULT_PASS",
        "GRAFANA_ADMIN_PASSWORD",
    ):
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, secret
        assert all(use.startswith(":?") for use in uses), f"{secret} must use ${{{secret}:?...}}"


def test_published_ports_bind_to_localhost_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_third_party_images_are_pinned_to_exact_versions() -> None:
    # PostgreSQL tags its patch releases x.y; everything else here x.y.z.
    for name, service in compose()["services"].items():
        if "build" in service:
            continue
        tag = service["image"].rpartition(":")[2]
        digits = 2 if name == "postgres" else 3
        assert re.match(r"v?\d+" + r"\.\d+" * (digits - 1) + r"(-|$)", tag), (name, tag)


def test_mounted_config_files_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, source)
