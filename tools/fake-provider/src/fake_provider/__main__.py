"""Entrypoint: `python -m fake_provider` (or `sms-fake-provider`)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable

import structlog

from fake_provider.app import running
from fake_provider.config import Settings, load_settings

log = structlog.get_logger("fake_provider")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (it roughly doubles what one core serves)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return None
    return uvloop.new_event_loop


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings) as server:
        log.info("fake_provider_listening", url=server.url, **settings.public())
        await stop.wait()
    log.info("fake_provider_stopped")


def main(argv: list[str] | None = None) -> None:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv, os.environ)
    except ValueError as exc:
        sys.exit(f"sms-fake-provider: {exc}")
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(settings))


if __name__ == "__main__":
    main()
