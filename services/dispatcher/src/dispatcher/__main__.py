"""Entrypoint: `python -m dispatcher` (or `sms-dispatcher`)."""

from __future__ import annotations

from dispatcher.config import Settings
from dispatcher.consumer import start
from sms_events.runtime import run_on_fast_loop, run_service


def main() -> None:
    settings = Settings()
    run_on_fast_loop(
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
