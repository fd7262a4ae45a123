"""The reporter's statistics for the admin pages: overall figures and one mailing's, read
through ``gateway.stats.reporter_client`` (the API's client, one connection pool) and parsed into
what the templates show. A reporter that is down, slow or answers something unexpected gives
``None``: the pages then say "statistics unavailable" instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar

import structlog

from gateway.stats.reporter_client import ReporterClient, ReporterError, ReporterUnavailable
from sms_events.vocabulary import MESSAGE_STATUSES

__all__ = [
    "DIMENSIONS",
    "STATUSES",
    "Bucket",
    "DimensionValue",
    "Failure",
    "Latency",
    "MailingStats",
    "Overview",
    "StatsClient",
    "parse_mailing_stats",
    "parse_overview",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")

STATUSES: Final = tuple(s.value for s in MESSAGE_STATUSES)
DIMENSIONS: Final = ("operator_code", "tag", "time_zone")


@dataclass(frozen=True, slots=True)
class Bucket:
    """Sends finished in one hour or minute."""

    at: datetime
    delivered: int
    failed: int


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    attempts: int
    final: int


@dataclass(frozen=True, slots=True)
class DimensionValue:
    value: str | None  # a tag of None: no tag
    messages: dict[str, int]
    delivery_rate: float | None


@dataclass(frozen=True, slots=True)
class Latency:
    """Delivery latency percentiles in seconds, read from log-spaced buckets (``resolution``:
    how far above the true value each may be)."""

    settled: int
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    resolution: float


@dataclass(frozen=True, slots=True)
class Overview:
    clients: int
    mailings: dict[str, int]
    messages: dict[str, int]
    delivery_rate: float | None
    sends_per_hour: list[Bucket] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MailingStats:
    mailing_id: int
    messages: dict[str, int]
    delivery_rate: float | None
    attempts_total: int
    failures: list[Failure]
    started_at: datetime | None
    completed_at: datetime | None
    time_to_complete_s: float | None
    sends_per_minute: list[Bucket] = field(default_factory=list)
    # Empty and None from a reporter that does not give them.
    by_dimension: dict[str, list[DimensionValue]] = field(default_factory=dict)
    unknown_dimension: dict[str, int] = field(default_factory=dict)  # values not recorded
    latency: Latency | None = None


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("count")
    return value


def _rate(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("rate")
    return float(value)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("time")
    return datetime.fromisoformat(value)


def _counts(value: Any, keys: tuple[str, ...] | None = None) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ValueError("counts")
    names = keys if keys is not None else tuple(str(k) for k in value)
    return {name: _count(value.get(name, 0)) for name in names}


def _buckets(value: Any, key: str) -> list[Bucket]:
    if not isinstance(value, list):
        raise ValueError("buckets")
    buckets = []
    for item in value:
        at = _time(item[key])
        if at is None:
            raise ValueError("bucket time")
        buckets.append(Bucket(at, _count(item["delivered"]), _count(item["failed"])))
    return sorted(buckets, key=lambda b: b.at)


def parse_overview(body: Any) -> Overview:
    """``GET /internal/v1/stats``; raises ``ValueError`` (or ``KeyError``/``TypeError``)."""
    return Overview(
        clients=_count(body["clients"]),
        mailings=_counts(body["mailings"]),
        messages=_counts(body["messages"], STATUSES),
        delivery_rate=_rate(body.get("delivery_rate")),
        sends_per_hour=_buckets(body.get("sends_per_hour", []), "hour"),
    )


def parse_mailing_stats(body: Any) -> MailingStats:
    """``GET /internal/v1/mailings/{id}/stats``; raises like ``parse_overview``."""
    failures = [
        Failure(str(f["reason"]), _count(f["attempts"]), _count(f["final"]))
        for f in body.get("failures", [])
    ]
    ttc = body.get("time_to_complete_s")
    return MailingStats(
        mailing_id=_count(body["mailing_id"]),
        messages=_counts(body["messages"], STATUSES),
        delivery_rate=_rate(body.get("delivery_rate")),
        attempts_total=_count(body.get("attempts_total", 0)),
        failures=sorted(failures, key=lambda f: (-f.final, -f.attempts, f.reason)),
        started_at=_time(body.get("started_at")),
        completed_at=_time(body.get("completed_at")),
        time_to_complete_s=_rate(ttc),
        sends_per_minute=_buckets(body.get("sends_per_minute", []), "minute"),
        by_dimension=_by_dimension(body.get("by_dimension") or {}),
        unknown_dimension=_counts((body.get("by_dimension") or {}).get("unknown", {}), STATUSES),
        latency=_latency(body.get("latency")),
    )


def _by_dimension(value: Any) -> dict[str, list[DimensionValue]]:
    if not isinstance(value, Mapping):
        raise ValueError("by_dimension")
    out: dict[str, list[DimensionValue]] = {}
    for name in DIMENSIONS:
        items = value.get(name, [])
        if not isinstance(items, list):
            raise ValueError("dimension")
        out[name] = [
            DimensionValue(
                None if item["value"] is None else str(item["value"]),
                _counts(item["messages"], STATUSES),
                _rate(item.get("delivery_rate")),
            )
            for item in items
        ]
    return out


def _latency(value: Any) -> Latency | None:
    if value is None:
        return None
    figures = [_rate(value[k]) for k in ("p50_s", "p90_s", "p99_s", "max_s", "resolution")]
    if any(f is None for f in figures):
        raise ValueError("latency")
    p50, p90, p99, top, resolution = (float(f or 0) for f in figures)
    return Latency(_count(value["settled"]), p50, p90, p99, top, resolution)


class StatsClient:
    """The statistics the admin pages show, read through the gateway's one reporter client and
    parsed for the templates; None when the reporter cannot answer (the page says so)."""

    def __init__(self, reporter: ReporterClient) -> None:
        self._reporter = reporter

    async def overview(self) -> Overview | None:
        try:
            body = await self._reporter.overall_stats()
        except (ReporterUnavailable, ReporterError):
            return None  # the client has logged why
        return _parse("stats", parse_overview, body)

    async def mailing(self, mailing_id: int) -> MailingStats | None:
        try:
            body = await self._reporter.mailing_stats(mailing_id)
        except (ReporterUnavailable, ReporterError):
            return None
        return _parse("mailing_stats", parse_mailing_stats, body)


def _parse(endpoint: str, parse: Callable[[Any], T], body: Any) -> T | None:
    if body is None:
        return None
    try:
        return parse(body)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("admin_stats_garbled", endpoint=endpoint, error=type(exc).__name__)
        return None
