"""A real HTTP server in place of the reporter's internal read API, answering what a test sets.

Same paths, parameters and JSON as ``reporter.api``: ``GET /internal/v1/mailings/counters?ids=``
(unknown ids absent) and ``GET /internal/v1/mailings/{id}/messages?status=&page_size=`` with
``page=``, ``before=`` or ``after=`` (``{"count", "results", "next_before", "previous_after"}``,
newest first). Every call is recorded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from sms_events.testing.processes import free_port

from ..reporter_pages_support import page_of

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
class FakeReporter:
    url: str = ""
    counters: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    fail_with: int | None = None  # answer every call with this status (e.g. 500)
    delay_s: float = 0.0  # answer every call this late
    calls: list[Call] = field(default_factory=list)
    _runner: web.AppRunner | None = None

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

    async def _counters(self, request: web.Request) -> web.Response:
        self.calls.append(Call(request.path, dict(request.query)))
        await asyncio.sleep(self.delay_s)
        if self.fail_with:
            return _json({"error": "boom"}, self.fail_with)
        ids = [int(part) for part in request.query["ids"].split(",") if part.strip()]
        return _json({str(i): self.counters[i] for i in ids if i in self.counters})

    async def _messages(self, request: web.Request) -> web.Response:
        self.calls.append(Call(request.path, dict(request.query)))
        await asyncio.sleep(self.delay_s)
        if self.fail_with:
            return _json({"error": "boom"}, self.fail_with)
        mailing_id = int(request.match_info["mailing_id"])
        status = request.query.get("status")
        rows = [m for m in self.messages.get(mailing_id, []) if status in (None, m["status"])]
        return _json(page_of(rows, request.query))

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.get("/internal/v1/mailings/counters", self._counters),
                web.get("/internal/v1/mailings/{mailing_id}/messages", self._messages),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
