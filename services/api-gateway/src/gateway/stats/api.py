"""/api/v1/stats/ and /api/v1/mailings/{id}/stats/: figures read from the reporter's
projections (never a scan of messages), so they answer in milliseconds at any volume."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Query, Response

from gateway.deps import Pool, Reporter
from gateway.docs import responses
from gateway.errors import InvalidInput
from gateway.mailings.commands import MailingNotFound
from gateway.mailings.repository import get_mailing
from gateway.mailings.schemas import documented_errors
from gateway.responses import JSON
from gateway.routing import path_id, slash_routes
from sms_events import reporter_contract as contract
from sms_events.replay import parse_moment
from sms_events.segments import measure
from sms_events.vocabulary import MESSAGE_STATUSES

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["statistics"])
route = slash_routes(router)
_ERRORS: Final = documented_errors()

OVERALL_EXAMPLE: Final = {
    "clients": 3,
    "mailings": {"scheduled": 1, "running": 0, "paused": 0, "finished": 2, "cancelled": 0},
    "messages": {"SC": 3, "DL": 5, "ND": 1, "CA": 0},
    "delivery_rate": 0.8333,
    "sends_per_hour": [{"hour": "2024-02-14T08:00:00Z", "delivered": 5, "failed": 1}],
    "segments_per_day": [{"day": "2024-02-14", "segments": 7}],
}
MAILING_EXAMPLE: Final = {
    "mailing_id": 1,
    "messages": {"SC": 0, "DL": 3, "ND": 1, "CA": 0},
    "delivery_rate": 0.75,
    "attempts_total": 6,
    "failures": [{"reason": "HTTP 503", "attempts": 2, "final": 0},
                 {"reason": "HTTP 400: invalid phone", "attempts": 1, "final": 1}],
    "started_at": "2024-02-14T08:47:44.047000Z",
    "completed_at": "2024-02-14T08:47:46.100000Z",
    "time_to_complete_s": 2.05,
    "sends_per_minute": [{"minute": "2024-02-14T08:47:00Z", "delivered": 3, "failed": 1}],
    "segments_per_message": 2,
    "segments_sent": 6,
    "by_dimension": {
        "operator_code": [{"value": "999", "messages": {"SC": 0, "DL": 2, "ND": 1, "CA": 0},
                           "delivery_rate": 0.6667},
                          {"value": "912", "messages": {"SC": 0, "DL": 1, "ND": 0, "CA": 0},
                           "delivery_rate": 1.0}],
        "tag": [{"value": "vip", "messages": {"SC": 0, "DL": 3, "ND": 1, "CA": 0},
                 "delivery_rate": 0.75}],
        "time_zone": [{"value": "Europe/Moscow", "messages": {"SC": 0, "DL": 3, "ND": 1, "CA": 0},
                       "delivery_rate": 0.75}],
        "unknown": {"SC": 0, "DL": 0, "ND": 0, "CA": 0},
    },
    "latency": {"settled": 4, "p50_s": 1.259, "p90_s": 2.512, "p99_s": 2.512, "max_s": 2.512,
                "resolution": 0.259},
}  # fmt: skip


AsOfParam = Annotated[
    str | None,
    Query(
        description="Answer as the figures were at this moment (ISO 8601 with an offset, not "
        "in the future; taken to the second), from the event history: what the platform had "
        "recorded by then"
    ),
]


def _moment(as_of: str | None) -> datetime | None:
    if as_of is None:
        return None
    try:
        return parse_moment(as_of, datetime.now(UTC))
    except ValueError as exc:
        raise InvalidInput({"as_of": [f"as_of {exc}."]}) from None


def _no_messages_yet(mailing_id: int, text: str) -> contract.MailingStats:
    """A mailing's figures before the reporter has seen any of its messages."""
    none = {status.value: 0 for status in MESSAGE_STATUSES}
    return contract.MailingStats(
        mailing_id=mailing_id,
        messages=none,
        delivery_rate=None,
        attempts_total=0,
        failures=[],
        started_at=None,
        completed_at=None,
        time_to_complete_s=None,
        sends_per_minute=[],
        segments_per_message=measure(text).segments,
        segments_sent=0,
        by_dimension=contract.ByDimension(operator_code=[], tag=[], time_zone=[], unknown=none),
        latency=None,
    )


@route(
    "/stats",
    ["GET"],
    summary="Overall statistics",
    name="get_overall_stats",
    description="Clients, mailings by state, messages by status, delivery rate, sends per "
    "hour over the last 24 hours and SMS segments per day over the last 7 (up to `as_of` with "
    "it). 400 for a bad `as_of`, 503 when the "
    "statistics service cannot be reached.",
    responses=responses(200, OVERALL_EXAMPLE, contract.OverallStats, 400, 503, documented=_ERRORS),
)
async def overall(reporter: Reporter, as_of: AsOfParam = None) -> Response:
    return _answer(await reporter.overall_stats(as_of=_moment(as_of)))


@route(
    "/mailings/{mailing_id}/stats",
    ["GET"],
    summary="Statistics of one mailing",
    name="get_mailing_stats",
    description="Messages by status, delivery rate, attempts, failures grouped by reason, time "
    "to complete, sends per minute over the mailing's life, SMS segments sent, messages by "
    "status per operator code, tag and time zone, and delivery latency percentiles (as they "
    "were at `as_of` with it). 400 for a bad `as_of`.",
    responses=responses(
        200, MAILING_EXAMPLE, contract.MailingStats, 400, 404, 503, documented=_ERRORS
    ),
)
async def mailing(
    mailing_id: str, pool: Pool, reporter: Reporter, as_of: AsOfParam = None
) -> Response:
    wanted = path_id(mailing_id, MailingNotFound)
    moment = _moment(as_of)
    row = await get_mailing(pool, wanted)
    if row is None:
        raise MailingNotFound(wanted)
    stats = await reporter.mailing_stats(wanted, as_of=moment)
    return _answer(stats if stats is not None else _no_messages_yet(wanted, row.text))


def _answer(figures: contract.OverallStats | contract.MailingStats) -> Response:
    # Python-mode dump, rendered by orjson like the reporter renders it: each timestamp reads
    # exactly as the reporter wrote it (UTC with Z, microseconds only when there are some).
    return JSON(figures.model_dump())
