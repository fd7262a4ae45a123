"""Health, readiness, metrics, the OpenAPI document, request ids and what the logs may show."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from gateway import Settings, create_app
from gateway.clients import repository


async def test_healthz_and_readyz_need_no_key(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    ready = await anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"database": True, "broker": True}


async def test_readyz_is_503_when_the_broker_is_gone(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await app.state.broker.close()
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json() == {"database": True, "broker": False}
            await app.state.pool.close()
            ready = await client.get("/readyz")
            assert ready.json() == {"database": False, "broker": False}


async def test_no_configured_keys_refuse_everything(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(api_keys=[]))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for key in ("", "anything", "None"):
                response = await client.get(
                    "/api/v1/clients/", headers={"Authorization": f"Bearer {key}"}
                )
                assert response.status_code == 401
            assert (await client.get("/healthz")).status_code == 200


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def test_metrics_count_requests_by_route_template(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    cid = (await client.post("/api/v1/clients/", json={"phone": phone()})).json()["id"]
    await client.get(f"/api/v1/clients/{cid}/")
    await client.get("/api/v1/clients/987654321/")
    await client.get("/no/such/path")
    text = (await anonymous.get("/metrics")).text

    counted = _samples(text, "gateway_http_requests_total")
    routes = {labels["route"] for labels, _ in counted}
    assert "/api/v1/clients/{client_id}/" in routes
    assert "<unmatched>" in routes
    assert not any(f"/{cid}" in route or "987654321" in route for route in routes)
    assert any(
        labels == {"method": "GET", "route": "/api/v1/clients/{client_id}/", "status": "404"}
        for labels, _ in counted
    )
    durations = _samples(text, "gateway_http_request_duration_seconds_count")
    assert any(
        labels == {"method": "POST", "route": "/api/v1/clients/", "status": "201"}
        for labels, _ in durations
    )


async def test_every_response_echoes_a_request_id(anonymous: httpx.AsyncClient) -> None:
    for url in ("/healthz", "/api/v1/clients/", "/nowhere"):
        mine = await anonymous.get(url, headers={"X-Request-ID": "abc-123"})
        assert mine.headers["X-Request-ID"] == "abc-123"
        assert (await anonymous.get(url)).headers["X-Request-ID"]


async def test_logs_show_one_line_per_request_and_never_the_key(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_key: str, phone: Callable[..., str]
) -> None:
    number = phone()
    with capture_logs() as logs:
        await client.post(
            "/api/v1/clients/", json={"phone": number}, headers={"X-Request-ID": "r1"}
        )
        await client.get("/api/v1/clients/", params={"phone": number})
        await client.post(
            "/api/v1/clients/import",
            content=f"{number}\n".encode(),
            headers={"Content-Type": "text/csv"},
        )
        await anonymous.get("/api/v1/clients/", headers={"Authorization": f"Bearer {api_key}x"})
    requests = [entry for entry in logs if entry["event"] == "http_request"]
    assert len(requests) == 4
    first = requests[0]
    assert {"method", "path", "status", "duration_ms", "request_id", "client"} <= set(first)
    assert (first["method"], first["path"], first["status"], first["request_id"]) == (
        "POST", "/api/v1/clients/", 201, "r1"
    )  # fmt: skip
    assert [entry["status"] for entry in requests] == [201, 200, 200, 401]
    everything = repr(logs)
    assert api_key not in everything
    assert "Bearer" not in everything and "uthorization" not in everything
    assert number not in everything  # the phone filter in the query string is not logged


async def test_openapi_documents_every_endpoint_with_examples(anonymous: httpx.AsyncClient) -> None:
    doc = (await anonymous.get("/openapi.json")).json()
    scheme = doc["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    operations: dict[tuple[str, str], Any] = {
        (method, path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if path.startswith("/api/v1/")
    }
    assert set(operations) == {
        ("get", "/api/v1/clients/"),
        ("post", "/api/v1/clients/"),
        ("post", "/api/v1/clients/import"),
        ("get", "/api/v1/clients/import/jobs/{job_id}"),
        ("get", "/api/v1/clients/{client_id}/"),
        ("patch", "/api/v1/clients/{client_id}/"),
        ("put", "/api/v1/clients/{client_id}/"),
        ("delete", "/api/v1/clients/{client_id}/"),
        ("get", "/api/v1/mailings/"),
        ("post", "/api/v1/mailings/"),
        ("post", "/api/v1/mailings/preview/"),
        ("post", "/api/v1/mailings/{mailing_id}/resend/"),
        ("get", "/api/v1/mailings/{mailing_id}/"),
        ("patch", "/api/v1/mailings/{mailing_id}/"),
        ("put", "/api/v1/mailings/{mailing_id}/"),
        ("delete", "/api/v1/mailings/{mailing_id}/"),
        ("get", "/api/v1/mailings/{mailing_id}/messages/"),
        ("post", "/api/v1/mailings/{mailing_id}/cancel/"),
        ("post", "/api/v1/mailings/{mailing_id}/pause/"),
        ("post", "/api/v1/mailings/{mailing_id}/resume/"),
        ("get", "/api/v1/mailings/{mailing_id}/stats/"),
        ("get", "/api/v1/stats/"),
        ("get", "/api/v1/audit/"),
        ("get", "/api/v1/opt-outs/"),
        ("post", "/api/v1/opt-outs/"),
        ("post", "/api/v1/opt-outs/import"),
        ("get", "/api/v1/opt-outs/{phone}/"),
        ("delete", "/api/v1/opt-outs/{phone}/"),
        ("post", "/api/v1/inbound/"),
        ("get", "/api/v1/events/"),
    }
    for (method, path), op in operations.items():
        if path == "/api/v1/inbound/":  # the provider's callback: its own token, no scopes
            assert op["security"] == [{"InboundToken": []}]
            assert "401" in op["responses"] and "403" not in op["responses"]
        else:
            assert op["security"] == [{"ApiKey": []}], (method, path)
            assert "401" in op["responses"] and "403" in op["responses"], (method, path)
        for status, response in op["responses"].items():
            if status == "204":
                continue
            content = response["content"]
            media = next(iter(content.values()))
            assert "example" in media or "examples" in media, (method, path, status)
        command = path.endswith(("/cancel/", "/pause/", "/resume/"))  # no body
        if method in ("post", "put", "patch") and not command:
            body = op["requestBody"]["content"]
            assert all("example" in m or "examples" in m for m in body.values()), (method, path)
            assert "400" in op["responses"] or path.endswith("import")
        if any(p in path for p in ("{client_id}", "{mailing_id}", "{job_id}", "{phone}")):
            assert "404" in op["responses"], (method, path)
        if path.endswith("stats/"):
            assert op["tags"] == ["statistics"], (method, path)
        elif path.startswith("/api/v1/mailings/"):
            assert op["tags"] == ["mailings"], (method, path)
            if method in ("patch", "put") or path.endswith(("cancel/", "pause/", "resume/")):
                assert "400" in op["responses"], (method, path)
                assert "statistics" in op["description"], (method, path)
            if method == "get":
                assert "503" in op["responses"], (method, path)
    create = operations[("post", "/api/v1/clients/")]
    assert create["responses"]["201"]["content"]["application/json"]["example"]["operator_code"]
    detail = operations[("get", "/api/v1/mailings/{mailing_id}/")]["responses"]["200"]
    example = detail["content"]["application/json"]["example"]
    assert example["mailing_messages"][0]["status"] == "DL" and example["messages_url"]
    assert "mailings" in {tag["name"] for tag in doc["tags"]}
    assert {"/healthz", "/readyz", "/metrics"} <= set(doc["paths"])
    assert "security" not in doc["paths"]["/healthz"]["get"]


async def test_swagger_ui_is_served(anonymous: httpx.AsyncClient) -> None:
    docs = await anonymous.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_database_outage_is_503_not_500(
    make_settings: Callable[..., Settings], api_key: str
) -> None:
    app = create_app(make_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as c:
            await app.state.pool.close()
            for method, url, body in [
                ("GET", "/api/v1/clients/", None),
                ("GET", "/api/v1/clients/1/", None),
                ("POST", "/api/v1/clients/", {"phone": "79991234567"}),
            ]:
                response = await c.request(method, url, json=body)
                assert response.status_code == 503, (method, url)
                assert response.headers["Retry-After"] == "5"
                assert "retry later" in response.json()["detail"]


async def test_an_unexpected_error_is_a_500_with_the_request_id(
    make_settings: Callable[..., Settings], api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(repository, "get_client", broken)
    app = create_app(make_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        headers = {"Authorization": f"Bearer {api_key}", "X-Request-ID": "oops-1"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as c:
            with capture_logs() as logs:
                response = await c.get("/api/v1/clients/1/")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error.", "request_id": "oops-1"}
    assert response.headers["X-Request-ID"] == "oops-1"
    assert "boom" not in response.text
    line = next(entry for entry in logs if entry["event"] == "http_request")
    assert (line["status"], line["request_id"]) == (500, "oops-1")
    assert any(entry["event"] == "unhandled_error" for entry in logs)
