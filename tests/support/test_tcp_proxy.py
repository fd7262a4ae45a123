"""The outage proxy itself: it forwards, resets open connections, refuses new ones, and
accepts again on the same port."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.support.tcp_proxy import TcpProxy, proxied_url, url_target


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with TcpProxy(server.server_address[:2], name="echo") as proxy:  # type: ignore[arg-type]
            yield proxy
    finally:
        server.shutdown()
        server.server_close()


def _connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def _echo(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_forwards_both_ways(proxy: TcpProxy) -> None:
    with _connect(proxy) as sock:
        assert _echo(sock, b"x" * 200_000) == b"x" * 200_000
    assert proxy.accepted == 1


def test_reset_resets_open_connections(proxy: TcpProxy) -> None:
    with _connect(proxy) as sock:
        assert _echo(sock, b"hello") == b"hello"
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            sock.sendall(b"more")
            sock.recv(10)


def test_an_outage_refuses_new_connections_then_accepts_on_the_same_port(
    proxy: TcpProxy,
) -> None:
    port = proxy.port
    with _connect(proxy) as before:
        assert _echo(before, b"a") == b"a"
        with proxy.outage() as outage:
            assert outage.reset == 1
            with pytest.raises(ConnectionRefusedError):
                _connect(proxy)
        assert outage.ended is not None and outage.seconds >= 0
    assert proxy.port == port
    with _connect(proxy) as after:
        assert _echo(after, b"b") == b"b"


def test_rewrites_service_urls() -> None:
    assert url_target("postgresql://postgres@localhost:5432/sms") == ("localhost", 5432)
    assert url_target("amqp://guest:guest@rabbit/") == ("rabbit", 5672)
    assert (
        proxied_url("amqp://guest:guest@localhost:5672/?heartbeat=5", 9999)
        == "amqp://guest:guest@127.0.0.1:9999/?heartbeat=5"
    )
    assert proxied_url("postgresql://localhost/sms", 1) == "postgresql://127.0.0.1:1/sms"
