"""/api/v1/stats/ and /api/v1/mailings/{id}/stats/: figures read from the reporter's
projections (never a scan of messages), so they answer in milliseconds at any volume."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from gateway.deps import Pool, Reporter
from gateway.docs import responses
from gateway.errors import InvalidInput
from gateway.mailings.commands import MailingNotFound
from gateway.mailings.repository import get_mailing
from gateway.mailings.schemas import documented_errors
from gateway.responses import JSON
from gateway.routing import path_id, slash_routes
from sms_events.replay import parse_moment
from sms_events.segments import measure

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


class HourlySends(BaseModel):
    hour: str
    delivered: int
    failed: int


class MinuteSends(BaseModel):
    minute: str
    delivered: int
    failed: int


class DailySegments(BaseModel):
    day: str = Field(description="A UTC day, YYYY-MM-DD")
    segments: int = Field(description="SMS segments of the messages delivered that day")


class FailureReason(BaseModel):
    reason: str = Field(description="Normalised provider answer, e.g. `HTTP 503`, `timeout`")
    attempts: int = Field(description="Failed attempts with this reason (retried or not)")
    final: int = Field(description="Messages that ended undelivered (ND) with this reason")


class DimensionValue(BaseModel):
    value: str | None = Field(description="The client's value (a tag of null: no tag)")
    messages: dict[str, int] = Field(description="Messages by status: SC, DL, ND, CA")
    delivery_rate: float | None = Field(description="DL / (DL + ND); null before any result")


class ByDimension(BaseModel):
    operator_code: list[DimensionValue]
    tag: list[DimensionValue]
    time_zone: list[DimensionValue]
    unknown: dict[str, int] = Field(
        description="Messages by status whose client's values were not recorded (scheduled "
        "before the platform kept them): in none of the lists"
    )


class LatencyPercentiles(BaseModel):
    settled: int = Field(description="Messages delivered or finally undelivered, measured")
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    resolution: float = Field(
        description="Read from log-spaced buckets (ten per decade from 0.1 s): each figure is "
        "the upper edge of its bucket, at most this fraction above the true value"
    )


class OverallStats(BaseModel):
    clients: int
    mailings: dict[str, int] = Field(description="Mailings by state")
    messages: dict[str, int] = Field(description="Messages by status: SC, DL, ND, CA")
    delivery_rate: float | None = Field(description="DL / (DL + ND); null before any result")
    sends_per_hour: list[HourlySends] = Field(description="The last 24 hours, oldest first")
    segments_per_day: list[DailySegments] = Field(
        description="SMS segments delivered on each of the last 7 days (UTC), today last"
    )


class MailingStats(BaseModel):
    mailing_id: int
    messages: dict[str, int]
    delivery_rate: float | None
    attempts_total: int
    failures: list[FailureReason] = Field(description="Top 20 reasons, most frequent first")
    started_at: str | None
    completed_at: str | None
    time_to_complete_s: float | None = Field(description="From datetime_start to completion")
    sends_per_minute: list[MinuteSends]
    segments_per_message: int | None = Field(
        description="SMS segments each message takes (its text's encoding and length)"
    )
    segments_sent: int | None = Field(
        description="SMS segments of the delivered messages: DL times segments_per_message"
    )
    by_dimension: ByDimension | None = Field(
        default=None,
        description="Messages by status per operator code, tag and time zone: the client's "
        "values when its message was scheduled, the largest 100 of each",
    )
    latency: LatencyPercentiles | None = Field(
        default=None,
        description="Seconds from each message's first due time to the provider answer that "
        "settled it (delivered: sent, undelivered: failed); null before any",
    )


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


def _empty_mailing_stats(mailing_id: int, text: str) -> dict[str, Any]:
    return {
        "mailing_id": mailing_id,
        "messages": {"SC": 0, "DL": 0, "ND": 0, "CA": 0},
        "delivery_rate": None,
        "attempts_total": 0,
        "failures": [],
        "started_at": None,
        "completed_at": None,
        "time_to_complete_s": None,
        "sends_per_minute": [],
        "segments_per_message": measure(text).segments,
        "segments_sent": 0,
        "by_dimension": {
            "operator_code": [],
            "tag": [],
            "time_zone": [],
            "unknown": {"SC": 0, "DL": 0, "ND": 0, "CA": 0},
        },
        "latency": None,
    }


@route(
    "/stats",
    ["GET"],
    summary="Overall statistics",
    name="get_overall_stats",
    description="Clients, mailings by state, messages by status, delivery rate, sends per "
    "hour over the last 24 hours and SMS segments per day over the last 7 (up to `as_of` with "
    "it). 400 for a bad `as_of`, 503 when the "
    "statistics service cannot be reached.",
    responses=responses(200, OVERALL_EXAMPLE, OverallStats, 400, 503, documented=_ERRORS),
)
async def overall(reporter: Reporter, as_of: AsOfParam = None) -> Response:
    return JSON(await reporter.overall_stats(as_of=_moment(as_of)))


@route(
    "/mailings/{mailing_id}/stats",
    ["GET"],
    summary="Statistics of one mailing",
    name="get_mailing_stats",
    description="Messages by status, delivery rate, attempts, failures grouped by reason, time "
    "to complete, sends per minute over the mailing's life, SMS segments sent, messages by "
    "status per operator code, tag and time zone, and delivery latency percentiles (as they "
    "were at `as_of` with it). 400 for a bad `as_of`.",
    responses=responses(200, MAILING_EXAMPLE, MailingStats, 400, 404, 503, documented=_ERRORS),
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
    return JSON(stats if stats is not None else _empty_mailing_stats(wanted, row.text))
