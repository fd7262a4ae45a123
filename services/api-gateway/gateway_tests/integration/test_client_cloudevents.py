"""Another project, in its own process, receives client.created as a CloudEvent after a POST."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import httpx

from gateway import Settings, create_app
from sms_events.testing import environment

CONSUMER = Path(__file__).with_name("cloudevent_support.py")
KEY = f"ce-{uuid4().hex}"


@contextlib.asynccontextmanager
async def _own_environment() -> AsyncIterator[environment.TestEnvironment]:
    # A database of its own: the relay starts from an empty store instead of first publishing
    # everything the other tests appended.
    env = await asyncio.to_thread(environment.TestEnvironment.create, ["sms_events", "gateway"])
    try:
        yield env
    finally:
        await asyncio.to_thread(env.destroy)


@contextlib.asynccontextmanager
async def _consumer(
    env: environment.TestEnvironment, routing_key: str
) -> AsyncIterator[asyncio.StreamReader]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CONSUMER), env.amqp_url, env.amqp_exchange, routing_key,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
        yield proc.stdout
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_separate_consumer_receives_client_created_as_a_cloudevent() -> None:
    async with _own_environment() as env, _consumer(env, "client.created") as output:
        settings = Settings(
            database_url=env.database_url,
            amqp_url=env.amqp_url,
            amqp_exchange=env.amqp_exchange,
            amqp_queue_prefix=env.amqp_queue_prefix,
            api_keys=[KEY],
            relay_enabled=True,
            _env_file=None,
        )
        app = create_app(settings)
        request_id = f"ce-{uuid4().hex}"
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://testserver",
                headers={"Authorization": f"Bearer {KEY}"},
            ) as client,
        ):
            response = await client.post(
                "/api/v1/clients/",
                json={"phone": "+79161234567", "tag": "ce", "time_zone": "Europe/Moscow"},
                headers={"X-Request-ID": request_id},
            )
            assert response.status_code == 201
            line = await asyncio.wait_for(output.readline(), 30)
        created = response.json()

    event = json.loads(line)
    assert event["specversion"] == "1.0"
    assert UUID(event["id"])
    assert event["source"] == "/sms/api-gateway"
    assert event["type"] == "client.created"
    assert event["subject"] == f"client-{created['id']}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", event["time"])
    assert event["datacontenttype"] == "application/json"
    assert event["correlationid"] == request_id
    assert event["data"] == {
        "client_id": created["id"],
        "phone": "79161234567",
        "operator_code": "916",
        "tag": "ce",
        "time_zone": "Europe/Moscow",
        "updated_at": created["updated_at"],
    }
