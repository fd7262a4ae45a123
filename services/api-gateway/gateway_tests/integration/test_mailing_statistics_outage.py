"""When the reporter (the statistics) is down, slow or failing: reads are 503 with Retry-After,
commands are carried out anyway and answer with zero counters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from fastapi import FastAPI
from structlog.testing import capture_logs

from gateway import Settings, create_app

from ..reporter_support import ReporterDouble, free_port
from .mailing_support import URL, assert_mailing_shape, body, create, started, stream

UNAVAILABLE = {"detail": "Statistics are temporarily unavailable; retry later."}


@asynccontextmanager
async def _gateway(settings: Settings, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {api_key}"},
        ) as client,
    ):
        yield client


async def _assert_reads_unavailable(client: httpx.AsyncClient, mailing_id: int) -> None:
    for url in (URL, f"{URL}{mailing_id}/", f"{URL}{mailing_id}/messages/"):
        response = await client.get(url)
        assert response.status_code == 503, (url, response.text)
        assert response.headers["Retry-After"] == "5"
        assert response.json() == UNAVAILABLE


async def _assert_commands_work(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> list[dict[str, Any]]:
    created = await client.post(URL, json=body(text="while down"))
    assert created.status_code == 201
    mid = created.json()["id"]
    answers = [created.json()]
    for method, path, payload in [
        ("PATCH", "", {"text": "still down"}),
        ("PUT", "", body(text="put while down")),
        ("POST", "pause/", None),
        ("POST", "resume/", None),
        ("POST", "cancel/", None),
    ]:
        response = await client.request(method, f"{URL}{mid}/{path}", json=payload)
        assert response.status_code == 200, (method, path, response.text)
        answers.append(response.json())
    for answer in answers:
        assert_mailing_shape(answer)
        assert answer["clients_count"] == answer["scheduled_messages"] == 0
    assert [a["state"] for a in answers[-3:]] == ["paused", "scheduled", "cancelled"]
    assert len(await stream(pool, mid)) == 6
    return answers


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_reads_are_503_while_the_reporter_answers_5xx(
    client: httpx.AsyncClient, reporter: ReporterDouble, status: int
) -> None:
    mid = (await create(client))["id"]
    reporter.fail_with = status
    with capture_logs() as logs:
        await _assert_reads_unavailable(client, mid)
    assert {e["status"] for e in logs if e["event"] == "reporter_unavailable"} == {status}


async def test_commands_are_carried_out_while_the_reporter_fails(
    client: httpx.AsyncClient, reporter: ReporterDouble, pool: asyncpg.Pool
) -> None:
    reporter.fail_with = 500
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        answers = await _assert_commands_work(client, pool)
    warnings = [e for e in logs if e["event"] == "mailing_counters_unknown"]
    assert len(warnings) == 5  # one per command that asked the reporter (not POST)
    assert {e["mailing_id"] for e in warnings} == {answers[0]["id"]}
    assert {e["log_level"] for e in warnings} == {"warning"}
    reporter.fail_with = None
    assert (await client.get(f"{URL}{answers[0]['id']}/")).status_code == 200


async def test_a_reporter_that_is_down_makes_reads_503_and_commands_still_work(
    make_settings: Callable[..., Settings], api_key: str, pool: asyncpg.Pool
) -> None:
    closed = free_port()  # nothing listens there
    settings = make_settings(reporter_url=f"http://127.0.0.1:{closed}")
    async with _gateway(settings, api_key) as client:
        answers = await _assert_commands_work(client, pool)
        await _assert_reads_unavailable(client, answers[0]["id"])


async def test_a_slow_reporter_times_out_into_a_503(
    make_settings: Callable[..., Settings], api_key: str, reporter: ReporterDouble
) -> None:
    reporter.delay_s = 1.0
    async with _gateway(make_settings(reporter_timeout_s=0.2), api_key) as client:
        mid = (await create(client, **started()))["id"]
        response = await client.get(f"{URL}{mid}/")
        assert (response.status_code, response.json()) == (503, UNAVAILABLE)
        paused = await client.post(f"{URL}{mid}/pause/")
        assert (paused.status_code, paused.json()["state"]) == (200, "paused")


async def test_a_reporter_refusing_a_read_is_a_500_not_an_outage(
    make_settings: Callable[..., Settings], api_key: str, reporter: ReporterDouble
) -> None:
    async with _gateway(make_settings(), api_key) as client:
        mid = (await create(client))["id"]
        reporter.fail_with = 400
        response = await client.get(f"{URL}{mid}/")
        assert response.status_code == 500
        assert response.json()["detail"] == "Internal server error."
        # Commands still do not depend on the statistics.
        paused = await client.post(f"{URL}{mid}/pause/")
        assert (paused.status_code, paused.json()["state"]) == (200, "paused")
