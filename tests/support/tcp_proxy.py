"""A TCP proxy that plays network outages, driven from plain synchronous test code.

The end-to-end tests are synchronous (they poll HTTP), so the proxy runs an asyncio loop on a
daemon thread of its own; every method below is called from the test's thread and returns
once the proxy has done it. Put one between the services and PostgreSQL, one between them and
RabbitMQ, and mid-run:

- ``reset()`` resets every open connection, on both sides, with a TCP RST (as a restarting
  host, or a firewall or NAT that dropped its state, does): the peers see ECONNRESET at once;
- ``refuse()`` closes the listening socket, so a new connection is refused (ECONNREFUSED) as
  by a host whose server is down; ``accept()`` listens on the same port again;
- ``outage()`` does both for the length of a ``with`` block (refuse first, so that nothing
  reconnects between the reset and the refusal) and records when it began and ended.

Forwarding costs a thread hop per read, which is nothing next to the services' own work at
the few thousand messages an e2e test sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Outage", "TcpProxy", "proxied_url", "url_target"]

T = TypeVar("T")

_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "amqp": 5672, "amqps": 5671}
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN


def url_target(url: str) -> tuple[str, int]:
    """The (host, port) a service URL (postgresql://, amqp://) connects to."""
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    return parts.hostname or "localhost", port


def proxied_url(url: str, port: int, host: str = "127.0.0.1") -> str:
    """``url`` with its host and port replaced by ``host:port`` (credentials, path and query
    kept)."""
    parts = urlsplit(url)
    userinfo, _, _ = parts.netloc.rpartition("@")
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class Outage:
    """When an outage began and ended (``time.time()``: comparable with other processes'
    clocks on this machine) and how many connections it reset."""

    began: float
    ended: float | None = None
    reset: int = 0

    @property
    def seconds(self) -> float:
        return (self.ended or time.time()) - self.began


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's side and the target's side."""

    client: asyncio.StreamWriter
    target: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        for writer in (self.client, self.target):
            _abort_with_rst(writer)


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target`` until ``stop()``; see the module docstring.

    ``accepted`` counts the connections accepted so far, ``open_links`` those open now.
    """

    def __init__(self, target: tuple[str, int], *, name: str = "proxy") -> None:
        self.target = target
        self.name = name
        self.port = 0
        self.accepted = 0
        self.outages: list[Outage] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"tcp-proxy-{name}", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    # -- called from the test's thread ---------------------------------------------------------

    def start(self) -> TcpProxy:
        """Start the proxy's thread and listen on a free port (``self.port``)."""
        self._thread.start()
        self.accept()
        return self

    def stop(self) -> None:
        """Drop every connection, stop listening and end the thread."""
        if not self._thread.is_alive():
            return
        self._call(self._refuse())
        self._call(self._reset())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url(self, url: str) -> str:
        """``url`` (pointing at the target) rewritten to go through this proxy."""
        return proxied_url(url, self.port)

    def reset(self) -> int:
        """Reset every open connection (RST to both peers); returns how many there were."""
        return self._call(self._reset())

    def refuse(self) -> None:
        """Refuse new connections until ``accept()``; open ones are left alone."""
        self._call(self._refuse())

    def accept(self) -> None:
        """Accept connections (again, on the same port)."""
        self._call(self._listen())

    @property
    def refusing(self) -> bool:
        return self._server is None

    @property
    def open_links(self) -> int:
        return len(self._links)

    @contextlib.contextmanager
    def outage(self) -> Iterator[Outage]:
        """Refuse new connections and reset the open ones for the ``with`` block; accept
        again when it ends. The yielded ``Outage`` gets its end time on the way out."""
        self.refuse()
        outage = Outage(began=time.time())
        outage.reset = self.reset()
        self.outages.append(outage)
        try:
            yield outage
        finally:
            self.accept()
            outage.ended = time.time()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    # -- on the proxy's loop -------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is None:
            # reuse_address (asyncio's default on Unix) lets the port be bound again at once.
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _refuse(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # Not wait_closed(): since Python 3.12 it waits for every accepted connection.

    async def _reset(self) -> int:
        links = list(self._links)
        for link in links:
            link.reset()
        self._links.clear()
        await asyncio.gather(*(t for link in links for t in link.tasks), return_exceptions=True)
        return len(links)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted just before refuse(): as good as refused
            _abort_with_rst(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort_with_rst(writer)
            return
        self.accepted += 1
        link = _Link(writer, up_writer)
        link.tasks = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        self._links.add(link)
        try:
            # When one direction ends (a peer closed), end the other one too.
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if link in self._links:
                self._links.discard(link)
                for w in (writer, up_writer):
                    w.close()
            for task in link.tasks:
                task.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await src.read(1 << 16):
            dst.write(data)
            await dst.drain()


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()
