"""`python -m gateway` as a real process: migrations, uvicorn, lifespan, logs, clean shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from uuid import uuid4

import httpx

from sms_events.testing import environment
from sms_events.testing.processes import free_port


async def _wait_until_up(base: str, proc: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            assert proc.returncode is None, "the gateway exited during startup"
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the gateway did not come up")


async def test_gateway_process_serves_logs_and_stops_cleanly(
    test_env: environment.TestEnvironment, tmp_path: Path
) -> None:
    key = f"proc-{uuid4().hex}"
    port = free_port()
    env = {
        **os.environ,
        **test_env.env_vars(),
        "API_KEYS": f"other-key-{uuid4().hex}, {key}",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "LOG_FORMAT": "json",
        "RELAY_ENABLED": "false",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway",
        env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_until_up(base, proc)
        async with httpx.AsyncClient(base_url=base) as client:
            phone = f"7955{uuid4().int % 10**7:07d}"
            created = await client.post(
                "/api/v1/clients/",
                json={"phone": phone},
                headers={"Authorization": f"Bearer {key}", "X-Request-ID": "proc-1"},
            )
            assert created.status_code == 201
            assert created.headers["X-Request-ID"] == "proc-1"
            denied = await client.get("/api/v1/clients/", headers={"Authorization": "Bearer no"})
            assert denied.status_code == 401
            assert (await client.get("/readyz")).json() == {"database": True, "broker": True}
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully; the entrypoint then exits 0 (not by the signal).
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.stderr is not None
    stderr = (await proc.stderr.read()).decode()

    assert key not in stderr
    assert "Bearer" not in stderr
    assert phone not in stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "http_request"]
    post = next(line for line in requests if line["method"] == "POST")
    assert (post["path"], post["status"], post["request_id"]) == ("/api/v1/clients/", 201, "proc-1")
    assert post["client"] == "127.0.0.1"
    assert isinstance(post["duration_ms"], float)
    assert post["service"] == "api-gateway"
    events = [line.get("event") for line in lines]
    # Started, served, and went through the lifespan's shutdown (pool and broker closed).
    assert events.index("gateway_started") < events.index("http_request")
    assert "gateway_stopped" in events
