"""deploy/k8s: kustomize renders base and overlays, and every resource is valid Kubernetes.

Rendering uses the real kustomize (`kubectl kustomize`, shipped with kubectl). Core resources are
validated by kubernetes-validate (the upstream OpenAPI schemas, strict: unknown fields fail);
the CRDs it has no schema for (KEDA, Prometheus Operator) are on an explicit allow-list and are
validated against the small schemas in tests/deploy/schemas/ instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]  # ships no type hints
import pytest

from sms_events.broker_users import SERVICE_USERS
from tests.deploy.deploy_support import (
    APP_SERVICES,
    K8S,
    SCHEMAS,
    all_service_env_names,
    compose,
    render,
    settings_env_names,
    settings_secret_env_names,
)

OVERLAYS = ["base", "overlays/dev", "overlays/prod"]
# The oldest Kubernetes minor the manifests promise to work with.
KUBERNETES_VERSION = "1.30"
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-operator-servicemonitor.json",
}
SECRET = "sms-platform-secrets"
# The one Secret key no service reads: KEDA's URL of RabbitMQ's management API.
KEDA_RABBITMQ_KEY = "RABBITMQ_MANAGEMENT_URL"
CONFIG = "sms-platform-config"


def _of(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _containers(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield doc["metadata"]["name"], container


def _cpu(value: str | int) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _memory_mib(value: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(value[:-2]) * units[value[-2:]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_is_valid(overlay: str) -> None:
    errors = []
    for doc in render(overlay):
        key = (doc["apiVersion"], doc["kind"])
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if key in CRD_SCHEMAS:
            schema = json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text())
            validator = jsonschema.Draft202012Validator(schema)
            errors += [
                f"{where}: {e.message} at {list(e.path)}" for e in validator.iter_errors(doc)
            ]
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{where}: {e.message} at {list(e.path)}")
    assert errors == []


def test_crd_schemas_catch_mistakes() -> None:
    # The hand-written schemas must not accept anything: a typo'd or mistyped field fails.
    scaled = _of(render("base"), "ScaledObject")["dispatcher"]
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[("keda.sh/v1alpha1", "ScaledObject")]).read_text())
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["triggers"][0]["metadata"]["value"] = 4
    broken["spec"]["maxReplicas"] = 3
    assert len(list(jsonschema.Draft202012Validator(schema).iter_errors(broken))) == 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_names_reuse_the_compose_service_names(overlay: str) -> None:
    services = set(compose()["services"])
    docs = render(overlay)
    for kind in ("Deployment", "Job", "Service", "PodDisruptionBudget"):
        assert set(_of(docs, kind)) <= services, kind
    assert set(APP_SERVICES) <= set(_of(docs, "Deployment"))
    assert "migrate" in _of(docs, "Job")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_probe_drain_and_run_unprivileged(overlay: str) -> None:
    for name, deployment in _of(render(overlay), "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        grace = pod["terminationGracePeriodSeconds"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        if name not in APP_SERVICES:
            continue
        # The runtime drains for up to 30 s; the dispatcher's provider calls need longer.
        assert grace >= (45 if name == "dispatcher" else 35), name
        (container,) = pod["containers"]
        _module, port = APP_SERVICES[name]
        assert container["ports"] == [{"name": "http", "containerPort": port}], name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_are_scraped_by_prometheus(overlay: str) -> None:
    for name, deployment in _of(render(overlay), "Deployment").items():
        if name not in APP_SERVICES:
            continue
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(APP_SERVICES[name][1]), name
        assert annotations["prometheus.io/path"] == "/metrics", name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_and_prometheus_reach_the_reporter(overlay: str) -> None:
    (policy,) = _of(render(overlay), "NetworkPolicy").values()
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "reporter"}
    assert spec["policyTypes"] == ["Ingress"]
    port = APP_SERVICES["reporter"][1]
    sources = []
    for rule in spec["ingress"]:
        assert rule["ports"] == [{"protocol": "TCP", "port": port}]
        (peer,) = rule["from"]
        sources.append(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
    assert sources == ["api-gateway", "prometheus"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(overlay: str) -> None:
    for name, container in _containers(render(overlay)):
        resources = container["resources"]
        for kind in ("cpu", "memory"):
            request, limit = resources["requests"][kind], resources["limits"][kind]
            convert = _cpu if kind == "cpu" else _memory_mib
            assert convert(request) <= convert(limit), (name, kind)


def test_base_fits_a_two_core_node() -> None:
    # Requests of one replica each leave most of a 2-core node to PostgreSQL, RabbitMQ and
    # the system; no single limit exceeds one core (the services are single-threaded).
    docs = render("base")
    containers = [c for _name, c in _containers(docs)]
    assert sum(_cpu(c["resources"]["requests"]["cpu"]) for c in containers) <= 1.0
    assert sum(_memory_mib(c["resources"]["requests"]["memory"]) for c in containers) <= 1024
    assert max(_cpu(c["resources"]["limits"]["cpu"]) for c in containers) <= 1.0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_service_and_a_disruption_budget(overlay: str) -> None:
    docs = render(overlay)
    services, budgets = _of(docs, "Service"), _of(docs, "PodDisruptionBudget")
    for name, deployment in _of(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert services[name]["spec"]["selector"].items() <= labels.items(), name
        if name in APP_SERVICES:
            selector = budgets[name]["spec"]["selector"]["matchLabels"]
            assert selector.items() <= labels.items(), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_and_config_references_resolve(overlay: str) -> None:
    docs = render(overlay)
    secrets, configs = _of(docs, "Secret"), _of(docs, "ConfigMap")
    secret_keys = set(secrets[SECRET]["stringData"]) if SECRET in secrets else None
    for name, container in _containers(docs):
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in configs, name
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is None:
                continue
            assert ref["name"] == SECRET, name
            if secret_keys is not None and not ref.get("optional"):
                assert ref["key"] in secret_keys, (name, ref["key"])


def test_secret_template_holds_only_placeholders() -> None:
    secret = _of(render("base"), "Secret")[SECRET]
    assert secret["metadata"]["annotations"]["sms-platform/placeholder"] == "true"
    for key, value in secret["stringData"].items():
        assert "change-me" in value.lower(), key


def test_prod_never_applies_the_placeholder_secret() -> None:
    assert SECRET not in _of(render("overlays/prod"), "Secret")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_names_variables_the_services_read(overlay: str) -> None:
    known = all_service_env_names()
    for config in _of(render(overlay), "ConfigMap").values():
        assert set(config["data"]) - known == set()
    for name, container in _containers(render(overlay)):
        names = {env["name"] for env in container.get("env", [])}
        assert names - known == set(), name


def test_secret_keys_are_variables_the_services_read() -> None:
    secret = _of(render("base"), "Secret")[SECRET]
    readers = set().union(*(settings_env_names(s) for s in APP_SERVICES))
    readers |= {_amqp_url_key(s) for s in APP_SERVICES}  # each service's AMQP_URL
    assert set(secret["stringData"]) - {KEDA_RABBITMQ_KEY} <= readers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dispatcher_scales_on_its_queue_with_keda(overlay: str) -> None:
    docs = render(overlay)
    scaled = _of(docs, "ScaledObject")["dispatcher"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "dispatcher"
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == "dispatcher"
    assert trigger["metadata"]["mode"] == "QueueLength"
    auth = _of(docs, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    (ref,) = auth["spec"]["secretTargetRef"]
    assert (ref["parameter"], ref["name"], ref["key"]) == ("host", SECRET, KEDA_RABBITMQ_KEY)
    # http: ready + unacknowledged batches (amqp would count only the ready ones, which the
    # replicas' prefetch empties, and KEDA would flap).
    assert trigger["metadata"]["protocol"] == "http"
    # KEDA owns the replica count: a fixed one in the Deployment would fight it on every apply.
    assert "replicas" not in _of(docs, "Deployment")["dispatcher"]["spec"]


def test_the_dispatcher_queue_name_matches_the_code() -> None:
    from dispatcher.consumer import QUEUE

    config = _of(render("base"), "ConfigMap")[CONFIG]["data"]
    assert config["AMQP_QUEUE_PREFIX"] + QUEUE.name == "dispatcher"


def test_migrations_job_runs_every_services_migrations() -> None:
    job = _of(render("base"), "Job")["migrate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    assert container["command"] == [
        "sms-migrate",
        "gateway",
        "scheduler",
        "dispatcher",
        "reporter",
    ]
    assert job["ttlSecondsAfterFinished"] > 0


def test_overlays_pin_image_tags_and_differ_in_size() -> None:
    for overlay in ("overlays/dev", "overlays/prod"):
        for name, container in _containers(render(overlay)):
            image = container["image"]
            assert ":" in image and not image.endswith(":latest"), (overlay, name, image)
    dev, prod = (
        _of(render("overlays/dev"), "Deployment"),
        _of(render("overlays/prod"), "Deployment"),
    )
    assert prod["api-gateway"]["spec"]["replicas"] > dev["api-gateway"]["spec"]["replicas"]
    assert _of(render("overlays/prod"), "ServiceMonitor")


def test_dev_points_the_dispatcher_at_the_fake_provider() -> None:
    docs = render("overlays/dev")
    assert _of(docs, "ConfigMap")[CONFIG]["data"]["SMS_API_URL"] == "http://fake-provider:8010"
    assert "fake-provider" in _of(docs, "Service")


def _secret_refs(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        env["name"]: env["valueFrom"]["secretKeyRef"]
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_secret_setting_comes_from_the_secret(overlay: str, service: str) -> None:
    # A secret the service reads but the pod never gets cannot be set at all (as happened to
    # EMAIL_HOST_PASSWORD): each is mapped from the Secret, optional unless the service needs it.
    containers = dict(_containers(render(overlay)))
    refs = _secret_refs(containers[service])
    missing = settings_secret_env_names(service) - set(refs)
    assert missing == set(), f"{service} gets no {sorted(missing)} from the Secret"
    # Each service has a broker user of its own (sms_events.broker_users), so its own URL.
    own = {"AMQP_URL": _amqp_url_key(service)}
    for name, ref in refs.items():
        assert ref["key"] == own.get(name, name), (service, name)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_other_setting_can_be_set_in_the_configmap(overlay: str, service: str) -> None:
    containers = dict(_containers(render(overlay)))
    sources = [s["configMapRef"]["name"] for s in containers[service].get("envFrom", [])]
    assert sources == [CONFIG], service
    config = _of(render(overlay), "ConfigMap")[CONFIG]["data"]
    secrets = settings_secret_env_names(service)
    assert set(config) & secrets == set(), "a secret in the ConfigMap"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_the_configmap_lists_every_setting_it_does_not_set(service: str) -> None:
    # The base ConfigMap is the operator's full list of knobs: set, or commented out with the
    # service's default. A new Settings field must be added there.
    text = (K8S / "base" / "configmap.yaml").read_text()
    listed = set(re.findall(r"^\s*#?\s*([A-Z][A-Z0-9_]*):", text, re.MULTILINE))
    missing = settings_env_names(service) - settings_secret_env_names(service) - listed
    assert missing == set(), f"deploy/k8s/base/configmap.yaml does not list {sorted(missing)}"


def test_the_secret_template_names_every_optional_secret() -> None:
    text = (K8S / "base" / "secret.yaml").read_text()
    for service in APP_SERVICES:
        for name in settings_secret_env_names(service):
            assert name in text, name


def _amqp_url_key(service: str) -> str:
    """The Secret's key of ``service``'s AMQP_URL, with the broker user of its own."""
    return f"AMQP_URL_{SERVICE_USERS[service].user.removeprefix('sms-').upper()}"
