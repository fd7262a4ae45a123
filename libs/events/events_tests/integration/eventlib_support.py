"""Helpers for the event library's integration tests: polling with a timeout, a TCP proxy that
can play a network outage, and a record of what reached the exchange."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sms_events.envelope import Envelope
from sms_events.settings import ServiceSettings
from tests.support.tcp_proxy import proxied_url


async def eventually(
    check: Callable[[], Any], *, within: float = 20.0, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


class TcpProxy:
    """Forwards a local port to ``target``; ``close()`` drops every connection and refuses new
    ones (the broker or database looks unreachable), ``open()`` accepts again on the same port,
    ``freeze()`` silently swallows traffic on open connections (a network partition: no reset,
    nothing arrives)."""

    def __init__(self, target_port: int, target_host: str = "localhost") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.frozen = False

    def freeze(self) -> None:
        self.frozen = True

    async def open(self) -> None:
        self.frozen = False
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # refuse new connections
        for writer in list(self._writers):
            writer.transport.abort()  # and drop the open ones, as a dead host would
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                if self.frozen:
                    continue
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.transport.abort()
            self._writers.discard(dst)


@dataclass
class Observer:
    """Every envelope that reached the exchange since the observer started."""

    received: list[Envelope] = field(default_factory=list)

    def ids(self) -> list[UUID]:
        return [env.id for env in self.received]

    def count(self, event_id: UUID) -> int:
        return sum(1 for env in self.received if env.id == event_id)

    def has(self, *event_ids: UUID) -> bool:
        seen = set(self.ids())
        return all(event_id in seen for event_id in event_ids)


def settings_via(settings: ServiceSettings, port: int, **query: Any) -> ServiceSettings:
    """The same settings with the AMQP URL pointing at a local proxy port."""
    url = proxied_url(settings.amqp_url, port)
    params = "&".join(f"{k}={v}" for k, v in query.items())
    if params:
        url += ("&" if "?" in url else "?") + params
    return settings.model_copy(update={"amqp_url": url})
