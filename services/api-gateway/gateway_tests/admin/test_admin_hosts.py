"""Transport and hosts: with OIDC the gateway will not start without ADMIN_BASE_URL, every
absolute link comes from it whatever Host a request names, and TRUSTED_HOSTS answers another
Host with 400 except on the probes' endpoints (reached by pod IP)."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from sms_events.testing.environment import TestEnvironment
from sms_events.testing.processes import free_port

from .admin_support import API_KEY, Gateway, Provider, oidc_env, spawn, stop

ADMIN_ENV = {"TRUSTED_HOSTS": "sms.example.com,*.sms.example.com"}


def test_oidc_without_a_base_url_refuses_to_start(
    provider: Provider, admin_env: TestEnvironment, logs: Path
) -> None:
    env = (
        admin_env.env_vars()
        | oidc_env(provider, "")
        | {
            "API_KEYS": API_KEY,
            "GATEWAY_PORT": str(free_port()),
        }
    )
    proc = spawn([sys.executable, "-m", "gateway"], env, logs / "no-base-url.log")
    try:
        assert proc.wait(60) != 0
    finally:
        stop(proc)
    assert "ADMIN_BASE_URL is required with OIDC login" in (logs / "no-base-url.log").read_text()


def test_links_come_from_the_base_url_not_from_the_host(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=15) as client:
        resp = client.get("/admin/auth/login", headers={"Host": "evil.example"})
    assert resp.status_code == 303
    query = parse_qs(urlsplit(resp.headers["location"]).query)
    assert query["redirect_uri"] == [f"{gateway.url}/admin/auth/callback"]


def test_another_host_gets_400_but_the_probes_answer(other_gateway: Gateway) -> None:
    with httpx.Client(base_url=other_gateway.url, timeout=15) as client:
        # By IP, as a Kubernetes probe or Prometheus reaches a pod.
        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200, path
        for path in ("/admin/login", "/api/v1/clients/", "/docs"):
            assert client.get(path).status_code == 400, path
        assert client.get("/admin/login", headers={"Host": "evil.example"}).status_code == 400
        for host in ("sms.example.com", "eu.sms.example.com"):
            # Let through: the admin answers (closed here: no login configured).
            resp = client.get("/admin/login", headers={"Host": host})
            assert resp.status_code == 403 and "not configured" in resp.text.lower(), host
