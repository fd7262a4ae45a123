"""A forged ``mailing.scheduled`` on the real exchange sends nothing: the services' consumers
dead-letter what the relay did not sign, with the reason, and never handle it.

The forger publishes as a user allowed to (the broker user of the tests); the same forged event
signed with the platform's key is the control: it does mail the audience, so the forged ones
would have too."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from uuid import uuid4

import aio_pika
import httpx
from prometheus_client.parser import text_string_to_metric_families

from sms_events.consumer import DEAD_LETTER_REASON
from sms_events.contracts import MailingScheduled
from sms_events.envelope import Envelope
from sms_events.signing import SIGNATURE_HEADER, Signer
from sms_events.testing.environment import TEST_SIGNING_KEY
from tests.e2e.e2e_support import create_client, eventually, now, unique_tag
from tests.e2e.system_support import System

AUDIENCE = 3


def test_a_forged_mailing_scheduled_sends_nothing_and_is_dead_lettered(system: System) -> None:
    tag = unique_tag()
    with system.api() as api:
        for _ in range(AUDIENCE):
            create_client(api, tag=tag)
    unsigned, forged, control = (_forged(tag) for _ in range(3))
    wrong_key = Signer.of("a-key-the-platform-never-had-0123456789")

    asyncio.run(_publish(system, unsigned, None))
    asyncio.run(_publish(system, forged, wrong_key.sign(forged.to_json())))
    # Both reached the scheduler and the reporter, which refused them.
    eventually(lambda: _assert_dead_lettered(system, {"scheduler": 2, "reporter": 2}))
    for service in ("scheduler", "reporter"):
        reasons = asyncio.run(_dead_letter_reasons(system, service))
        assert reasons == {str(unsigned.id): "unsigned", str(forged.id): "bad signature"}

    asyncio.run(_publish(system, control, Signer.of(TEST_SIGNING_KEY).sign(control.to_json())))
    eventually(lambda: _assert_sent(system, AUDIENCE))
    with system.api() as api:
        for env in (unsigned, forged):
            assert api.get(f"/api/v1/mailings/{env.data['mailing_id']}/").status_code == 404
    assert _sent(system) == AUDIENCE  # the control's messages only


def _forged(tag: str) -> Envelope:
    at = now()
    event = MailingScheduled(
        mailing_id=random.randrange(10**9, 2 * 10**9),
        text="forged",
        datetime_start=at - timedelta(seconds=5),
        datetime_end=at + timedelta(hours=1),
        client_filter=tag,
        updated_at=at,
    )
    env = Envelope(
        id=uuid4(),
        type=event.event_type,
        subject=event.stream_id(),
        source="/sms/api-gateway",
        time=at,
        data=event.model_dump(mode="json"),
        sequence=1,
    )
    env.payload()  # a well-formed event: only its signature is wrong
    return env


async def _publish(system: System, env: Envelope, signature: str | None) -> None:
    connection = await aio_pika.connect(system.env.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(system.env.amqp_exchange, ensure=False)
        headers = {} if signature is None else {SIGNATURE_HEADER: signature}
        message = aio_pika.Message(
            env.to_json(), message_id=str(env.id), type=env.type, headers=headers
        )
        await exchange.publish(message, routing_key=env.type)
    finally:
        await connection.close()


async def _dead_letter_reasons(system: System, queue: str) -> dict[str, str]:
    connection = await aio_pika.connect(system.env.amqp_url)
    try:
        channel = await connection.channel()
        dlq = await channel.declare_queue(
            f"{system.env.amqp_queue_prefix}{queue}.dlq", passive=True
        )
        reasons = {}
        while (message := await dlq.get(no_ack=True, fail=False)) is not None:
            reasons[str(message.message_id)] = str(message.headers[DEAD_LETTER_REASON])
        return reasons
    finally:
        await connection.close()


def _assert_dead_lettered(system: System, expected: dict[str, int]) -> None:
    for service, n in expected.items():
        text = httpx.get(f"{system.url(service)}/metrics", timeout=10).text
        total = sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "sms_consumer_dead_lettered_total"
        )
        assert total == n, (service, total)


def _sent(system: System) -> int:
    with system.provider() as provider:
        return int(provider.get("/_inspect").json()["total_requests"])


def _assert_sent(system: System, n: int) -> None:
    assert _sent(system) >= n
