"""The fake provider over real HTTP: auth, body validation, failure modes, control, inspection."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from fake_provider import RunningProvider, Settings, load_settings, running

TOKEN = "test-token-5f2c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Start = Callable[..., Awaitable[RunningProvider]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start a fake on a free port with the given settings; stopped after the test."""
    stack: list[Any] = []

    async def _start(**overrides: Any) -> RunningProvider:
        cm = running(Settings(port=0, token=TOKEN, **overrides))
        stack.append(cm)
        return await cm.__aenter__()

    yield _start
    for cm in reversed(stack):
        await cm.__aexit__(None, None, None)


@pytest.fixture
async def fake(start: Start) -> RunningProvider:
    return await start()


def body(msg_id: int, phone: Any = 79991234567, text: Any = "hello") -> dict[str, Any]:
    return {"id": msg_id, "phone": phone, "text": text}


async def send(
    http: aiohttp.ClientSession, fake: RunningProvider, msg_id: int, **kwargs: Any
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    kwargs.setdefault("headers", AUTH)
    if "data" not in kwargs:
        kwargs.setdefault("json", body(msg_id))
    async with http.post(f"{fake.url}/send/{msg_id}", **kwargs) as resp:
        return resp.status, await resp.json(), resp


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


async def control(http: aiohttp.ClientSession, fake: RunningProvider, **changes: Any) -> Any:
    async with http.post(f"{fake.url}/_control", json=changes) as resp:
        return resp.status, await resp.json()


# -- the probe API ---------------------------------------------------------------------------


async def test_delivers_a_valid_request_and_records_it(
    http: aiohttp.ClientSession, fake: RunningProvider
) -> None:
    before = time.time()
    status, answer, _ = await send(http, fake, 42)
    assert (status, answer) == (200, {"code": 0, "message": "OK"})
    summary = await get(http, f"{fake.url}/_inspect")
    assert summary["total_requests"] == 1
    assert summary["unique_ids"] == 1
    assert summary["duplicates"] == 0
    assert summary["by_status"] == {"200": 1}
    assert before <= summary["first_at"] == summary["last_at"] <= time.time()
    messages = await get(http, f"{fake.url}/_inspect/messages?ids=42")
    assert messages["42"]["count"] == 1
    assert messages["42"]["statuses"] == [200]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer ü"},
    ],
)
async def test_answers_401_without_the_right_bearer_token(
    http: aiohttp.ClientSession, fake: RunningProvider, headers: dict[str, str]
) -> None:
    status, answer, _ = await send(http, fake, 1, headers=headers)
    assert status == 401
    assert answer["code"] != 0
    summary = await get(http, f"{fake.url}/_inspect")
    assert summary["total_requests"] == 0
    assert summary["unauthorized"] == 1


@pytest.mark.parametrize(
    ("path_id", "payload", "reason"),
    [
        ("7", b"not json", "body is not JSON"),
        ("7", b"[1, 2]", "body must be a JSON object"),
        ("7", b'{"phone": 79991234567, "text": "x"}', "id must be an int64 equal to msgId"),
        ("7", b'{"id": "7", "phone": 79991234567, "text": "x"}', "id must be an int64"),
        ("7", b'{"id": 8, "phone": 79991234567, "text": "x"}', "equal to msgId"),
        ("1", b'{"id": true, "phone": 79991234567, "text": "x"}', "id must be an int64"),
        ("7", b'{"id": 7, "phone": "79991234567", "text": "x"}', "phone must be an int64"),
        ("7", b'{"id": 7, "phone": 7.9e10, "text": "x"}', "phone must be an int64"),
        ("7", b'{"id": 7, "phone": 99999999999999999999, "text": "x"}', "phone must be"),
        ("7", b'{"id": 7, "phone": 79991234567}', "text must be a string"),
        ("7", b'{"id": 7, "phone": 79991234567, "text": 5}', "text must be a string"),
        ("abc", b'{"id": 7, "phone": 79991234567, "text": "x"}', "msgId in the path"),
    ],
)
async def test_answers_400_with_a_reason_for_a_bad_body(
    http: aiohttp.ClientSession, fake: RunningProvider, path_id: str, payload: bytes, reason: str
) -> None:
    async with http.post(f"{fake.url}/send/{path_id}", data=payload, headers=AUTH) as resp:
        assert resp.status == 400
        answer = await resp.json()
    assert reason in answer["message"]
    summary = await get(http, f"{fake.url}/_inspect")
    assert (summary["total_requests"], summary["invalid"]) == (0, 1)


async def test_failure_rate_answers_500_and_counts_it(
    http: aiohttp.ClientSession, start: Start
) -> None:
    fake = await start(failure_rate=1.0)
    status, answer, _ = await send(http, fake, 3)
    assert status == 500
    assert answer["code"] != 0
    summary = await get(http, f"{fake.url}/_inspect")
    assert summary["by_status"] == {"500": 1}


async def test_429_rate_answers_429_with_retry_after(
    http: aiohttp.ClientSession, start: Start
) -> None:
    fake = await start(rate_429=1.0)
    status, _, resp = await send(http, fake, 4)
    assert status == 429
    assert resp.headers["Retry-After"] == "1"


async def test_throttle_answers_429_without_retry_after_above_the_rate(
    http: aiohttp.ClientSession, start: Start
) -> None:
    fake = await start(throttle_rps=50)  # five a 100 ms window
    answers = await asyncio.gather(*(send(http, fake, i) for i in range(100, 120)))
    statuses = sorted(status for status, _, _ in answers)
    # Twenty at once fall in one window, or straddle two: five or ten pass.
    assert statuses.count(200) in (5, 10) and statuses.count(429) == 20 - statuses.count(200)
    assert all("Retry-After" not in resp.headers for _, _, resp in answers)


async def test_reject_rate_answers_400_invalid_phone(
    http: aiohttp.ClientSession, start: Start
) -> None:
    fake = await start(reject_rate=1.0)
    status, answer, _ = await send(http, fake, 5)
    assert (status, answer) == (400, {"code": 1, "message": "invalid phone"})
    messages = await get(http, f"{fake.url}/_inspect/messages?ids=5")
    assert messages["5"]["statuses"] == [400]


async def test_timeout_rate_hangs_then_answers_504(
    http: aiohttp.ClientSession, start: Start
) -> None:
    fake = await start(timeout_rate=1.0, hang_s=0.3)
    started = time.perf_counter()
    status, _, _ = await send(http, fake, 6)
    assert status == 504
    assert time.perf_counter() - started >= 0.3


async def test_a_hanging_request_is_recorded_before_the_client_gives_up(
    http: aiohttp.ClientSession, start: Start
) -> None:
    fake = await start(timeout_rate=1.0, hang_s=30)
    with pytest.raises(asyncio.TimeoutError):
        await send(http, fake, 7, timeout=aiohttp.ClientTimeout(total=0.2))
    messages = await get(http, f"{fake.url}/_inspect/messages?ids=7")
    assert messages["7"]["statuses"] == [504]


async def test_latency_delays_the_answer(http: aiohttp.ClientSession, start: Start) -> None:
    fake = await start(latency_ms=100, jitter_ms=20)
    started = time.perf_counter()
    status, _, _ = await send(http, fake, 8)
    elapsed = time.perf_counter() - started
    assert status == 200
    assert 0.08 <= elapsed < 1.0


async def test_a_seed_makes_the_failures_reproducible(
    http: aiohttp.ClientSession, start: Start
) -> None:
    outcomes = []
    for _ in range(2):
        fake = await start(seed=1234, failure_rate=0.3, reject_rate=0.3)
        outcomes.append([(await send(http, fake, i))[0] for i in range(1, 41)])
    assert outcomes[0] == outcomes[1]
    assert {200, 400, 500} <= set(outcomes[0])


# -- control ---------------------------------------------------------------------------------


async def test_control_reports_the_settings_without_the_token(
    http: aiohttp.ClientSession, fake: RunningProvider
) -> None:
    settings = await get(http, f"{fake.url}/_control")
    assert settings["latency_ms"] == 0
    assert settings["429_rate"] == 0
    assert settings["down"] is False
    assert "token" not in settings
    assert TOKEN not in str(settings)


async def test_control_changes_the_behaviour_at_runtime(
    http: aiohttp.ClientSession, fake: RunningProvider
) -> None:
    status, settings = await control(http, fake, failure_rate=1, **{"429_rate": 0})
    assert status == 200
    assert settings["failure_rate"] == 1.0
    assert (await send(http, fake, 9))[0] == 500
    await control(http, fake, failure_rate=0)
    assert (await send(http, fake, 9))[0] == 200


@pytest.mark.parametrize(
    "changes",
    [
        {"token": "other"},
        {"port": 1},
        {"nonsense": 1},
        {"failure_rate": 1.5},
        {"failure_rate": 0.6, "reject_rate": 0.6},
        {"latency_ms": -1},
        {"latency_ms": "fast"},
        {"down": "maybe"},
        {"seed": 1.5},
    ],
)
async def test_control_refuses_invalid_changes(
    http: aiohttp.ClientSession, fake: RunningProvider, changes: dict[str, Any]
) -> None:
    before = await get(http, f"{fake.url}/_control")
    async with http.post(f"{fake.url}/_control", json=changes) as resp:
        assert resp.status == 400
        assert (await resp.json())["message"]
    assert await get(http, f"{fake.url}/_control") == before


async def test_down_answers_503_to_every_send_until_back_up(
    http: aiohttp.ClientSession, fake: RunningProvider
) -> None:
    await control(http, fake, down=True)
    assert (await send(http, fake, 10))[0] == 503
    assert (await send(http, fake, 10, headers={}))[0] == 503
    assert (await get(http, f"{fake.url}/healthz"))["down"] is True
    summary = await get(http, f"{fake.url}/_inspect")
    assert (summary["down_requests"], summary["total_requests"]) == (2, 0)
    await control(http, fake, down=False)
    assert (await send(http, fake, 10))[0] == 200


# -- inspection ------------------------------------------------------------------------------


async def test_inspection_counts_duplicates_per_message(
    http: aiohttp.ClientSession, fake: RunningProvider
) -> None:
    for msg_id in (11, 12, 11, 11):
        await send(http, fake, msg_id)
    summary = await get(http, f"{fake.url}/_inspect")
    assert summary["total_requests"] == 4
    assert summary["unique_ids"] == 2
    assert summary["duplicates"] == 2
    assert summary["duplicate_ids"] == 1
    some = await get(http, f"{fake.url}/_inspect/messages?ids=11,13")
    assert some["11"]["count"] == 3
    assert some["11"]["statuses"] == [200, 200, 200]
    assert some["11"]["times"] == sorted(some["11"]["times"])
    assert some["13"] == {"count": 0, "times": [], "statuses": []}
    every = await get(http, f"{fake.url}/_inspect/messages")
    assert set(every) == {"11", "12"}


async def test_inspection_refuses_non_integer_ids(
    http: aiohttp.ClientSession, fake: RunningProvider
) -> None:
    async with http.get(f"{fake.url}/_inspect/messages?ids=1,x") as resp:
        assert resp.status == 400


async def test_reset_clears_everything_seen(
    http: aiohttp.ClientSession, fake: RunningProvider
) -> None:
    await send(http, fake, 14)
    await send(http, fake, 14, headers={})
    async with http.post(f"{fake.url}/_reset") as resp:
        assert resp.status == 200
    summary = await get(http, f"{fake.url}/_inspect")
    assert summary["total_requests"] == summary["unique_ids"] == summary["unauthorized"] == 0
    assert summary["first_at"] is None
    assert await get(http, f"{fake.url}/_inspect/messages") == {}


# -- configuration and entrypoint ------------------------------------------------------------


def test_settings_come_from_env_then_flags() -> None:
    env = {
        "FAKE_PROVIDER_PORT": "9001",
        "FAKE_PROVIDER_TOKEN": "abc",
        "FAKE_PROVIDER_LATENCY_MS": "20",
        "FAKE_PROVIDER_429_RATE": "0.1",
        "FAKE_PROVIDER_SEED": "7",
        "FAKE_PROVIDER_DOWN": "true",
    }
    settings = load_settings(["--latency-ms", "5", "--reject-rate", "0.2"], env)
    assert settings.port == 9001
    assert settings.token == "abc"
    assert settings.latency_ms == 5.0
    assert settings.rate_429 == 0.1
    assert settings.reject_rate == 0.2
    assert settings.seed == 7
    assert settings.down is True
    assert load_settings([], {}) == Settings()


@pytest.mark.parametrize("env", [{"FAKE_PROVIDER_FAILURE_RATE": "2"}, {"FAKE_PROVIDER_PORT": "x"}])
def test_invalid_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        load_settings([], env)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_runs_as_a_process_and_stops_on_sigterm(http: aiohttp.ClientSession) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fake_provider", "--port", str(port),
        env={**os.environ, "FAKE_PROVIDER_TOKEN": TOKEN},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                async with http.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        async with http.post(f"{url}/send/1", json=body(1), headers=AUTH) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0
    assert TOKEN.encode() not in stderr
