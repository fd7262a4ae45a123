"""structlog configuration: JSON off a TTY, console on one, secrets scrubbed."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "scrub_secrets"]

_SECRET_KEYS = re.compile(r"authorization|token|passw|secret|api_?key|cookie|credential", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
# The password runs to the last "@" before the host: a raw "@" in it must not leak the rest.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^/\s]*@")
_MASK = "***"
# Phones (7, a three-digit operator code, seven digits) wherever they appear: in a message, in
# a database error's detail ("Key (phone)=(79991234567) already exists"), in a traceback.
# The operator code stays: it says which network without saying who.
_PHONE = re.compile(r"(?<![0-9])(\+?7[0-9]{3})[0-9]{7}(?![0-9])")
_PHONE_KEYS = re.compile(r"phone|msisdn", re.I)
_PHONE_INTS = range(70_000_000_000, 80_000_000_000)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(rf"\1{_MASK}@", _BEARER.sub(rf"\1{_MASK}", value))
        return _PHONE.sub(rf"\1{_MASK}", value)
    if isinstance(value, int) and not isinstance(value, bool) and value in _PHONE_INTS:
        return _PHONE.sub(rf"\1{_MASK}", str(value))
    if isinstance(value, Mapping):
        return {k: _MASK if _is_secret(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    return value


def _is_secret(key: object) -> bool:
    return isinstance(key, str) and (
        _SECRET_KEYS.search(key) is not None or _PHONE_KEYS.search(key) is not None
    )


def scrub_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: mask values under secret- or phone-looking keys, bearer tokens,
    URL passwords and phone numbers, whatever a caller passed in (nested dicts and lists, and
    exception text, included)."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _MASK if _is_secret(key) else _scrub(value)
    return event_dict


def configure_logging(service: str, level: str = "INFO", fmt: str = "auto") -> None:
    """Configure structlog (and stdlib logging, for libraries) once at startup."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        scrub_secrets,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries (uvicorn, aio-pika, asyncpg) log through stdlib; route them through structlog.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared[:1], structlog.stdlib.add_logger_name, *shared[1:]],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.getLevelName(level), logging.INFO))
    for noisy in ("aio_pika", "aiormq", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
