"""The service runtime, run as a real process: health endpoints, SIGTERM, crashed tasks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from sms_events.testing.environment import TestEnvironment as _Environment

from .eventlib_support import eventually

_SERVICE = """
import asyncio, sys
from sms_events.runtime import Runtime, run_service
from sms_events.settings import ServiceSettings

async def start(rt: Runtime) -> None:
    rt.spawn(rt.stop.wait(), "waiter")
    if sys.argv[2] == "crash":
        async def crash() -> None:
            raise RuntimeError("boom")
        rt.spawn(crash(), "crasher")

asyncio.run(run_service("runtime-test", ServiceSettings(), migrations="sms_events",
                        start=start, http_port=int(sys.argv[1])))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


StartService = Callable[[str], Awaitable[tuple[asyncio.subprocess.Process, int]]]


@pytest.fixture
async def service(test_env: _Environment) -> AsyncIterator[StartService]:
    started: list[asyncio.subprocess.Process] = []

    async def start(mode: str) -> tuple[asyncio.subprocess.Process, int]:
        port = _free_port()
        env = {
            **os.environ,
            **test_env.env_vars(),
            "RELAY_ENABLED": "false",  # the relay tests own the leader lock of this database
            "LOG_FORMAT": "json",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SERVICE,
            str(port),
            mode,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        started.append(proc)
        return proc, port

    yield start
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def _ready(port: int) -> bool:
    try:
        return (await _get(port, "/readyz"))[0] == 200
    except aiohttp.ClientError:
        return False


async def test_serves_health_and_stops_cleanly_on_sigterm(service: StartService) -> None:
    proc, port = await service("normal")

    await eventually(lambda: _ready(port), within=30, what="the service to be ready")
    status, body = await _get(port, "/readyz")
    assert (status, body) == (200, '{"database": true, "broker": true}')
    assert (await _get(port, "/healthz"))[0] == 200
    status, metrics = await _get(port, "/metrics")
    assert status == 200 and "sms_outbox_published_total" in metrics

    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)

    assert proc.returncode == 0
    assert b'"service_stopped"' in err


async def test_a_crashed_task_stops_the_service_with_an_error(
    service: StartService,
) -> None:
    proc, _port = await service("crash")

    _, err = await asyncio.wait_for(proc.communicate(), 30)

    assert proc.returncode != 0
    assert b'"task_failed"' in err and b"boom" in err
