"""The reporter's internal read API as a real HTTP server whose answers the tests set: the one
stand-in reporter of the gateway's tests, run on the test's event loop (``start``) or, for the
tests that drive a gateway process synchronously, on a thread of its own (``start_in_thread``).

Same paths, parameters and JSON as ``reporter.api``: counters (``?ids=``, unknown ids absent),
pages of messages (``?status=&page_size=`` with ``page=``, ``before=`` or ``after=``, newest
first), the overall figures and one mailing's figures (404 for a mailing it was not given).
Answers are rendered as the reporter renders them (orjson, UTC with ``Z``). Every call is
recorded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from sms_events.testing.processes import free_port

__all__ = ["COUNTERS", "Call", "ReporterDouble", "free_port", "page_of"]

COUNTERS = (
    "clients_count", "created_messages", "scheduled_messages", "delivered_messages",
    "undelivered_messages", "cancelled_messages", "attempts_total",
)  # fmt: skip
STAMPS = ("first_sent_at", "last_sent_at", "completed_at", "resolved_at")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_UTC_Z),
        status=status,
        content_type="application/json",
    )


@dataclass
class Call:
    path: str
    query: dict[str, str]


@dataclass
class ReporterDouble:
    counters: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    overview: dict[str, Any] | None = None  # None: /stats answers 503
    mailing_stats: dict[int, dict[str, Any]] = field(default_factory=dict)
    fail_with: int | None = None  # answer every call with this status (e.g. 500)
    delay_s: float = 0.0  # answer every call this late
    calls: list[Call] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def down(self) -> bool:
        return self.fail_with is not None

    @down.setter
    def down(self, down: bool) -> None:
        self.fail_with = 503 if down else None

    def set_counters(self, mailing_id: int, *, resolved: bool = True, **values: int) -> None:
        """Counters for a mailing (those not given are 0); ``resolved`` sets resolved_at."""
        now = datetime.now(UTC)
        self.counters[mailing_id] = {key: values.get(key, 0) for key in COUNTERS} | {
            stamp: None for stamp in STAMPS
        } | {"resolved_at": now if resolved else None}  # fmt: skip

    def set_messages(self, mailing_id: int, statuses: list[str]) -> list[dict[str, Any]]:
        """Messages with these statuses (oldest first, ids counting up); kept newest first."""
        base = datetime(2024, 2, 14, 8, 47, 43, tzinfo=UTC)
        made = [
            {"id": mailing_id * 100_000 + i, "datetime_send": base + timedelta(seconds=i),
             "status": status, "mailing_id": mailing_id, "client_id": 1000 + i,
             "attempts": 1 if status in ("DL", "ND") else 0,
             "last_error": "HTTP 400" if status == "ND" else None,
             "created_at": base, "updated_at": base + timedelta(seconds=i)}
            for i, status in enumerate(statuses, 1)
        ]  # fmt: skip
        self.messages[mailing_id] = list(reversed(made))
        return self.messages[mailing_id]

    def calls_to(self, suffix: str) -> list[Call]:
        return [c for c in self.calls if c.path.endswith(suffix)]

    async def start(self) -> None:
        """Serve on the running event loop."""
        app = web.Application()
        app.add_routes(
            [
                web.get("/internal/v1/stats", self._stats),
                web.get("/internal/v1/mailings/counters", self._counters),
                web.get("/internal/v1/mailings/{mailing_id}/stats", self._mailing_stats),
                web.get("/internal/v1/mailings/{mailing_id}/messages", self._messages),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start_in_thread(self) -> None:
        """Serve on an event loop of its own, in a thread: for synchronous tests."""
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), loop).result(10)

    def stop_in_thread(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _answer(self, request: web.Request) -> web.Response | None:
        """Record the call, wait ``delay_s``; the failure to answer with, if any."""
        self.calls.append(Call(request.path, dict(request.query)))
        await asyncio.sleep(self.delay_s)
        return None if self.fail_with is None else _json({"error": "boom"}, self.fail_with)

    async def _stats(self, request: web.Request) -> web.Response:
        if failed := await self._answer(request):
            return failed
        if self.overview is None:
            return _json({"error": "unavailable"}, 503)
        return _json(self.overview)

    async def _counters(self, request: web.Request) -> web.Response:
        if failed := await self._answer(request):
            return failed
        ids = [int(part) for part in request.query["ids"].split(",") if part.strip()]
        return _json({str(i): self.counters[i] for i in ids if i in self.counters})

    async def _mailing_stats(self, request: web.Request) -> web.Response:
        if failed := await self._answer(request):
            return failed
        stats = self.mailing_stats.get(int(request.match_info["mailing_id"]))
        return _json({"error": "mailing not found"}, 404) if stats is None else _json(stats)

    async def _messages(self, request: web.Request) -> web.Response:
        if failed := await self._answer(request):
            return failed
        status = request.query.get("status") or None
        rows = self.messages.get(int(request.match_info["mailing_id"]), [])
        return _json(page_of([m for m in rows if status in (None, m["status"])], request.query))


def page_of(rows: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """The page the reporter answers for ``query`` over ``rows`` (newest first), the plain way:
    by number, or the rows just older (``before``) or newer (``after``) than an id."""
    size = int(query.get("page_size", "100"))
    ids = [r["id"] for r in rows]
    if "before" in query:
        bound = int(query["before"])
        rest = [r for r in rows if r["id"] < bound]
        chosen, beyond = rest[:size], len(rest) > size
        behind = any(i >= bound for i in ids)
        following = chosen[-1]["id"] if beyond else None
        previous = (chosen[0]["id"] if chosen else bound - 1) if behind else None
    elif "after" in query:
        bound = int(query["after"])
        rest = [r for r in rows if r["id"] > bound]
        chosen, beyond = rest[-size:], len(rest) > size
        behind = any(i <= bound for i in ids)
        following = (chosen[-1]["id"] if chosen else bound + 1) if behind else None
        previous = chosen[0]["id"] if beyond else None
    else:
        page = int(query.get("page", "1"))
        chosen = rows[(page - 1) * size : page * size]
        following = chosen[-1]["id"] if chosen and len(rows) > page * size else None
        previous = chosen[0]["id"] if chosen and page > 1 else None
    return {
        "count": len(rows),
        "results": chosen,
        "next_before": following,
        "previous_after": previous,
    }
