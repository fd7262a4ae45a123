"""The fake probe API: ``POST /send/{msgId}`` with failure injection, plus control and inspection
endpoints (``/_control``, ``/_inspect``, ``/_reset``) that need no token."""

from __future__ import annotations

import asyncio
import hmac
import random
import time
from array import array
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from fake_provider.config import Settings, apply_control

__all__ = ["FakeProvider", "RunningProvider", "create_app", "running"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_JSON = "application/json"
_OK = orjson.dumps({"code": 0, "message": "OK"})
_REJECTED = orjson.dumps({"code": 1, "message": "invalid phone"})
_FAILED = orjson.dumps({"code": 500, "message": "internal error"})
_TIMED_OUT = orjson.dumps({"code": 504, "message": "gateway timeout"})
_THROTTLED = orjson.dumps({"code": 429, "message": "too many requests"})
_DOWN = orjson.dumps({"code": 503, "message": "service unavailable"})
_UNAUTHORIZED = orjson.dumps({"code": 401, "message": "unauthorized"})


def _is_int64(value: Any) -> bool:
    return type(value) is int and _INT64_MIN <= value <= _INT64_MAX


def _bad_request(reason: str) -> web.Response:
    return web.Response(
        status=400, body=orjson.dumps({"code": 2, "message": reason}), content_type=_JSON
    )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type=_JSON)


class _Journal:
    """Every counted request as three parallel typed arrays (18 bytes a request), plus an index
    from message id to its first row. A dict of per-message lists costs ~170 bytes a message;
    this costs ~120 (mostly the dict and its int objects): ~120 MB for a million messages."""

    def __init__(self) -> None:
        self.ids = array("q")
        self.times = array("d")
        self.statuses = array("H")
        self.first_row: dict[int, int] = {}
        self.more_rows: dict[int, list[int]] = {}  # rows after the first, for duplicates only
        self.by_status: dict[int, int] = {}

    def add(self, msg_id: int, at: float, status: int) -> None:
        row = len(self.ids)
        self.ids.append(msg_id)
        self.times.append(at)
        self.statuses.append(status)
        first = self.first_row.setdefault(msg_id, row)
        if first != row:
            self.more_rows.setdefault(msg_id, []).append(row)
        self.by_status[status] = self.by_status.get(status, 0) + 1

    def rows(self, msg_id: int) -> list[int]:
        first = self.first_row.get(msg_id)
        if first is None:
            return []
        return [first, *self.more_rows.get(msg_id, ())]

    def message(self, msg_id: int) -> dict[str, Any]:
        rows = self.rows(msg_id)
        return {
            "count": len(rows),
            "times": [self.times[r] for r in rows],
            "statuses": [self.statuses[r] for r in rows],
        }


class FakeProvider:
    """State of one fake: current settings, the random source and what it has seen."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._auth = f"Bearer {settings.token}".encode()
        self._rng = random.Random(settings.seed)
        self.journal = _Journal()
        self.unauthorized = 0
        self.invalid = 0
        self.down_requests = 0
        self._window, self._window_count = -1, 0  # the throttle's current 100 ms window

    # -- the probe API -------------------------------------------------------------------------

    async def send(self, request: web.Request) -> web.Response:
        s = self.settings
        if s.down:
            self.down_requests += 1
            return web.Response(status=503, body=_DOWN, content_type=_JSON)
        header = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(header, self._auth):
            self.unauthorized += 1
            return web.Response(status=401, body=_UNAUTHORIZED, content_type=_JSON)
        msg_id, error = await self._validate(request)
        if error is not None:
            self.invalid += 1
            return _bad_request(error)
        draw = self._rng.random()
        status, body = self._decide(draw, s)
        throttled = status == 200 and self._over_throttle(s.throttle_rps)
        if throttled:
            status, body = 429, _THROTTLED
        self.journal.add(msg_id, time.time(), status)
        if status == 504:
            await asyncio.sleep(s.hang_s)
        else:
            delay = s.latency_ms
            if s.jitter_ms:
                delay = max(0.0, delay + self._rng.uniform(-s.jitter_ms, s.jitter_ms))
            if delay:
                await asyncio.sleep(delay / 1000)
        response = web.Response(status=status, body=body, content_type=_JSON)
        if status == 429 and not throttled:
            response.headers["Retry-After"] = "1"
        return response

    def _over_throttle(self, rps: float) -> bool:
        """True when this request exceeds ``rps``: each 100 ms window admits a tenth of it."""
        if rps <= 0:
            return False
        window = int(time.monotonic() * 10)
        if window != self._window:
            self._window, self._window_count = window, 0
        self._window_count += 1
        return self._window_count > max(1.0, rps / 10)

    @staticmethod
    async def _validate(request: web.Request) -> tuple[int, str | None]:
        raw_id = request.match_info["msg_id"]
        if not (raw_id.isascii() and raw_id.removeprefix("-").isdigit()):
            return 0, "msgId in the path must be an integer"
        msg_id = int(raw_id)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return msg_id, "body is not JSON"
        if not isinstance(body, dict):
            return msg_id, "body must be a JSON object"
        if not _is_int64(body.get("id")) or body["id"] != msg_id:
            return msg_id, "id must be an int64 equal to msgId"
        if not _is_int64(body.get("phone")):
            return msg_id, "phone must be an int64"
        if not isinstance(body.get("text"), str):
            return msg_id, "text must be a string"
        return msg_id, None

    @staticmethod
    def _decide(draw: float, s: Settings) -> tuple[int, bytes]:
        # One draw partitioned by the rates keeps a seeded run reproducible request by request.
        edge = s.timeout_rate
        if draw < edge:
            return 504, _TIMED_OUT
        edge += s.failure_rate
        if draw < edge:
            return 500, _FAILED
        edge += s.rate_429
        if draw < edge:
            return 429, _THROTTLED
        edge += s.reject_rate
        if draw < edge:
            return 400, _REJECTED
        return 200, _OK

    # -- control and inspection ----------------------------------------------------------------

    def reseed(self) -> None:
        self._rng = random.Random(self.settings.seed)

    def reset(self) -> None:
        self.journal = _Journal()
        self.unauthorized = self.invalid = self.down_requests = 0
        self.reseed()

    def summary(self) -> dict[str, Any]:
        j = self.journal
        total = len(j.ids)
        return {
            "total_requests": total,
            "unique_ids": len(j.first_row),
            "duplicates": total - len(j.first_row),
            "duplicate_ids": len(j.more_rows),
            "by_status": {str(k): v for k, v in sorted(j.by_status.items())},
            "first_at": j.times[0] if total else None,
            "last_at": j.times[-1] if total else None,
            "unauthorized": self.unauthorized,
            "invalid": self.invalid,
            "down_requests": self.down_requests,
        }

    def messages(self, ids: Iterable[int] | None) -> dict[str, Any]:
        j = self.journal
        wanted = j.first_row if ids is None else ids
        return {str(msg_id): j.message(msg_id) for msg_id in wanted}

    async def get_control(self, _: web.Request) -> web.Response:
        return _json(self.settings.public())

    async def post_control(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _bad_request("body is not JSON")
        if not isinstance(changes, dict):
            return _bad_request("body must be a JSON object")
        try:
            self.settings = apply_control(self.settings, changes)
        except ValueError as exc:
            return _bad_request(str(exc))
        if "seed" in changes:
            self.reseed()
        return _json(self.settings.public())

    async def get_inspect(self, _: web.Request) -> web.Response:
        return _json(self.summary())

    async def get_messages(self, request: web.Request) -> web.Response:
        raw = request.query.get("ids")
        if raw is None:
            return _json(self.messages(None))
        try:
            ids = [int(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            return _bad_request("ids must be a comma-separated list of integers")
        return _json(self.messages(ids))

    async def post_reset(self, _: web.Request) -> web.Response:
        self.reset()
        return _json({"status": "reset"})

    async def healthz(self, _: web.Request) -> web.Response:
        return _json({"status": "ok", "down": self.settings.down})


def create_app(provider: FakeProvider) -> web.Application:
    app = web.Application()
    app.add_routes(
        [
            web.post("/send/{msg_id}", provider.send),
            web.get("/_control", provider.get_control),
            web.post("/_control", provider.post_control),
            web.get("/_inspect", provider.get_inspect),
            web.get("/_inspect/messages", provider.get_messages),
            web.post("/_reset", provider.post_reset),
            web.get("/healthz", provider.healthz),
        ]
    )
    return app


@dataclass(frozen=True, slots=True)
class RunningProvider:
    provider: FakeProvider
    url: str
    port: int


@asynccontextmanager
async def running(
    settings: Settings, *, shutdown_timeout: float = 1.0
) -> AsyncIterator[RunningProvider]:
    """Serve a fake on ``settings.host``/``settings.port`` (port 0 picks a free one) until the
    block exits. Handlers are cancelled when their client disconnects, so a request hanging in
    timeout mode does not outlive the client that gave up on it."""
    provider = FakeProvider(settings)
    runner = web.AppRunner(
        create_app(provider),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        port = int(runner.addresses[0][1])
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        yield RunningProvider(provider, f"http://{host}:{port}", port)
    finally:
        await runner.cleanup()
