"""Entrypoint: `python -m scheduler` (or `sms-scheduler`)."""

from __future__ import annotations

from scheduler.config import Settings
from scheduler.consumer import start
from sms_events.runtime import run_on_fast_loop, run_service


def main() -> None:
    settings = Settings()
    run_on_fast_loop(
        run_service(
            "scheduler",
            settings,
            migrations="scheduler",
            start=start,
            http_host=settings.scheduler_http_host,
            http_port=settings.scheduler_http_port,
        )
    )


if __name__ == "__main__":
    main()
