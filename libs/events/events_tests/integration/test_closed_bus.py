"""A closed bus, on the real broker's permissions: a reader publishes nothing; a service user
can publish, but what the relay did not sign is dead-lettered, never handled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import aio_pika.exceptions
import asyncpg
import pytest

from sms_events.broker import Broker
from sms_events.broker_users import (
    RabbitmqCtl,
    User,
    definitions,
    rabbitmqctl_script,
    reader_permissions,
    reader_queue_prefix,
    service_permissions,
    url_with_user,
)
from sms_events.consumer import DEAD_LETTER_REASON, BatchConsumer, QueueSpec
from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.settings import ServiceSettings
from sms_events.signing import SIGNATURE_HEADER, Signer

from .eventlib_support import eventually

pytestmark = pytest.mark.skipif(
    shutil.which("rabbitmqctl") is None,
    reason="needs rabbitmqctl (the broker on this machine) to create users with permissions",
)


@pytest.fixture
def ctl() -> Iterator[tuple[RabbitmqCtl, list[str]]]:
    """rabbitmqctl, and the users a test put (deleted after it)."""
    made: list[str] = []
    runner = RabbitmqCtl()
    yield runner, made
    for name in made:
        runner.delete_user(name)


def _put(ctl: tuple[RabbitmqCtl, list[str]], user: User) -> None:
    ctl[0].put_user(user)
    ctl[1].append(user.name)


def _scheduled(event_id: UUID | None = None) -> Envelope:
    return Envelope(
        id=event_id or uuid4(),
        type="mailing.scheduled",
        subject=f"mailing-{uuid4()}",
        source="/sms/api-gateway",
        time=datetime.now(UTC),
        data={"text": "forged", "client_filter": {}},
    )


@pytest.fixture
async def platform_queue(broker: Broker) -> AsyncIterator[str]:
    """A queue of the platform's, bound to every event type (a publish that got through
    would land here)."""
    name = f"{broker.settings.amqp_queue_prefix}watch-{uuid4().hex[:8]}"
    channel = await broker.channel()
    queue = await channel.declare_queue(name, auto_delete=True)
    await queue.bind(await broker.exchange(), routing_key="#")
    yield name
    with contextlib.suppress(Exception):
        await channel.close()


async def test_a_reader_binds_its_own_queue_and_receives_events_but_cannot_publish(
    settings: ServiceSettings,
    broker: Broker,
    platform_queue: str,
    ctl: tuple[RabbitmqCtl, list[str]],
) -> None:
    name = f"reader-{uuid4().hex[:8]}"
    password = secrets.token_urlsafe(16)
    _put(ctl, User(name, password, reader_permissions(name, settings.amqp_exchange)))
    connection = await aio_pika.connect(url_with_user(settings.amqp_url, name, password))
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{reader_queue_prefix(name)}q", auto_delete=True)
        exchange = await channel.get_exchange(settings.amqp_exchange, ensure=False)
        await queue.bind(exchange, routing_key="mailing.*")
        genuine = _scheduled()
        await broker.publish([genuine])
        received = await _next(queue)
        assert Envelope.from_json(received.body).id == genuine.id
        await received.ack()

        refusals = [
            await _refused(connection, _publish_to(settings.amqp_exchange)),
            # No side doors: a queue dead-lettering, or an exchange falling back, into it.
            await _refused(connection, _dead_letter_queue(name, settings.amqp_exchange)),
            await _refused(connection, _alternate_exchange(name, settings.amqp_exchange)),
            # Nor a queue of the platform's.
            await _refused(connection, _declare(f"{settings.amqp_queue_prefix}scheduler")),
        ]
    finally:
        await connection.close()
    assert all("ACCESS_REFUSED" in refusal for refusal in refusals), refusals
    assert await _messages(broker, platform_queue) == [genuine.id]


async def test_a_service_user_publishes_a_forged_event_and_the_consumer_dead_letters_it(
    settings: ServiceSettings,
    pool: asyncpg.Pool,
    ctl: tuple[RabbitmqCtl, list[str]],
) -> None:
    name = f"svc-{uuid4().hex[:8]}"
    queue = f"closed-bus-{uuid4().hex[:8]}"
    password = secrets.token_urlsafe(16)
    permissions = service_permissions([queue], settings.amqp_exchange, settings.amqp_queue_prefix)
    _put(ctl, User(name, password, permissions))
    as_service = settings.model_copy(
        update={"amqp_url": url_with_user(settings.amqp_url, name, password)}
    )
    broker = Broker(as_service)
    await broker.connect()
    handled: list[UUID] = []

    async def handler(_: Connection, envelopes: Sequence[Envelope]) -> None:
        handled.extend(env.id for env in envelopes)

    # The service user's own queue, its dead-letter queue and exchange: enough to consume.
    consumer = BatchConsumer(QueueSpec(queue, ["mailing.scheduled"]), pool, broker, handler)
    await consumer.declare()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        exchange = await broker.exchange()
        unsigned, forged, genuine = _scheduled(), _scheduled(), _scheduled()
        await exchange.publish(_message(unsigned), routing_key=unsigned.type)
        wrong_key = Signer.of("a-key-the-platform-never-had-0123456789").sign(forged.to_json())
        await exchange.publish(_message(forged, wrong_key), routing_key=forged.type)
        await broker.publish([genuine])  # as the relay does: signed
        await eventually(lambda: genuine.id in handled, what="the signed event handled")
        dead = await eventually(
            lambda: _dead_letters(broker, f"{consumer.queue_name}.dlq", 2),
            what="both forged events dead-lettered",
        )
        # A service may still not touch another service's queues.
        refusal = await _refused(broker.connection, _declare(f"{settings.amqp_queue_prefix}rep"))
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await _delete(broker, consumer.queue_name)
        await broker.close()
    assert handled == [genuine.id]
    assert {(UUID(m.message_id or ""), m.headers[DEAD_LETTER_REASON]) for m in dead} == {
        (unsigned.id, "unsigned"),
        (forged.id, "bad signature"),
    }
    assert "ACCESS_REFUSED" in refusal


def _message(env: Envelope, signature: str | None = None) -> aio_pika.Message:
    headers = {} if signature is None else {SIGNATURE_HEADER: signature}
    return aio_pika.Message(env.to_json(), message_id=str(env.id), type=env.type, headers=headers)


Attempt = Callable[[aio_pika.abc.AbstractChannel], Awaitable[None]]


async def _refused(connection: aio_pika.abc.AbstractConnection | None, attempt: Attempt) -> str:
    """The error the broker answered ``attempt`` with on a fresh channel ('' if it let it)."""
    assert connection is not None
    channel = await connection.channel(publisher_confirms=True)
    try:
        await attempt(channel)
    except aio_pika.exceptions.ChannelClosed as exc:
        return str(exc)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return ""


def _publish_to(exchange_name: str) -> Attempt:
    async def attempt(channel: aio_pika.abc.AbstractChannel) -> None:
        exchange = await channel.get_exchange(exchange_name, ensure=False)
        await exchange.publish(_message(_scheduled()), routing_key="mailing.scheduled")

    return attempt


def _dead_letter_queue(reader: str, exchange: str) -> Attempt:
    async def attempt(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.declare_queue(
            f"{reader_queue_prefix(reader)}dl",
            auto_delete=True,
            arguments={"x-dead-letter-exchange": exchange},
        )

    return attempt


def _alternate_exchange(reader: str, exchange: str) -> Attempt:
    async def attempt(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.declare_exchange(
            f"{reader_queue_prefix(reader)}x",
            aio_pika.ExchangeType.FANOUT,
            auto_delete=True,
            arguments={"alternate-exchange": exchange},
        )

    return attempt


def _declare(queue: str) -> Attempt:
    async def attempt(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.declare_queue(queue, durable=True)

    return attempt


async def _next(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    async def got() -> aio_pika.abc.AbstractIncomingMessage | None:
        return await queue.get(fail=False)

    message: aio_pika.abc.AbstractIncomingMessage = await eventually(got, what="the event")
    return message


async def _messages(broker: Broker, queue: str) -> list[UUID]:
    """Every event waiting in ``queue`` (taken off it)."""
    channel = await broker.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        ids = []
        while (message := await declared.get(no_ack=True, fail=False)) is not None:
            ids.append(Envelope.from_json(message.body).id)
        return ids
    finally:
        await channel.close()


async def _dead_letters(
    broker: Broker, dlq: str, n: int
) -> list[aio_pika.abc.AbstractIncomingMessage] | None:
    channel = await broker.channel()
    try:
        declared = await channel.declare_queue(dlq, passive=True)
        if (declared.declaration_result.message_count or 0) < n:
            return None
        return [m for _ in range(n) if (m := await declared.get(no_ack=True, fail=False))]
    finally:
        await channel.close()


async def _delete(broker: Broker, queue: str) -> None:
    channel = await broker.channel()
    for name in (queue, f"{queue}.dlq"):
        with contextlib.suppress(Exception):
            await channel.queue_delete(name)
    with contextlib.suppress(Exception):
        await channel.close()


async def test_a_definitions_file_puts_users_the_broker_accepts(
    settings: ServiceSettings, ctl: tuple[RabbitmqCtl, list[str]]
) -> None:
    # What compose and Kubernetes load at boot: the hashes must be RabbitMQ's own scheme.
    name, password = f"defs-{uuid4().hex[:8]}", secrets.token_urlsafe(16)
    permissions = service_permissions(["reporter"], settings.amqp_exchange)
    ctl[1].append(name)
    await asyncio.to_thread(_import, definitions([User(name, password, permissions)]))
    url = url_with_user(settings.amqp_url, name, password)
    connection = await eventually(lambda: _connect(url), what="the imported user logs in")
    try:
        refusal = await _refused(connection, _declare(f"{uuid4().hex}.not-mine"))
    finally:
        await connection.close()
    assert "ACCESS_REFUSED" in refusal  # and its permissions came with it


async def _connect(url: str) -> aio_pika.abc.AbstractConnection | None:
    try:
        return await aio_pika.connect(url)
    except aio_pika.exceptions.ProbableAuthenticationError:
        return None


def _import(document: dict[str, Any]) -> None:
    # The broker itself reads the file (as its own user), and imports it in the background:
    # the caller waits for the user to appear.
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = Path(folder, "definitions.json")
        path.write_text(json.dumps(document))
        path.chmod(0o644)
        subprocess.run(["rabbitmqctl", "-q", "import_definitions", str(path)], check=True)


def test_the_printed_reader_script_puts_the_same_user(
    settings: ServiceSettings, ctl: tuple[RabbitmqCtl, list[str]]
) -> None:
    # For compose and Kubernetes, where rabbitmqctl is only in the broker's container.
    name, password = f"script-{uuid4().hex[:8]}", "url-safe_pass.word~0"
    reader = User(name, password, reader_permissions(name, settings.amqp_exchange))
    ctl[1].append(name)
    for _ in range(2):  # a second run changes the password of the user the first one added
        subprocess.run(["sh", "-e"], input=rabbitmqctl_script(reader), text=True, check=True)
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_user_permissions", name],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    subprocess.run(["rabbitmqctl", "-q", "authenticate_user", name, password], check=True)
    assert reader.permissions.write in listed
