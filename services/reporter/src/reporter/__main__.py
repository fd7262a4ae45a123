"""Entrypoint: `python -m reporter` (or `sms-reporter`)."""

from __future__ import annotations

from reporter.api import ROUTES
from reporter.config import Settings
from reporter.consumer import start
from sms_events.runtime import run_on_fast_loop, run_service


def main() -> None:
    settings = Settings()
    run_on_fast_loop(
        run_service(
            "reporter",
            settings,
            migrations="reporter",
            start=start,
            http_host=settings.reporter_http_host,
            http_port=settings.reporter_http_port,
            http_routes=ROUTES,
        )
    )


if __name__ == "__main__":
    main()
