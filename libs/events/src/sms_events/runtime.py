"""Process wiring shared by the services: logging, migrations, pool, broker, relay, signals,
and a small HTTP server for /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sms_events.broker import Broker
from sms_events.db import error_label, pool_for
from sms_events.logs import configure_logging
from sms_events.migrate import apply_migrations_async
from sms_events.relay import OutboxRelay
from sms_events.settings import ServiceSettings

__all__ = ["GC_THRESHOLDS", "RUNTIME", "Runtime", "run_on_fast_loop", "run_service", "tune_gc"]

log = structlog.get_logger(__name__)

READY_TIMEOUT_S = 2.0


@dataclass
class Runtime:
    """What a running service holds: its pool, broker and the stop signal."""

    name: str
    settings: ServiceSettings
    pool: asyncpg.Pool
    broker: Broker
    stop: asyncio.Event
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` as one of the service's tasks. If it raises, the service stops and
        exits non-zero: a consumer or relay that died must not leave a process that still
        answers /readyz while it no longer does its work."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self.tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or (exc := task.exception()) is None:
            return
        log.error("task_failed", task=task.get_name(), error=error_label(exc))
        self.failed.append(task.get_name())
        self.stop.set()

    async def ready(self) -> dict[str, bool]:
        checks = {"database": False, "broker": await self.broker.ping()}
        # Bounded well within a probe's timeout: an unanswering database reads "not ready",
        # never as a probe that hangs (the pool alone would wait its acquire timeout).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(READY_TIMEOUT_S):
                checks["database"] = await self.pool.fetchval("SELECT 1") == 1
        return checks


RUNTIME = web.AppKey("runtime", Runtime)


async def _health_server(
    rt: Runtime, host: str, port: int, routes: Sequence[web.RouteDef]
) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await rt.ready()
        return web.json_response(checks, status=200 if all(checks.values()) else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app[RUNTIME] = rt
    app.add_routes(
        [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]
    )
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


GC_THRESHOLDS: Final = (100_000, 50, 1000)
"""Collector thresholds of the services and of ``sms-replay``: they allocate a few objects per
message (events, states, rows) that reference counting frees, while a batch keeps tens of
thousands alive for a moment. At Python's default (700 allocations) that batch is promoted
and the oldest generation is traversed again and again: a fifth of a rebuild's time (seen:
``bench_replay.py`` at N=300,000, 28.9 s against 22.2 s with these). Cyclic garbage is rare
here, so collecting it later costs little memory."""


def tune_gc() -> None:
    """Set ``GC_THRESHOLDS``, and leave what the process has loaded so far (modules, schemas)
    out of every collection."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_on_fast_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a service's main coroutine on uvloop where it is installed: the services are bound by
    the CPU their event loop spends per message, and uvloop about halves it. The collector is
    tuned first (``tune_gc``)."""
    tune_gc()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(main)
    else:
        uvloop.run(main)


async def run_service(
    name: str,
    settings: ServiceSettings,
    *,
    migrations: str,
    start: Callable[[Runtime], Awaitable[None]],
    http_host: str = "127.0.0.1",
    http_port: int | None = None,
    http_routes: Sequence[web.RouteDef] = (),
) -> None:
    """Run a consumer service until SIGTERM/SIGINT, then drain and stop cleanly.

    ``http_routes`` are served beside /healthz, /readyz and /metrics; handlers find the
    ``Runtime`` in ``request.app[RUNTIME]``.
    ``start`` spawns the service's own tasks (consumers, timers) with ``rt.spawn``; each must
    return soon after ``rt.stop`` is set.
    """
    configure_logging(name, settings.log_level, settings.log_format)
    applied = await apply_migrations_async(settings.database_url, migrations)
    if applied:
        log.info("migrations_applied", ids=applied)
    pool = await pool_for(settings)
    broker = Broker(settings)
    await broker.connect()
    rt = Runtime(name, settings, pool, broker, asyncio.Event())
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, rt.stop.set)
    try:
        runner = await _health_server(rt, http_host, http_port, http_routes) if http_port else None
        if settings.relay_enabled:
            relay = OutboxRelay(pool, broker, source=f"/sms/{name}", retry=settings.outage_retry())
            rt.spawn(relay.run(rt.stop), "relay")
        await start(rt)
        log.info("service_started", http_port=http_port)
        await rt.stop.wait()
        log.info("service_stopping")
        await _drain(rt.tasks, grace=30)
        if runner is not None:
            await runner.cleanup()
        await broker.close()
        await pool.close()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    log.info("service_stopped", failed_tasks=rt.failed)
    if rt.failed:
        raise SystemExit(1)


async def _drain(tasks: list[asyncio.Task[Any]], grace: float) -> None:
    """Give the tasks ``grace`` seconds to finish; cancel the rest and wait for their cleanup
    (a consumer hands back its deliveries) before the pool and broker close under them."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        log.warning("task_cancelled", task=task.get_name())
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
