"""The provider client against the real fake provider (and two tiny servers of its own), over
real HTTP on loopback: classification, timeouts, connection errors, keep-alive, secrecy."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson
import pytest
import structlog
from aiohttp import web

from dispatcher.provider import (
    Outcome,
    ProviderClient,
    SendResult,
    classify_response,
    parse_phone,
    parse_retry_after,
)
from fake_provider import RunningProvider, Settings, running

TOKEN = "tok-3b9f0e7c1d2a"
PHONE = "79991234567"

Start = Callable[..., Awaitable[RunningProvider]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start a fake provider on a free port; stopped after the test."""
    managers: list[Any] = []

    async def _start(**behaviour: Any) -> RunningProvider:
        cm = running(Settings(port=0, token=TOKEN, **behaviour))
        managers.append(cm)
        return await cm.__aenter__()

    yield _start
    for cm in reversed(managers):
        await cm.__aexit__(None, None, None)


@pytest.fixture
async def fake(start: Start) -> RunningProvider:
    return await start()


@pytest.fixture
async def client(fake: RunningProvider) -> AsyncIterator[ProviderClient]:
    async with ProviderClient(fake.url, TOKEN, concurrency=10, timeout_s=2.0) as c:
        yield c


def behave(fake: RunningProvider, **changes: Any) -> None:
    fake.provider.settings = dataclasses.replace(fake.provider.settings, **changes)


def statuses(fake: RunningProvider, msg_id: int) -> list[int]:
    return list(fake.provider.journal.message(msg_id)["statuses"])


# -- outcomes against the fake provider ------------------------------------------------------


async def test_a_message_the_provider_accepts_is_delivered(
    client: ProviderClient, fake: RunningProvider
) -> None:
    result = await client.send(1001, PHONE, "hello")
    assert result.outcome is Outcome.DELIVERED
    assert result.delivered and not result.retryable
    assert (result.status, result.error, result.retry_after_s) == (200, None, None)
    assert result.latency_s > 0
    assert statuses(fake, 1001) == [200]


async def test_a_500_is_retryable(client: ProviderClient, fake: RunningProvider) -> None:
    behave(fake, failure_rate=1.0)
    result = await client.send(1002, PHONE, "hello")
    assert (result.outcome, result.status, result.error) == (Outcome.RETRYABLE, 500, "HTTP 500")
    assert result.retry_after_s is None
    assert statuses(fake, 1002) == [500]  # no hidden retry of a 5xx


async def test_a_429_is_retryable_after_the_time_it_asks_for(
    client: ProviderClient, fake: RunningProvider
) -> None:
    behave(fake, rate_429=1.0)
    result = await client.send(1003, PHONE, "hello")
    assert (result.outcome, result.status, result.error) == (Outcome.RETRYABLE, 429, "HTTP 429")
    assert result.retry_after_s == 1.0


async def test_a_provider_that_is_down_is_retryable(
    client: ProviderClient, fake: RunningProvider
) -> None:
    behave(fake, down=True)
    result = await client.send(1004, PHONE, "hello")
    assert (result.outcome, result.status, result.error) == (Outcome.RETRYABLE, 503, "HTTP 503")


async def test_a_hanging_provider_times_out_as_retryable(start: Start) -> None:
    fake = await start(timeout_rate=1.0, hang_s=30)
    async with ProviderClient(fake.url, TOKEN, timeout_s=0.3) as client:
        started = time.perf_counter()
        result = await client.send(1005, PHONE, "hello")
    assert (result.outcome, result.status, result.error) == (Outcome.RETRYABLE, None, "timeout")
    assert 0.25 <= result.latency_s < 2.0
    assert time.perf_counter() - started < 2.0
    assert statuses(fake, 1005) == [504]  # one request: a timeout is not retried inside


async def test_a_rejected_message_is_permanent_with_the_providers_reason(
    client: ProviderClient, fake: RunningProvider
) -> None:
    behave(fake, reject_rate=1.0)
    result = await client.send(1006, PHONE, "hello")
    assert result.outcome is Outcome.REJECTED
    assert (result.status, result.error) == (400, "HTTP 400: invalid phone")
    assert result.retry_after_s is None


async def test_a_wrong_token_is_retryable_not_a_fault_of_the_message(
    fake: RunningProvider,
) -> None:
    async with ProviderClient(fake.url, "not-the-token") as client:
        result = await client.send(1007, PHONE, "hello")
    assert (result.outcome, result.status, result.error) == (Outcome.RETRYABLE, 401, "HTTP 401")


async def test_a_closed_port_is_a_retryable_connection_refusal() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        async with ProviderClient(f"http://127.0.0.1:{port}", TOKEN) as client:
            result = await client.send(1008, PHONE, "hello")
    assert result.outcome is Outcome.RETRYABLE
    assert (result.status, result.error) == (None, "connection refused")


async def test_an_invalid_phone_is_rejected_without_calling_the_provider(
    client: ProviderClient, fake: RunningProvider
) -> None:
    result = await client.send(1009, "call me maybe", "hello")
    assert (result.outcome, result.status) == (Outcome.REJECTED, None)
    assert result.error == "invalid phone number"
    assert fake.provider.summary()["total_requests"] == 0


async def test_the_concurrency_caps_the_requests_in_flight(start: Start) -> None:
    fake = await start(latency_ms=100)
    async with ProviderClient(fake.url, TOKEN, concurrency=4) as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(client.send(2000 + i, PHONE, "x") for i in range(12)))
        elapsed = time.perf_counter() - started
    assert all(r.delivered for r in results)
    assert elapsed >= 0.29  # 12 requests, 4 at a time, 100 ms each


async def test_close_is_idempotent_and_the_client_reopens_on_use(fake: RunningProvider) -> None:
    client = ProviderClient(fake.url, TOKEN)
    await client.close()
    assert (await client.send(1010, PHONE, "x")).delivered
    await client.close()
    await client.close()


# -- what goes over the wire, keep-alive, stale connections ----------------------------------


class _Capture:
    """A tiny server that remembers each request's headers, body and client port."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, int]] = []

    async def handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append((dict(request.headers), await request.read(), peer[1] if peer else 0))
        return web.json_response({"code": 0, "message": "OK"})


@pytest.fixture
async def capture() -> AsyncIterator[tuple[_Capture, str]]:
    cap = _Capture()
    app = web.Application()
    app.router.add_post("/api/send/{msg_id}", cap.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    yield cap, f"http://127.0.0.1:{port}/api/"
    await runner.cleanup()


async def test_sends_the_probe_body_with_the_bearer_token(
    capture: tuple[_Capture, str],
) -> None:
    cap, url = capture
    async with ProviderClient(url, TOKEN) as client:
        assert (await client.send(1011, "+7 999 123-45-67", "Привет")).delivered
    headers, body, _ = cap.requests[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"] == "application/json"
    assert orjson.loads(body) == {"id": 1011, "phone": 79991234567, "text": "Привет"}


async def test_reuses_one_keep_alive_connection(capture: tuple[_Capture, str]) -> None:
    cap, url = capture
    async with ProviderClient(url, TOKEN, concurrency=10) as client:
        for i in range(20):
            assert (await client.send(3000 + i, PHONE, "x")).delivered
    assert len({port for _, _, port in cap.requests}) == 1


async def _flaky_server(drops: int) -> tuple[asyncio.Server, list[int]]:
    """Reads each request; closes the first ``drops`` connections without answering (a
    keep-alive socket the server has just closed), answers the rest."""
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            seen.append(1)
            if len(seen) <= drops:
                writer.close()
                return
            body = b'{"code": 0, "message": "OK"}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


@pytest.mark.parametrize(
    ("drops", "stale_retries", "outcome", "requests"),
    [
        (1, 1, Outcome.DELIVERED, 2),  # one quick retry on a fresh connection
        (5, 1, Outcome.RETRYABLE, 2),  # ...and only one
        (1, 0, Outcome.RETRYABLE, 1),
    ],
)
async def test_a_dropped_connection_is_retried_once_at_most(
    drops: int, stale_retries: int, outcome: Outcome, requests: int
) -> None:
    server, seen = await _flaky_server(drops)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ProviderClient(
            f"http://127.0.0.1:{port}", TOKEN, stale_retries=stale_retries
        ) as client:
            result = await client.send(1012, PHONE, "x")
    finally:
        server.close()
        await server.wait_closed()
    assert result.outcome is outcome
    if outcome is Outcome.RETRYABLE:
        assert result.error == "server disconnected"
    assert len(seen) == requests


async def test_the_token_never_shows_in_results_logs_or_reprs(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await start(failure_rate=0.25, rate_429=0.25, reject_rate=0.25)
    results: list[SendResult] = []
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs:
        async with ProviderClient(fake.url, TOKEN) as client:
            results += [await client.send(4000 + i, PHONE, "x") for i in range(20)]
            text = repr(client)
        async with ProviderClient("http://127.0.0.1:1", TOKEN) as client:
            results.append(await client.send(4100, PHONE, "x"))
        async with ProviderClient(
            (await start(timeout_rate=1.0)).url, TOKEN, timeout_s=0.1
        ) as client:
            results.append(await client.send(4101, PHONE, "x"))
    assert {r.outcome for r in results} == set(Outcome)
    everything = text + repr(results) + repr(logs) + caplog.text
    assert TOKEN not in everything
    assert PHONE not in everything


# -- classification, pure --------------------------------------------------------------------


def classify(status: int, body: bytes = b"", retry_after: str | None = None) -> SendResult:
    return classify_response(status, body, retry_after, now=1_000_000.0, latency_s=0.01)


def test_a_200_with_a_non_zero_code_is_rejected_with_its_message() -> None:
    result = classify(200, b'{"code": 7, "message": "blocked\\nnumber"}')
    assert (result.outcome, result.error) == (Outcome.REJECTED, "HTTP 200 code 7: blocked number")


@pytest.mark.parametrize("body", [b"<html>proxy</html>", b"", b"[]", b'{"code": "0"}'])
def test_a_200_without_the_probe_answer_is_retryable(body: bytes) -> None:
    result = classify(200, body)
    assert (result.outcome, result.error) == (Outcome.RETRYABLE, "HTTP 200: unreadable body")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 401, 403, 404, 405, 302, 101])
def test_server_errors_throttling_and_auth_are_retryable(status: int) -> None:
    result = classify(status, b"whatever")
    assert (result.outcome, result.status, result.error) == (
        Outcome.RETRYABLE,
        status,
        f"HTTP {status}",
    )


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, b'{"code": 1, "message": "invalid phone"}', "HTTP 400: invalid phone"),
        (409, b"Conflict", "HTTP 409: Conflict"),
        (422, b"", "HTTP 422"),
        (400, b'{"code": 1}', 'HTTP 400: {"code": 1}'),
    ],
)
def test_other_client_errors_are_rejected_with_a_reason(
    status: int, body: bytes, error: str
) -> None:
    result = classify(status, body)
    assert (result.outcome, result.error) == (Outcome.REJECTED, error)


@pytest.mark.parametrize(
    "body",
    [
        b'{"code": 1, "message": "invalid phone 79991234567"}',
        b'{"code": 1, "message": "invalid phone +7 (999) 123-45-67"}',
    ],
)
def test_a_phone_number_echoed_in_a_reason_is_masked(body: bytes) -> None:
    result = classify(400, body)
    assert result.error == "HTTP 400: invalid phone ***"


def test_a_long_reason_is_cut_to_about_200_characters() -> None:
    result = classify(400, b"x" * 5000)
    assert result.error is not None
    assert len(result.error) == 200
    assert result.error.startswith("HTTP 400: xxx")


def test_a_503_carries_its_retry_after() -> None:
    assert classify(503, b"", "120").retry_after_s == 120.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    in_90s = format_datetime(now + timedelta(seconds=90), usegmt=True)
    past = format_datetime(now - timedelta(hours=1), usegmt=True)
    ts = now.timestamp()
    assert parse_retry_after("1", ts) == 1.0
    assert parse_retry_after(" 2.5 ", ts) == 2.5
    assert parse_retry_after(in_90s, ts) == pytest.approx(90.0)
    assert parse_retry_after(past, ts) == 0.0
    assert parse_retry_after("-5", ts) == 0.0
    assert parse_retry_after("99999999", ts) == 3600.0
    assert parse_retry_after("soon", ts) is None
    assert parse_retry_after("nan", ts) is None
    assert parse_retry_after(None, ts) is None


@pytest.mark.parametrize(
    ("phone", "number"),
    [
        ("79991234567", 79991234567),
        ("+79991234567", 79991234567),
        ("+7 999 123-45-67", 79991234567),
        ("", None),
        ("+", None),
        ("7999abc", None),
        ("٧٩٩٩", None),  # non-ASCII digits
        ("1" * 19, None),  # beyond int64
    ],
)
def test_phones_become_int64_numbers(phone: str, number: int | None) -> None:
    assert parse_phone(phone) == number
