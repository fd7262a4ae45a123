"""Entrypoint: `python -m gateway` (or `sms-api-gateway`): logging, migrations, then uvicorn.

SIGTERM or SIGINT shut the server down gracefully (requests in progress finish, the lifespan
stops the outbox relay and closes the pool and the broker), and the process then exits 0,
like the other services: a supervisor can tell a clean stop from a crash.
"""

from __future__ import annotations

import logging
from types import FrameType

import structlog
import uvicorn
import uvloop

from gateway.api import create_app
from gateway.config import Settings
from sms_events.logs import configure_logging
from sms_events.migrate import apply_migrations_async

log = structlog.get_logger("gateway")


class _Server(uvicorn.Server):
    """uvicorn re-raises a signal it shut down on once it is done, so that the process dies
    of it (status -15) after a graceful shutdown; here a graceful shutdown exits 0 instead."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


async def serve(settings: Settings) -> None:
    applied = await apply_migrations_async(settings.database_url, "gateway")
    if applied:
        log.info("migrations_applied", ids=applied)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        http="httptools",
        lifespan="on",
        access_log=False,  # the middleware writes one line per request, without headers
        log_config=None,  # keep the structlog setup; uvicorn's own lines go through it
        proxy_headers=True,
        server_header=False,
    )
    server = _Server(config)
    await server.serve()
    if not server.started:  # the lifespan or the bind failed (uvicorn has logged why)
        raise SystemExit(3)


def main() -> None:
    settings = Settings()
    configure_logging("api-gateway", settings.log_level, settings.log_format)
    # httpx logs every reporter call at INFO; the request's own line is the one line per unit
    # of work, and gateway_reporter_requests_total counts the calls.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log.info("gateway_starting", host=settings.gateway_host, port=settings.gateway_port)
    # The loop is made here (uvicorn's loop= setting only applies to uvicorn.run()).
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
