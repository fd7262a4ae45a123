"""The outbox relay: every committed event reaches RabbitMQ, through broker outages, never one
from a rolled-back transaction, with one leading relay per database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import pytest
from prometheus_client import REGISTRY

from sms_events.broker import Broker, envelope_of
from sms_events.contracts import ClientDeleted
from sms_events.feed import cursor_of, read_page
from sms_events.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE
from sms_events.relay import OutboxRelay
from sms_events.settings import ServiceSettings
from sms_events.store import EventStore, NewEvent, appending
from sms_events.testing.environment import TestEnvironment
from sms_events.testing.held import scratch_database, write_held_open

from .eventlib_support import Observer, TcpProxy, eventually, settings_via


def _stream() -> str:
    return f"test-{uuid4().hex}"


def _new(n: int = 1) -> NewEvent:
    return NewEvent(ClientDeleted(client_id=n, deleted_at=datetime(2025, 1, 15, tzinfo=UTC)))


class _RollBack(Exception):
    """Raised inside ``appending`` to roll its transaction back."""


class RunningRelay:
    def __init__(self, relay: OutboxRelay) -> None:
        self.relay = relay
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(relay.run(self.stop))

    async def halt(self, within: float = 10) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, within)


StartRelay = Callable[[Broker], Awaitable[RunningRelay]]


@pytest.fixture
async def start_relay(pool: asyncpg.Pool) -> AsyncIterator[StartRelay]:
    running: list[RunningRelay] = []

    async def start(broker: Broker) -> RunningRelay:
        relay = RunningRelay(OutboxRelay(pool, broker, source="/sms/tests", poll_interval=0.1))
        running.append(relay)
        return relay

    yield start
    for relay in running:
        relay.stop.set()
    for relay in running:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay.task, 10)


async def test_every_appended_event_is_published_once_in_stream_order(
    store: EventStore, broker: Broker, observer: Observer, start_relay: StartRelay
) -> None:
    streams = [_stream() for _ in range(3)]
    events = {s: [_new(n) for n in range(4)] for s in streams}
    relay = await start_relay(broker)
    for n in range(4):
        for stream in streams:
            await store.append(stream, [events[stream][n]])
    ids = [e.event_id for batch in events.values() for e in batch]

    await eventually(lambda: observer.has(*ids), what="every event on the exchange")

    assert all(observer.count(i) == 1 for i in ids)
    for stream in streams:
        published = [env for env in observer.received if env.subject == stream]
        assert [env.id for env in published] == [e.event_id for e in events[stream]]
        assert [env.sequence for env in published] == [1, 2, 3, 4]
        assert all(env.type == "client.deleted" and env.source == "/sms/tests" for env in published)
    assert relay.relay.is_leader


async def test_each_published_envelope_carries_its_cursor_and_is_the_feeds_envelope(
    store: EventStore, pool: asyncpg.Pool, broker: Broker, observer: Observer,
    start_relay: StartRelay,
) -> None:  # fmt: skip
    marker = _stream()
    await store.append(marker, [_new()])
    (start,) = await store.read_stream(marker)
    streams = [_stream() for _ in range(3)]
    for n, stream in enumerate(streams):
        await store.append(stream, [_new(n), _new(n)])  # two events in one transaction
    recorded = [e for s in streams for e in await store.read_stream(s)]
    await start_relay(broker)

    await eventually(lambda: observer.has(*(e.event_id for e in recorded)), what="the events")

    published = {env.id: env for env in observer.received}
    assert [published[e.event_id].cursor for e in recorded] == [
        cursor_of(e.checkpoint) for e in recorded
    ]
    feed = await read_page(pool, start.checkpoint, limit=100)
    assert [e.event_id for e in feed.events] == [e.event_id for e in recorded]
    assert [envelope_of(e, "/sms/tests") for e in feed.events] == [
        published[e.event_id] for e in recorded
    ]
    assert [published[e.event_id].cursor for e in recorded] == sorted(
        published[e.event_id].cursor or "" for e in recorded
    )


async def test_an_event_appended_while_rabbitmq_is_unreachable_is_published_when_it_is_back(
    store: EventStore,
    settings: ServiceSettings,
    observer: Observer,
    start_relay: StartRelay,
    tcp_proxy: Callable[[int], Awaitable[TcpProxy]],
) -> None:
    proxy = await tcp_proxy(settings.amqp_url)
    broker = Broker(settings_via(settings, proxy.port, reconnect_interval=0.2))
    await broker.connect()
    try:
        relay = await start_relay(broker)
        before = _new(1)
        await store.append(_stream(), [before])
        await eventually(lambda: observer.has(before.event_id), what="the first event")

        await proxy.close()  # RabbitMQ is unreachable from the relay's point of view
        failures = _publish_failures()
        during = _new(2)
        await store.append(_stream(), [during])
        await eventually(
            lambda: _publish_failures() > failures, what="the relay to fail to publish"
        )
        assert not observer.has(during.event_id)

        await proxy.open()
        await eventually(
            lambda: observer.has(during.event_id), within=20, what="the event after recovery"
        )

        # And the relay keeps working on the recovered connection.
        after = _new(3)
        await store.append(_stream(), [after])
        await eventually(lambda: observer.has(after.event_id), what="an event after recovery")
        await relay.halt()
    finally:
        await broker.close()


async def test_a_publish_into_a_silent_network_partition_times_out_and_is_retried(
    store: EventStore,
    settings: ServiceSettings,
    observer: Observer,
    start_relay: StartRelay,
    tcp_proxy: Callable[[int], Awaitable[TcpProxy]],
) -> None:
    proxy = await tcp_proxy(settings.amqp_url)
    broker = Broker(settings_via(settings, proxy.port, reconnect_interval=0.2), publish_timeout=0.5)
    await broker.connect()
    try:
        relay = await start_relay(broker)
        await eventually(lambda: relay.relay.is_leader, what="the relay to lead")
        proxy.freeze()  # packets vanish: no reset, no confirm, the socket looks alive
        failures = _publish_failures()
        event = _new()
        await store.append(_stream(), [event])

        await eventually(lambda: _publish_failures() > failures, what="the publish to time out")
        assert not observer.has(event.event_id)

        # The partition ends the way they do: the dead connection is dropped, a new one made.
        await proxy.close()
        await proxy.open()
        await eventually(lambda: observer.has(event.event_id), within=20, what="the retry")
        await relay.halt()
    finally:
        await broker.close()


async def test_the_relay_stops_promptly_while_rabbitmq_is_unreachable(
    store: EventStore,
    settings: ServiceSettings,
    observer: Observer,
    start_relay: StartRelay,
    tcp_proxy: Callable[[int], Awaitable[TcpProxy]],
) -> None:
    proxy = await tcp_proxy(settings.amqp_url)
    broker = Broker(settings_via(settings, proxy.port, reconnect_interval=0.2))
    await broker.connect()
    try:
        relay = await start_relay(broker)
        await eventually(lambda: relay.relay.is_leader, what="the relay to lead")
        await proxy.close()
        failures = _publish_failures()
        await store.append(_stream(), [_new()])
        await eventually(lambda: _publish_failures() > failures, what="a failed publish")

        await relay.halt(within=5)  # backing off between retries, it still hears the stop
    finally:
        await broker.close()


async def test_no_event_from_a_rolled_back_transaction_is_ever_published(
    store: EventStore,
    pool: asyncpg.Pool,
    broker: Broker,
    observer: Observer,
    start_relay: StartRelay,
) -> None:
    await start_relay(broker)
    rolled_back = [_new(1), _new(2)]
    async with pool.acquire() as conn:
        with pytest.raises(_RollBack):
            async with appending(conn):
                await store.append(_stream(), rolled_back, conn=conn)
                raise _RollBack
    committed = _new(3)
    await store.append(_stream(), [committed])

    # The relay publishes in (transaction id, position) order, so once the later commit is
    # out, anything from the earlier transaction would have gone out before it.
    await eventually(lambda: observer.has(committed.event_id), what="the committed event")
    assert not {e.event_id for e in rolled_back} & set(observer.ids())


async def test_writes_open_elsewhere_do_not_hold_the_relay_back(
    store: EventStore,
    broker: Broker,
    observer: Observer,
    start_relay: StartRelay,
    test_env: TestEnvironment,
) -> None:
    await start_relay(broker)
    with (
        scratch_database(test_env.admin_url) as elsewhere,
        write_held_open(elsewhere),  # another database of the cluster
        write_held_open(test_env.database_url),  # this database, no event table
    ):
        event = _new()
        await store.append(_stream(), [event])
        # Within the relay's usual latency, though both writes stay open for the whole wait.
        await eventually(lambda: observer.has(event.event_id), within=5, what="the event")


async def test_an_open_appender_holds_the_relay_back_and_the_gauges_show_what_waits(
    store: EventStore,
    pool: asyncpg.Pool,
    broker: Broker,
    observer: Observer,
    start_relay: StartRelay,
) -> None:
    relay = await start_relay(broker)
    await eventually(lambda: relay.relay.is_leader, what="the relay to lead")
    held_event, behind = _new(1), [_new(n) for n in (2, 3, 4)]
    async with pool.acquire() as conn:
        held = contextlib.AsyncExitStack()
        await held.enter_async_context(appending(conn))
        await store.append(_stream(), [held_event], conn=conn)  # the older transaction id
        for event in behind:
            await store.append(_stream(), [event])  # committed, behind the open appender

        def waiting() -> bool:
            backlog = _gauge("sms_outbox_backlog") or 0
            age = _gauge("sms_outbox_oldest_unpublished_age_seconds") or 0
            return backlog >= 1 and age > 0

        await eventually(waiting, within=10, what="the gauges to show the waiting events")
        assert not set(observer.ids()) & {e.event_id for e in [held_event, *behind]}
        await held.aclose()  # commits

    ids = [held_event.event_id, *(e.event_id for e in behind)]
    await eventually(lambda: observer.has(*ids), what="every event once the appender committed")
    assert [i for i in observer.ids() if i in set(ids)] == ids  # the late one first: its order

    def caught_up() -> bool:
        return _gauge("sms_outbox_backlog") == 0 and (
            _gauge("sms_outbox_oldest_unpublished_age_seconds") == 0
        )

    await eventually(caught_up, within=10, what="the gauges back at 0")


async def _leaders(*relays: RunningRelay) -> list[RunningRelay]:
    return [r for r in relays if r.relay.is_leader]


async def test_two_relays_on_one_database_only_one_leads_and_the_other_takes_over(
    store: EventStore, settings: ServiceSettings, observer: Observer, start_relay: StartRelay
) -> None:
    brokers = [Broker(settings), Broker(settings)]
    for b in brokers:
        await b.connect()
    try:
        first, second = await start_relay(brokers[0]), await start_relay(brokers[1])
        (leader,) = await eventually(lambda: _leaders(first, second), what="a leader")
        standby = second if leader is first else first
        for _ in range(5):  # the standby keeps polling the lock and keeps failing to get it
            await asyncio.sleep(0.1)
            assert await _leaders(first, second) == [leader]

        one = _new(1)
        await store.append(_stream(), [one])
        await eventually(lambda: observer.has(one.event_id), what="an event via the leader")

        await leader.halt()
        await eventually(lambda: standby.relay.is_leader, what="the standby to take over")
        two = _new(2)
        await store.append(_stream(), [two])
        await eventually(lambda: observer.has(two.event_id), what="an event via the new leader")
        assert observer.count(one.event_id) == 1
    finally:
        for b in brokers:
            await b.close()


async def test_a_leader_that_lost_its_database_session_stops_leading(
    store: EventStore,
    pool: asyncpg.Pool,
    settings: ServiceSettings,
    observer: Observer,
    start_relay: StartRelay,
) -> None:
    broker = Broker(settings)
    await broker.connect()
    try:
        first = await start_relay(broker)
        await eventually(lambda: first.relay.is_leader, what="the first relay to lead")
        second = await start_relay(broker)
        # Kill the session holding the leader lock, as a network partition or a DBA would.
        killed = await pool.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND objid = $1 AND granted"
            "   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            0x5E50002,
        )
        assert killed

        # The standby takes the lock within its poll interval; the old leader must notice that
        # it lost the lock with its session and stop publishing: never two leaders at once.
        for _ in range(75):
            await asyncio.sleep(0.02)
            assert len(await _leaders(first, second)) <= 1
        await eventually(lambda: _leaders(first, second), what="a leader")
        event = _new()
        await store.append(_stream(), [event])
        await eventually(lambda: observer.has(event.event_id), what="the event")
    finally:
        for relay in (first, second):
            await relay.halt()
        await broker.close()


def _publish_failures() -> float:
    return REGISTRY.get_sample_value("sms_outbox_publish_failures_total") or 0.0


def _gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def test_only_the_leader_reports_the_outbox_gauges(
    pool: asyncpg.Pool, settings: ServiceSettings
) -> None:
    broker = Broker(settings)
    await broker.connect()
    # A long poll interval: nothing but leading and stopping touches the gauges meanwhile.
    relay = RunningRelay(OutboxRelay(pool, broker, source="/sms/tests", poll_interval=30))
    try:
        await eventually(lambda: relay.relay.is_leader, what="the relay to lead")
        assert _gauge("sms_outbox_relay_leader") == 1
        OUTBOX_BACKLOG.set(42)  # figures a leader saw
        OUTBOX_OLDEST_AGE.set(7)
    finally:
        await relay.halt()
        await broker.close()

    # A former leader must not keep reporting its last figures beside the new leader's.
    assert _gauge("sms_outbox_relay_leader") == 0
    assert _gauge("sms_outbox_backlog") == 0
    assert _gauge("sms_outbox_oldest_unpublished_age_seconds") == 0


async def test_a_leader_that_lost_its_session_stops_reporting_at_once(
    pool: asyncpg.Pool, settings: ServiceSettings
) -> None:
    broker = Broker(settings)
    await broker.connect()
    relay = RunningRelay(OutboxRelay(pool, broker, source="/sms/tests", poll_interval=30))
    rival = await pool.acquire()
    try:
        await eventually(lambda: relay.relay.is_leader, what="the relay to lead")
        OUTBOX_BACKLOG.set(42)
        # Another session queues for the lock, and gets it when the leader's session dies.
        queued = asyncio.create_task(rival.execute("SELECT pg_advisory_lock($1)", 0x5E50002))
        await pool.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND objid = $1 AND granted"
            "   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            0x5E50002,
        )
        await asyncio.wait_for(queued, 10)
        await eventually(lambda: not relay.relay.is_leader, what="the lead to be given up")
        assert _gauge("sms_outbox_relay_leader") == 0
        assert _gauge("sms_outbox_backlog") == 0
    finally:
        await relay.halt()
        await broker.close()
        await rival.execute("SELECT pg_advisory_unlock($1)", 0x5E50002)
        await pool.release(rival)
