"""Entrypoint: `python -m dispatcher` (or `sms-dispatcher`)."""

from __future__ import annotations

import asyncio

from dispatcher.config import Settings
from dispatcher.consumer import start
from sms_events.runtime import run_service


def main() -> None:
    settings = Settings()
    asyncio.run(
        run_service(
            "dispatcher",
            settings,
            migrations="dispatcher",
            start=start,
            http_host=settings.dispatcher_http_host,
            http_port=settings.dispatcher_http_port,
        )
    )


if __name__ == "__main__":
    main()
