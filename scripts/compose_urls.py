"""`make up`: print where the compose stack's UIs are (ports as published from .env)."""

from __future__ import annotations

import sys

from ensure_services import ENV_FILE, read_env_file

# (what, variable of its published port, default port, path)
UIS = [
    ("API and its docs", "GATEWAY_PUBLISHED_PORT", 8000, "/docs"),
    ("Admin UI", "GATEWAY_PUBLISHED_PORT", 8000, "/admin"),
    ("Grafana", "GRAFANA_PUBLISHED_PORT", 3000, "/"),
    ("Mailpit (the daily email)", "MAILPIT_UI_PUBLISHED_PORT", 8025, "/"),
    ("Prometheus", "PROMETHEUS_PUBLISHED_PORT", 9090, "/"),
    ("RabbitMQ management", "RABBITMQ_UI_PUBLISHED_PORT", 15672, "/"),
]


def lines(env: dict[str, str]) -> list[str]:
    width = max(len(what) for what, *_ in UIS)
    return [
        f"  {what:<{width}}  http://127.0.0.1:{env.get(variable) or default}{path}"
        for what, variable, default, path in UIS
    ]


def main() -> int:
    print("\nThe platform is starting (make logs follows it):")
    print("\n".join(lines(read_env_file(ENV_FILE))))
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
