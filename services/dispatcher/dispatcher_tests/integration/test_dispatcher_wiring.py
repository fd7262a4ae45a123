"""The dispatcher as ``start`` wires it, on the real broker: a pause and an opt-out published
as events reach its projections queue and stop the calls of due messages published after."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from dispatcher.config import Settings
from dispatcher.consumer import start
from dispatcher.holds import hold_of
from dispatcher.opt_outs import opted_out_among
from fake_provider import RunningProvider
from sms_events.broker import Broker
from sms_events.contracts import OPTED_OUT, MailingPaused, OptOutRecorded
from sms_events.runtime import Runtime
from sms_events.settings import ServiceSettings
from sms_events.testing.factories import envelope_for

from .dispatch_support import TOKEN, due_messages, eventually, new_phone, outcomes_of


@pytest.fixture
async def running(
    settings: ServiceSettings, pool: asyncpg.Pool, broker: Broker, provider: RunningProvider
) -> AsyncIterator[Runtime]:
    config = Settings(
        **settings.model_dump(), sms_api_url=provider.url, sms_api_token=TOKEN, _env_file=None
    )
    rt = Runtime("dispatcher", config, pool, broker, asyncio.Event())
    await start(rt)
    yield rt
    rt.stop.set()
    await asyncio.wait_for(asyncio.gather(*rt.tasks), 30)
    assert not rt.failed


async def test_a_published_pause_and_opt_out_stop_the_calls(
    pool: asyncpg.Pool, broker: Broker, provider: RunningProvider, running: Runtime
) -> None:
    paused_batch, paused_ids = due_messages(n=2)
    phone = new_phone()
    mixed, mixed_ids = due_messages(n=2, phones=[phone, new_phone()])
    now = datetime.now(UTC)
    recorded = OptOutRecorded(phone=phone, source="inbound", opted_out_at=now)
    await broker.publish(
        [
            envelope_for(MailingPaused(mailing_id=paused_batch.mailing_id, paused_at=now)),
            envelope_for(recorded, sequence=random.randint(1, 1000)),
        ]
    )

    async def applied() -> bool:
        async with pool.acquire() as conn:
            held = await hold_of(conn, paused_batch.mailing_id)
        return held == "paused" and await opted_out_among(pool, [phone]) == {phone}

    await eventually(applied, what="the pause and the opt-out to reach the projections")
    await broker.publish([envelope_for(paused_batch), envelope_for(mixed)])

    async def settled() -> bool:
        paused = await outcomes_of(pool, paused_batch.mailing_id)
        other = await outcomes_of(pool, mixed.mailing_id)
        return len(paused.get("messages.attempt_failed", [])) == 2 and len(other) == 2

    await eventually(settled, what="both batches to be handled")
    paused = (await outcomes_of(pool, paused_batch.mailing_id))["messages.attempt_failed"]
    assert {m["error"] for m in paused} == {"mailing paused"}
    results = await outcomes_of(pool, mixed.mailing_id)
    assert [m["message_id"] for m in results["messages.attempt_failed"]] == [mixed_ids[0]]
    assert results["messages.attempt_failed"][0]["error"] == OPTED_OUT
    assert [m["message_id"] for m in results["messages.delivered"]] == [mixed_ids[1]]
    calls = {m: provider.provider.journal.message(m)["count"] for m in paused_ids + mixed_ids}
    assert calls == {m: int(m == mixed_ids[1]) for m in calls}
