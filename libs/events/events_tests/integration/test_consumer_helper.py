"""The consumer helper: quorum queue with a dead-letter queue, batches, manual acks,
idempotent handling, and a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import asyncpg
import pytest
import structlog
from prometheus_client import REGISTRY
from pydantic import SecretStr
from structlog.testing import capture_logs

from sms_events.broker import Broker
from sms_events.consumer import DEAD_LETTER_REASON, BatchConsumer, DeliveryConsumer, QueueSpec
from sms_events.contracts import ClientDeleted
from sms_events.db import Connection, create_pool
from sms_events.envelope import Envelope
from sms_events.retrying import RetryPolicy
from sms_events.settings import ServiceSettings
from sms_events.signing import SIGNATURE_HEADER, Signer
from sms_events.store import Checkpoint, EventStore, append_new_streams
from sms_events.tracing import current_metadata
from tests.support.tcp_proxy import proxied_url

from .eventlib_support import TcpProxy, eventually, settings_via

pytestmark = pytest.mark.usefixtures("rows_table")

TWO_TRIES = RetryPolicy(attempts=2, base_s=0.1, cap_s=0.2)


@pytest.fixture(scope="module")
async def rows_table(pool: asyncpg.Pool) -> None:
    """The test handler's projection: one row per handled event, duplicates allowed, so a
    second handling of one event would show as a second row."""
    await pool.execute(
        """
        CREATE TABLE IF NOT EXISTS consumer_test_rows (
            consumer text NOT NULL,
            worker   text NOT NULL,
            event_id uuid NOT NULL,
            n        integer
        )
        """
    )


def _envelope(
    event_type: str,
    n: int = 0,
    event_id: UUID | None = None,
    *,
    age_s: float = 0.0,
    correlation_id: str | None = None,
) -> Envelope:
    return Envelope(
        id=event_id or uuid4(),
        type=event_type,
        subject=f"test-{n}",
        source="/sms/tests",
        time=datetime.now(UTC) - timedelta(seconds=age_s),
        data={"n": n},
        correlationid=correlation_id,
    )


@dataclass
class Recorder:
    """A batch handler writing to consumer_test_rows; can fail for chosen events or hold the
    first batch until released."""

    consumer: str
    worker: str = "w1"
    fail_on: set[UUID] = field(default_factory=set)
    hold: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    batches: list[list[UUID]] = field(default_factory=list)
    log_context: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, conn: Connection, envelopes: Sequence[Envelope]) -> None:
        self.batches.append([env.id for env in envelopes])
        self.log_context.append(structlog.contextvars.get_contextvars())
        await conn.executemany(
            "INSERT INTO consumer_test_rows (consumer, worker, event_id, n) VALUES ($1,$2,$3,$4)",
            [(self.consumer, self.worker, env.id, env.data.get("n")) for env in envelopes],
        )
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if bad := [env.id for env in envelopes if env.id in self.fail_on]:
            raise RuntimeError(f"handler cannot take {bad}")


@dataclass
class Setup:
    name: str
    routing_key: str
    broker: Broker
    pool: asyncpg.Pool

    @property
    def queue(self) -> str:
        return self.broker.settings.amqp_queue_prefix + self.name

    def consumer(self, handler: Recorder, broker: Broker | None = None, **kw: Any) -> BatchConsumer:
        spec = QueueSpec(name=self.name, routing_keys=[self.routing_key])
        return BatchConsumer(spec, self.pool, broker or self.broker, handler, **kw)

    def each(self, handler: Callable[[Envelope], Awaitable[None]], **kw: Any) -> DeliveryConsumer:
        spec = QueueSpec(name=self.name, routing_keys=[self.routing_key])
        return DeliveryConsumer(spec, self.broker, handler, **kw)

    async def publish(self, *envelopes: Envelope) -> None:
        await self.broker.publish(envelopes)

    async def publish_raw(self, body: bytes, signature: str | None = "sign") -> None:
        """``body`` as it is, signed with the broker's key unless ``signature`` says what
        to send instead (None: no signature header)."""
        if signature == "sign":
            signature = self.broker.signer.sign(body)
        headers = {} if signature is None else {SIGNATURE_HEADER: signature}
        exchange = await self.broker.exchange()
        await exchange.publish(
            aio_pika.Message(body, message_id=uuid4().hex, headers=headers),
            routing_key=self.routing_key,
        )

    async def rows(self) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT worker, event_id, n FROM consumer_test_rows WHERE consumer = $1", self.name
        )

    async def processed(self) -> int:
        return int(
            await self.pool.fetchval(
                "SELECT count(*) FROM processed_events WHERE consumer = $1", self.name
            )
        )

    async def ready_messages(self, queue: str | None = None) -> int:
        channel = await self.broker.channel()
        try:
            declared = await channel.declare_queue(queue or self.queue, passive=True)
            return int(declared.declaration_result.message_count or 0)
        finally:
            await channel.close()

    async def dead_letters(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        channel = await self.broker.channel()
        try:
            dlq = await channel.declare_queue(f"{self.queue}.dlq", passive=True)
            got = []
            while (message := await dlq.get(no_ack=True, fail=False)) is not None:
                got.append(message)
            return got
        finally:
            await channel.close()


@pytest.fixture
async def setup(broker: Broker, pool: asyncpg.Pool) -> AsyncIterator[Setup]:
    run = uuid4().hex[:12]
    # The event type is the routing key: unique per test so no other test's traffic arrives.
    made = Setup(
        name=f"consumer-{run}", routing_key=f"test.{run}.happened", broker=broker, pool=pool
    )
    yield made
    # Deleting over AMQP now is much quicker than rabbitmqctl at the end of the session.
    channel = await broker.channel()
    for queue in (made.queue, f"{made.queue}.dlq"):
        with contextlib.suppress(Exception):
            await channel.queue_delete(queue)
    with contextlib.suppress(Exception):
        await channel.close()


class Running:
    def __init__(self, consumer: BatchConsumer) -> None:
        self.consumer = consumer
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(consumer.run(self.stop))

    async def halt(self, within: float = 10) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, within)


@pytest.fixture
async def run() -> AsyncIterator[Callable[[BatchConsumer], Awaitable[Running]]]:
    running: list[Running] = []

    async def start(consumer: BatchConsumer) -> Running:
        await consumer.declare()
        r = Running(consumer)
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop.set()
    for r in running:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(r.task, 10)


async def test_declares_a_durable_quorum_queue_with_a_dead_letter_queue(setup: Setup) -> None:
    consumer = setup.consumer(Recorder(setup.name))
    queue = await consumer.declare()
    await setup.consumer(Recorder(setup.name)).declare()  # declaring again is harmless

    assert queue.name == setup.queue
    assert queue.durable
    assert await setup.ready_messages(f"{setup.queue}.dlq") == 0
    channel = await setup.broker.channel()
    # RabbitMQ refuses to redeclare it as anything but a quorum queue: proof of its type.
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
        await channel.declare_queue(
            setup.queue, durable=True, arguments={"x-queue-type": "classic"}
        )


async def test_handles_events_in_batches_and_acks_them(
    setup: Setup, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    recorder = Recorder(setup.name)
    consumer = setup.consumer(recorder, batch_size=50, batch_wait=0.05)
    await consumer.declare()
    envelopes = [_envelope(setup.routing_key, n) for n in range(20)]
    await setup.publish(*envelopes)

    running = await run(consumer)
    await eventually(lambda: _count(setup.rows, 20), what="20 handled events")
    await running.halt()

    assert sorted(r["n"] for r in await setup.rows()) == list(range(20))
    assert max(len(b) for b in recorder.batches) > 1
    assert await setup.processed() == 20
    assert await setup.ready_messages() == 0  # every delivery was acked


async def test_a_redelivered_event_changes_nothing(
    setup: Setup, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    consumer = setup.consumer(Recorder(setup.name))
    await consumer.declare()
    event = _envelope(setup.routing_key, 1)
    first_sentinel = _envelope(setup.routing_key, 2)
    await setup.publish(event, event, first_sentinel)  # the same CloudEvent twice in a batch

    running = await run(consumer)
    await eventually(lambda: _has(setup.rows, first_sentinel.id), what="the first sentinel")
    second_sentinel = _envelope(setup.routing_key, 3)
    await setup.publish(event, second_sentinel)  # and once more, in a later batch
    await eventually(lambda: _has(setup.rows, second_sentinel.id), what="the second sentinel")
    await running.halt()

    handled = [r["event_id"] for r in await setup.rows()]
    assert handled.count(event.id) == 1
    assert sorted(handled) == sorted([event.id, first_sentinel.id, second_sentinel.id])
    assert await setup.processed() == 3
    assert await setup.ready_messages() == 0


async def test_an_event_that_keeps_failing_goes_to_the_dlq_and_the_rest_are_handled(
    setup: Setup, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    envelopes = [_envelope(setup.routing_key, n) for n in range(5)]
    poison = envelopes[2]
    recorder = Recorder(setup.name, fail_on={poison.id})
    consumer = setup.consumer(recorder, batch_size=10, batch_wait=0.05, failures=TWO_TRIES)
    await consumer.declare()
    await setup.publish(*envelopes)

    running = await run(consumer)

    async def dead() -> list[Any]:
        return await setup.dead_letters()

    (dead_letter,) = await eventually(dead, what="the poison event in the DLQ")
    await eventually(lambda: _count(setup.rows, 4), what="the other four events")
    await running.halt()

    assert dead_letter.message_id == str(poison.id)
    assert Envelope.from_json(dead_letter.body).id == poison.id
    assert str(dead_letter.headers[DEAD_LETTER_REASON]).startswith("RuntimeError")
    handled = {r["event_id"] for r in await setup.rows()}
    assert handled == {e.id for e in envelopes} - {poison.id}
    assert await setup.processed() == 4  # the failed one is not marked processed
    assert await setup.ready_messages() == 0


async def test_an_unparseable_body_goes_to_the_dlq(
    setup: Setup, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    consumer = setup.consumer(Recorder(setup.name), batch_size=10, batch_wait=0.05)
    await consumer.declare()
    await setup.publish_raw(b"this is not json")
    await setup.publish_raw(b"[1, 2, 3]")
    await setup.publish_raw(b'{"specversion": "1.0", "id": "no uuid", "source": "s", "type": "t"}')
    good = _envelope(setup.routing_key)
    await setup.publish(good)

    running = await run(consumer)
    await eventually(lambda: _has(setup.rows, good.id), what="the good event")
    dead: list[Any] = []

    async def three_dead() -> bool:
        dead.extend(await setup.dead_letters())
        return len(dead) == 3

    await eventually(three_dead, what="three dead letters")
    await running.halt()

    assert sorted(m.body for m in dead) == sorted(
        [
            b"this is not json",
            b"[1, 2, 3]",
            b'{"specversion": "1.0", "id": "no uuid", "source": "s", "type": "t"}',
        ]
    )
    assert await setup.ready_messages() == 0


async def test_stop_finishes_the_batch_in_hand_and_hands_back_the_rest(
    setup: Setup, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    hold = asyncio.Event()
    first = Recorder(setup.name, worker="first", hold=hold)
    consumer = setup.consumer(first, batch_size=5, batch_wait=0.05)
    await consumer.declare()
    envelopes = [_envelope(setup.routing_key, n) for n in range(30)]
    await setup.publish(*envelopes)

    running = await run(consumer)
    await asyncio.wait_for(first.entered.wait(), 10)  # a batch is in the handler
    # Prefetch is two batches: the broker holds back everything past the first ten.
    await eventually(lambda: _ready_is(setup, 20), what="prefetch to cap the deliveries")
    running.stop.set()
    hold.set()  # the handler finishes; the consumer commits and acks it, then stops
    await asyncio.wait_for(running.task, 10)

    (in_flight,) = first.batches
    rows = await setup.rows()
    assert {r["event_id"] for r in rows} == set(in_flight)
    await eventually(
        lambda: _ready_is(setup, 30 - len(in_flight)), what="undelivered events back in the queue"
    )

    second = await run(setup.consumer(Recorder(setup.name, worker="second")))
    await eventually(lambda: _count(setup.rows, 30), what="the rest handled by the next one")
    await second.halt()

    rows = await setup.rows()
    assert sorted(r["n"] for r in rows) == list(range(30))  # each exactly once
    assert {r["event_id"] for r in rows if r["worker"] == "first"} == set(in_flight)


async def test_a_database_outage_delays_handling_but_loses_and_dead_letters_nothing(
    setup: Setup,
    settings: ServiceSettings,
    tcp_proxy: Callable[[int], Awaitable[TcpProxy]],
    run: Callable[[BatchConsumer], Awaitable[Running]],
) -> None:
    proxy = await tcp_proxy(settings.database_url)
    dsn = proxied_url(settings.database_url, proxy.port)
    flaky_pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        recorder = Recorder(setup.name)
        spec = QueueSpec(name=setup.name, routing_keys=[setup.routing_key])
        consumer = BatchConsumer(
            spec, flaky_pool, setup.broker, recorder, batch_wait=0.05, failures=TWO_TRIES
        )
        running = await run(consumer)
        before = _envelope(setup.routing_key, 1)
        await setup.publish(before)
        await eventually(lambda: _has(setup.rows, before.id), what="an event before the outage")

        with capture_logs() as logs:
            await proxy.close()
            during = [_envelope(setup.routing_key, n) for n in range(2, 6)]
            await setup.publish(*during)
            await eventually(
                lambda: any(e["event"] == "consumer_transient_error" for e in logs),
                what="the consumer to run into the missing database",
            )
            await proxy.open()

        await eventually(lambda: _count(setup.rows, 5), within=20, what="the events after it")
        await running.halt()
        assert await setup.dead_letters() == []
        assert sorted(r["n"] for r in await setup.rows()) == [1, 2, 3, 4, 5]
    finally:
        await flaky_pool.close()


async def test_a_consumer_survives_losing_its_broker_connection(
    setup: Setup,
    settings: ServiceSettings,
    tcp_proxy: Callable[[int], Awaitable[TcpProxy]],
    run: Callable[[BatchConsumer], Awaitable[Running]],
) -> None:
    proxy = await tcp_proxy(settings.amqp_url)
    flaky = Broker(settings_via(settings, proxy.port, reconnect_interval=0.2))
    await flaky.connect()
    try:
        hold = asyncio.Event()
        recorder = Recorder(setup.name, hold=hold)
        running = await run(setup.consumer(recorder, broker=flaky, batch_wait=0.05))
        first = _envelope(setup.routing_key, 1)
        await setup.publish(first)
        await asyncio.wait_for(recorder.entered.wait(), 10)

        await proxy.close()  # the delivery's channel dies while the handler still works on it
        await eventually(lambda: not flaky.connection.connected.is_set(), what="the loss")  # type: ignore[union-attr]
        with capture_logs() as logs:
            recorder.hold = None
            hold.set()  # the batch commits, but its ack has nowhere to go
            await eventually(
                lambda: any(e["event"] == "consumer_settle_failed" for e in logs),
                what="the ack to fail",
            )
        await proxy.open()

        later = _envelope(setup.routing_key, 2)
        await setup.publish(later)
        await eventually(lambda: _has(setup.rows, later.id), within=20, what="a later event")
        assert not running.task.done()
        await running.halt()
        # The first event was redelivered after the reconnect and filtered as processed.
        handled = [r["event_id"] for r in await setup.rows()]
        assert handled.count(first.id) == 1
        await eventually(lambda: _ready_is(setup, 0), what="no event left behind")
    finally:
        await flaky.close()


def _sample(name: str, consumer: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"consumer": consumer})


async def test_reports_its_queue_depth_and_no_lag_once_caught_up(
    setup: Setup, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    hold = asyncio.Event()
    recorder = Recorder(setup.name, hold=hold)
    consumer = setup.consumer(recorder, batch_size=5, batch_wait=0.05, prefetch=5)
    consumer.depth_interval = 0.05
    await consumer.declare()
    await setup.publish(*[_envelope(setup.routing_key, n, age_s=60) for n in range(20)])

    running = await run(consumer)
    await asyncio.wait_for(recorder.entered.wait(), 10)
    # Five in hand (the prefetch), fifteen waiting in the queue.
    await eventually(
        lambda: _sample("sms_consumer_queue_depth", setup.name) == 15, what="a depth of 15"
    )
    recorder.hold = None
    hold.set()
    await eventually(lambda: _count(setup.rows, 20), what="every event handled")
    await eventually(
        lambda: _sample("sms_consumer_queue_depth", setup.name) == 0, what="an empty queue"
    )
    await eventually(
        lambda: _sample("sms_consumer_lag_seconds", setup.name) == 0, what="no lag left"
    )
    await running.halt()

    assert _sample("sms_consumer_event_age_seconds_count", setup.name) == 20
    assert (_sample("sms_consumer_event_age_seconds_sum", setup.name) or 0) >= 20 * 60


async def test_lag_is_the_age_of_the_newest_event_handled(
    setup: Setup, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    recorder = Recorder(setup.name)
    consumer = setup.consumer(recorder, batch_size=10, batch_wait=0.2)
    consumer.depth_interval = 600  # one reading at the start, then none to reset the lag
    await consumer.declare()
    await setup.publish(
        _envelope(setup.routing_key, 1, age_s=120), _envelope(setup.routing_key, 2, age_s=30)
    )

    running = await run(consumer)
    await eventually(lambda: _count(setup.rows, 2), what="both events handled")
    await running.halt()

    assert 30 <= (_sample("sms_consumer_lag_seconds", setup.name) or 0) < 60


async def test_a_batch_is_logged_under_its_first_events_correlation_id(
    setup: Setup, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    recorder = Recorder(setup.name)
    consumer = setup.consumer(recorder, batch_size=10, batch_wait=0.2)
    await consumer.declare()
    await setup.publish(
        _envelope(setup.routing_key, 1, correlation_id="corr-batch"),
        _envelope(setup.routing_key, 2, correlation_id="corr-other"),
    )

    running = await run(consumer)
    await eventually(lambda: _count(setup.rows, 2), what="both events handled")
    await running.halt()

    first = recorder.log_context[0]
    assert first["correlation_id"] == "corr-batch"
    assert first["batch_events"] == len(recorder.batches[0])


async def test_a_delivery_consumer_handles_each_event_under_its_correlation_and_causation_ids(
    setup: Setup,
) -> None:
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def handler(env: Envelope) -> None:
        seen.append((current_metadata(), structlog.contextvars.get_contextvars()))

    consumer = setup.each(handler)
    await consumer.declare()
    event = _envelope(setup.routing_key, 1, age_s=45, correlation_id="corr-each")
    await setup.publish(event)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(lambda: seen, what="the event handled")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    ((metadata, context),) = seen
    assert metadata == {"correlation_id": "corr-each", "causation_id": str(event.id)}
    assert context["correlation_id"] == "corr-each"
    # Stopping drained the delivery: handled, acked and measured.
    assert _sample("sms_consumer_event_age_seconds_count", setup.name) == 1
    assert (_sample("sms_consumer_event_age_seconds_sum", setup.name) or 0) >= 45
    assert (_sample("sms_consumer_lag_seconds", setup.name) or 0) >= 45


async def test_a_batch_handler_may_append_events_in_the_consumers_transaction(
    setup: Setup, pool: asyncpg.Pool, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    client_id = uuid4().int % 10**12
    deleted = ClientDeleted(client_id=client_id, deleted_at=datetime(2025, 1, 15, tzinfo=UTC))
    recorder = Recorder(setup.name)

    async def project_and_append(conn: Connection, envelopes: Sequence[Envelope]) -> None:
        await recorder(conn, envelopes)
        await append_new_streams(conn, [deleted])  # refused unless the batch announced itself

    spec = QueueSpec(name=setup.name, routing_keys=[setup.routing_key])
    consumer = BatchConsumer(spec, pool, setup.broker, project_and_append)
    await consumer.declare()
    event = _envelope(setup.routing_key, 1)
    await setup.publish(event)
    running = await run(consumer)
    await eventually(lambda: _has(setup.rows, event.id), what="the handled event")
    await running.halt()

    stored = await EventStore(pool).read_stream(deleted.stream_id())
    assert [e.payload() for e in stored] == [deleted]


async def test_a_projection_only_consumer_does_not_hold_readers_back_mid_batch(
    setup: Setup, pool: asyncpg.Pool, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    store = EventStore(pool)
    hold = asyncio.Event()
    recorder = Recorder(setup.name, hold=hold)
    consumer = setup.consumer(recorder, appends=False)
    await consumer.declare()
    await setup.publish(_envelope(setup.routing_key, 1))
    running = await run(consumer)
    await asyncio.wait_for(recorder.entered.wait(), 20)  # the batch wrote rows, stays open
    try:
        events = await store.read_all(Checkpoint())
        after = events[-1].checkpoint if events else Checkpoint()
        stream = f"test-{uuid4().hex}"
        await store.append(stream, [ClientDeleted(client_id=1, deleted_at=datetime.now(UTC))])
        assert [e.stream_id for e in await store.read_all(after)] == [stream]
    finally:
        hold.set()
    await eventually(lambda: _processed_is(setup, 1), what="the batch committed")
    await running.halt()


async def _sleep_past_the_timeout(conn: Connection, cut_off_by: str) -> None:
    """A statement cut off by the pool's command timeout (0.3 s) or the server's own."""
    if cut_off_by == "statement_timeout":
        await conn.execute("SET statement_timeout = '50ms'")
    try:
        await conn.execute("SELECT pg_sleep(3)")
    finally:
        if cut_off_by == "statement_timeout":
            await conn.execute("RESET statement_timeout")


@pytest.mark.parametrize("cut_off_by", ["command_timeout", "statement_timeout"])
async def test_an_event_whose_statement_times_out_is_dead_lettered_not_waited_out(
    setup: Setup,
    settings: ServiceSettings,
    run: Callable[[BatchConsumer], Awaitable[Running]],
    cut_off_by: str,
) -> None:
    slow, fine = _envelope(setup.routing_key, 1), _envelope(setup.routing_key, 2)
    recorder = Recorder(setup.name)

    async def handler(conn: Connection, envelopes: Sequence[Envelope]) -> None:
        if any(env.id == slow.id for env in envelopes):
            await _sleep_past_the_timeout(conn, cut_off_by)
        await recorder(conn, envelopes)

    pool = await create_pool(settings.database_url, min_size=1, max_size=2, command_timeout=0.3)
    try:
        spec = QueueSpec(name=setup.name, routing_keys=[setup.routing_key])
        consumer = BatchConsumer(
            spec, pool, setup.broker, handler, batch_wait=0.05, failures=TWO_TRIES
        )
        running = await run(consumer)
        await setup.publish(slow, fine)
        (dead,) = await eventually(setup.dead_letters, within=20, what="the slow event dead")
        await eventually(lambda: _has(setup.rows, fine.id), what="the other event handled")
        await running.halt()
    finally:
        await pool.close()
    assert Envelope.from_json(dead.body).id == slow.id
    assert [r["event_id"] for r in await setup.rows()] == [fine.id]


@pytest.mark.parametrize("cut_off_by", ["command_timeout", "statement_timeout"])
async def test_a_delivery_consumer_dead_letters_an_event_whose_statement_times_out(
    setup: Setup, settings: ServiceSettings, cut_off_by: str
) -> None:
    slow, fine = _envelope(setup.routing_key, 1), _envelope(setup.routing_key, 2)
    handled: list[UUID] = []
    pool = await create_pool(settings.database_url, min_size=1, max_size=2, command_timeout=0.3)

    async def handler(env: Envelope) -> None:
        async with pool.acquire() as conn:
            if env.id == slow.id:
                await _sleep_past_the_timeout(conn, cut_off_by)
        handled.append(env.id)

    consumer = setup.each(handler, failures=TWO_TRIES)
    await consumer.declare()
    await setup.publish(slow, fine)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        (dead,) = await eventually(setup.dead_letters, within=20, what="the slow event dead")
        await eventually(lambda: handled, what="the other event handled")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await pool.close()
    assert Envelope.from_json(dead.body).id == slow.id
    assert handled == [fine.id]


async def _count(rows: Callable[[], Awaitable[list[asyncpg.Record]]], n: int) -> bool:
    return len(await rows()) >= n


async def _has(rows: Callable[[], Awaitable[list[asyncpg.Record]]], event_id: UUID) -> bool:
    return any(r["event_id"] == event_id for r in await rows())


async def _processed_is(setup: Setup, n: int) -> bool:
    return await setup.processed() == n


async def _ready_is(setup: Setup, n: int) -> bool:
    return await setup.ready_messages() == n


async def test_a_single_active_consumer_queue_feeds_one_consumer_in_order_and_fails_over(
    setup: Setup, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    spec = QueueSpec(name=setup.name, routing_keys=[setup.routing_key], single_active_consumer=True)
    first, second = Recorder(setup.name, worker="first"), Recorder(setup.name, worker="second")
    one = BatchConsumer(spec, setup.pool, setup.broker, first, batch_size=3, batch_wait=0.01)
    await one.declare()
    running_one = await run(one)
    running_two = await run(
        BatchConsumer(spec, setup.pool, setup.broker, second, batch_size=3, batch_wait=0.01)
    )
    published = [_envelope(setup.routing_key, n) for n in range(20)]
    await setup.publish(*published)
    await eventually(lambda: _count(setup.rows, 20), what="the first twenty handled")
    rows = await setup.rows()
    assert {r["worker"] for r in rows} == {"first"}  # the other stood by
    handled = [event_id for batch in first.batches for event_id in batch]
    assert handled == [env.id for env in published]  # in the order published
    await running_one.halt()  # the standby takes over
    await setup.publish(*[_envelope(setup.routing_key, n) for n in range(20, 25)])
    await eventually(lambda: _count(setup.rows, 25), what="the rest handled by the standby")
    await running_two.halt()
    rows = await setup.rows()
    assert sorted(r["n"] for r in rows if r["worker"] == "second") == list(range(20, 25))


@pytest.mark.parametrize("mode", ["batches", "each"])
async def test_an_unsigned_or_forged_event_is_dead_lettered_with_the_reason_never_handled(
    setup: Setup, settings: ServiceSettings, mode: str
) -> None:
    unsigned, forged, signed = (_envelope(setup.routing_key, n) for n in range(3))
    other_key = Signer.of("another-platform-s-key-0123456789abcdef")
    recorder = Recorder(setup.name)
    handled: list[UUID] = []

    async def each(env: Envelope) -> None:
        handled.append(env.id)

    consumer: BatchConsumer | DeliveryConsumer = (
        setup.consumer(recorder, batch_size=10, batch_wait=0.05)
        if mode == "batches"
        else setup.each(each)
    )
    await consumer.declare()
    await setup.publish_raw(unsigned.to_json(), signature=None)
    await setup.publish_raw(forged.to_json(), signature=other_key.sign(forged.to_json()))
    tampered = signed.to_json()
    await setup.publish_raw(
        tampered.replace(b'"n":2', b'"n":9'), signature=setup.broker.signer.sign(tampered)
    )
    await setup.publish(signed)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    dead: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def three_dead() -> bool:
        dead.extend(await setup.dead_letters())
        return len(dead) >= 3

    try:
        await eventually(three_dead, what="three dead letters")
        await eventually(
            lambda: _has(setup.rows, signed.id) if mode == "batches" else _listed(handled),
            what="the signed event handled",
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    reasons = sorted(str(m.headers[DEAD_LETTER_REASON]) for m in dead)
    assert reasons == ["bad signature", "bad signature", "unsigned"]
    if mode == "batches":
        assert [r["event_id"] for r in await setup.rows()] == [signed.id]
    else:
        assert handled == [signed.id]


async def test_a_key_being_rotated_out_still_verifies(
    setup: Setup, settings: ServiceSettings, run: Callable[[BatchConsumer], Awaitable[Running]]
) -> None:
    old_key = "the-key-being-rotated-out-0123456789abcdef"
    rotated = settings.model_copy(update={"event_signing_keys_previous": [SecretStr(old_key)]})
    broker = Broker(rotated)
    await broker.connect()
    try:
        event = _envelope(setup.routing_key)
        consumer = setup.consumer(Recorder(setup.name), broker=broker)
        await consumer.declare()
        await setup.publish_raw(event.to_json(), signature=Signer.of(old_key).sign(event.to_json()))
        await run(consumer)
        await eventually(lambda: _has(setup.rows, event.id), what="the event signed by the old key")
        assert await setup.dead_letters() == []
    finally:
        await broker.close()


async def _listed(handled: list[UUID]) -> bool:
    return bool(handled)
