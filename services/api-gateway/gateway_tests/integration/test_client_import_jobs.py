"""Client imports as background jobs (Prefer: respond-async): 202 with the job's URL, progress
while it runs, the result when done, failed when its gateway stops or dies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gateway.clients.import_jobs import STOPPED_ERROR, ImportJobs
from gateway.clients.importer import BATCH_SIZE, ImportFormat
from gateway.clients.rules import PHONE_MESSAGE
from gateway.import_limits import ImportLimits

URL = "/api/v1/clients/import"
ASYNC_CSV = {"Content-Type": "text/csv", "Prefer": "respond-async"}


async def _job_until(
    client: httpx.AsyncClient, url: str, done: Callable[[dict[str, Any]], bool], within: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if done(job) or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.05)


def _finished(job: dict[str, Any]) -> bool:
    return bool(job["state"] != "running")


@pytest.fixture
async def locked_client(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """An existing client whose row a transaction holds until the test sets the event: an
    import that updates it waits there, after its earlier batches committed."""
    number = phone()
    created = await client.post("/api/v1/clients/", json={"phone": number, "tag": "old"})
    assert created.status_code == 201, created.text
    release = asyncio.Event()
    locked = asyncio.Event()

    async def hold() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM gateway_clients WHERE phone = $1 FOR UPDATE", number)
            locked.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await locked.wait()
    yield number, release
    release.set()
    await holder


async def test_a_background_import_answers_202_with_the_job_and_reports_the_result(
    client: httpx.AsyncClient, pool: asyncpg.Pool, phone: Callable[..., str]
) -> None:
    tag = f"j{uuid4().hex[:12]}"
    lines = [f"{phone()},{tag},Europe/Moscow" for _ in range(3000)]
    lines[99] = "12345,x,UTC"
    body = ("phone,tag,time_zone\n" + "\n".join(lines) + "\n").encode()

    response = await client.post(URL, content=body, headers=ASYNC_CSV)

    assert response.status_code == 202, response.text
    assert response.headers["preference-applied"] == "respond-async"
    location = response.headers["location"]
    assert location.startswith("http://testserver/api/v1/clients/import/jobs/")
    accepted = response.json()
    assert accepted["url"] == location and accepted["state"] in {"running", "succeeded"}
    assert (accepted["format"], accepted["bytes_total"]) == ("csv", len(body))

    job = await _job_until(client, location, _finished)
    assert job["state"] == "succeeded", job
    assert job["error"] is None and job["finished_at"] is not None
    assert (job["bytes_read"], job["rows_read"]) == (len(body), 3001)
    assert (job["created"], job["updated"], job["unchanged"], job["rejected"]) == (2999, 0, 0, 1)
    assert job["errors"] == [{"line": 101, "errors": {"phone": [PHONE_MESSAGE]}}]
    assert await pool.fetchval("SELECT count(*) FROM gateway_clients WHERE tag = $1", tag) == 2999


async def test_a_running_job_shows_the_batches_committed_so_far(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    phone: Callable[..., str],
    locked_client: tuple[str, asyncio.Event],
) -> None:
    number, release = locked_client
    # A full first batch of new clients, then a second that updates the locked client.
    lines = [f"{phone()},a,UTC" for _ in range(BATCH_SIZE)] + [f"{number},new,UTC"]
    body = ("\n".join(lines) + "\n").encode()
    response = await client.post(URL, content=body, headers=ASYNC_CSV)
    location = response.headers["location"]

    running = await _job_until(client, location, lambda job: job["created"] == BATCH_SIZE)
    assert running["state"] == "running", running
    assert running["rows_read"] == BATCH_SIZE + 1
    assert running["finished_at"] is None
    # Still running (and alive) a few heartbeats later, with the same counts.
    await asyncio.sleep(1.5)
    later = (await client.get(location)).json()
    assert (later["state"], later["created"], later["updated"]) == ("running", BATCH_SIZE, 0)

    release.set()
    done = await _job_until(client, location, _finished)
    assert (done["state"], done["created"], done["updated"]) == ("succeeded", BATCH_SIZE, 1)


async def test_without_the_prefer_header_the_import_answers_when_done(
    client: httpx.AsyncClient, phone: Callable[..., str]
) -> None:
    response = await client.post(
        URL, content=f"{phone()},t,UTC\n".encode(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200
    assert "location" not in response.headers
    assert response.json() == {
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "errors": [],
    }


@pytest.mark.parametrize("prefer", ["respond-async", "wait=10, respond-async", "RESPOND-ASYNC"])
async def test_respond_async_is_found_among_other_preferences(
    client: httpx.AsyncClient, prefer: str, phone: Callable[..., str]
) -> None:
    response = await client.post(
        URL,
        content=f"{phone()},t,UTC\n".encode(),
        headers={"Content-Type": "text/csv", "Prefer": prefer},
    )
    assert response.status_code == 202


async def test_a_bad_media_type_is_refused_before_any_job(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, content=b"x", headers={"Content-Type": "text/plain", "Prefer": "respond-async"}
    )
    assert response.status_code == 415
    assert "text/csv" in response.json()["detail"]


@pytest.mark.parametrize("job_id", [str(uuid4()), "not-a-uuid", "1"])
async def test_unknown_jobs_are_404(client: httpx.AsyncClient, job_id: str) -> None:
    response = await client.get(f"{URL}/jobs/{job_id}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


async def test_jobs_need_the_api_key(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get(f"{URL}/jobs/{uuid4()}")).status_code == 401


async def test_a_job_whose_gateway_died_is_reported_failed(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    job_id = uuid4()
    await pool.execute(
        "INSERT INTO gateway_import_jobs (id, state, format, bytes_total, bytes_read, created, "
        "heartbeat_at) VALUES ($1, 'running', 'csv', 100, 40, 3, now() - interval '1 minute')",
        job_id,
    )
    job = (await client.get(f"{URL}/jobs/{job_id}")).json()
    assert (job["state"], job["error"], job["created"]) == ("failed", STOPPED_ERROR, 3)
    assert job["finished_at"] is not None


async def test_a_gateway_stopping_fails_its_running_jobs_keeping_their_counts(
    app: FastAPI,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    phone: Callable[..., str],
    locked_client: tuple[str, asyncio.Event],
) -> None:
    number, _ = locked_client
    jobs = ImportJobs(pool, ImportLimits(10**9, 10**7, 4), progress_every_s=0.05)
    lines = [f"{phone()},a,UTC" for _ in range(BATCH_SIZE)] + [f"{number},new,UTC"]

    async def body() -> AsyncIterator[bytes]:
        yield ("\n".join(lines) + "\n").encode()

    job = await jobs.start(body(), ImportFormat.CSV)
    url = f"{URL}/jobs/{job.id}"
    await _job_until(client, url, lambda j: j["created"] == BATCH_SIZE)

    await jobs.close()

    stopped = (await client.get(url)).json()
    assert (stopped["state"], stopped["error"]) == ("failed", STOPPED_ERROR)
    assert (stopped["created"], stopped["updated"]) == (BATCH_SIZE, 0)
