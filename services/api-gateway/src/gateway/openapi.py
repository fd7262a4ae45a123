"""docs/openapi.json: the gateway's API contract, generated from the application itself.

    python -m gateway.openapi --output docs/openapi.json     (make openapi)

The document comes from a gateway built with the defaults and no environment, so that local
settings (an OIDC issuer, API keys) never change it; the admin pages are not in the schema.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import orjson
import structlog

from gateway.api import create_app
from gateway.config import Settings

__all__ = ["build_document", "main", "render"]


def build_document() -> dict[str, Any]:
    """The OpenAPI document of the gateway's routes."""
    # Defaults only: model_construct reads neither the environment nor .env.
    settings = Settings.model_construct()
    schema: dict[str, Any] = create_app(settings).openapi()
    return schema


def render(document: dict[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, one final newline."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    # Building the app logs how /admin is set up: keep that out of the document on stdout.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    text = render(build_document())
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
