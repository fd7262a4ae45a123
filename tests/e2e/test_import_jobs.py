"""Import jobs across a gateway stop, with the real processes: a SIGTERM fails the running job
at once, a kill -9 leaves it to be reported failed once its heartbeat is stale; either way the
batches committed before stay, and importing the same file again completes it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from gateway.clients.import_jobs import STALE_AFTER_S, STOPPED_ERROR
from gateway.clients.importer import BATCH_SIZE
from tests.e2e.e2e_support import eventually
from tests.e2e.system_support import System

URL = "/api/v1/clients/import"


@contextlib.contextmanager
def _row_held(system: System, phone: str) -> Iterator[None]:
    """The client's row locked by another transaction: an import updating it waits there."""
    with psycopg.connect(system.env.database_url) as conn:
        conn.execute("SELECT 1 FROM gateway_clients WHERE phone = %s FOR UPDATE", (phone,))
        yield
        conn.rollback()


def _file(first: int, held: str) -> bytes:
    # A full first batch of new clients, then one row updating the held client.
    rows = [f"7{first + i:010d},jobs,UTC" for i in range(BATCH_SIZE)] + [f"{held},moved,UTC"]
    return ("\n".join(rows) + "\n").encode()


def _started_part_way(api: httpx.Client, body: bytes) -> str:
    response = api.post(
        URL, content=body, headers={"Content-Type": "text/csv", "Prefer": "respond-async"}
    )
    assert response.status_code == 202, response.text
    url: str = response.headers["location"]

    def first_batch_committed() -> None:
        job = api.get(url).json()
        assert (job["state"], job["created"]) == ("running", BATCH_SIZE), job

    eventually(first_batch_committed, timeout=60, every=0.1)
    return url


@pytest.mark.parametrize(("stop", "first"), [("sigterm", 9_300_000_000), ("kill9", 9_310_000_000)])
def test_a_job_whose_gateway_stops_is_failed_and_a_second_import_completes_it(
    system: System, stop: str, first: int
) -> None:
    held = f"7{first - 1:010d}"
    with system.api() as api:
        assert api.post("/api/v1/clients/", json={"phone": held}).status_code == 201
        body = _file(first, held)
        with _row_held(system, held):
            url = _started_part_way(api, body)
            if stop == "sigterm":
                assert system.group.stop("api-gateway", timeout=60) == 0
            else:
                system.group.kill9("api-gateway")
                stopped_at = time.monotonic()
        system.start("api-gateway")

        if stop == "sigterm":
            job: dict[str, Any] = api.get(url).json()  # failed on the way out
        else:
            # Nobody marked it: it reads as running until its heartbeat is stale.
            assert api.get(url).json()["state"] == "running"
            time.sleep(max(0.0, STALE_AFTER_S + 1 - (time.monotonic() - stopped_at)))
            job = api.get(url).json()
        assert (job["state"], job["error"]) == ("failed", STOPPED_ERROR), job
        assert (job["created"], job["updated"]) == (BATCH_SIZE, 0)
        assert job["finished_at"] is not None

        again = api.post(URL, content=body, headers={"Content-Type": "text/csv"}).json()
        assert (again["created"], again["updated"], again["unchanged"]) == (0, 1, BATCH_SIZE)
