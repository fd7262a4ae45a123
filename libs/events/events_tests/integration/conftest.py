"""Fixtures for the event library's integration tests (helpers live in eventlib_support)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import pytest

from sms_events.broker import Broker, declare_exchange
from sms_events.envelope import Envelope
from sms_events.settings import ServiceSettings
from tests.support.tcp_proxy import url_target

from .eventlib_support import Observer, TcpProxy


@pytest.fixture
async def tcp_proxy() -> AsyncIterator[Callable[[str], Awaitable[TcpProxy]]]:
    """``await tcp_proxy(url)``: a proxy to the host and port ``url`` names (whatever the
    settings say, default ports or not); ``proxied_url(url, proxy.port)`` goes through it."""
    proxies: list[TcpProxy] = []

    async def start(url: str) -> TcpProxy:
        host, port = url_target(url)
        proxy = TcpProxy(port, host)
        await proxy.open()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.close()


@pytest.fixture
async def observer(broker: Broker, settings: ServiceSettings) -> AsyncIterator[Observer]:
    """An exclusive queue bound to every routing key of the test exchange."""
    observed = Observer()
    channel = await broker.channel()
    exchange = await declare_exchange(channel, settings)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="#")

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            observed.received.append(Envelope.from_json(message.body))

    tag = await queue.consume(on_message)
    yield observed
    with contextlib.suppress(Exception):
        await queue.cancel(tag)
    await channel.close()
