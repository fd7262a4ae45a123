"""The reporter's internal read API as it crosses services: the answers' schemas, declared once.

The reporter serves them as its OpenAPI document (``GET /openapi.json``) and its tests check
its real answers against them; the gateway's reporter client parses the answers with them.
Unknown fields are refused (``extra="forbid"``) and counts must be JSON integers (``StrictInt``:
no booleans, no strings): an answer that drifts from the schema fails the reporter's contract
test, and reads as garbled in the gateway, rather than passing through unnoticed."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt
from pydantic.json_schema import models_json_schema

__all__ = [
    "PATHS",
    "ApiError",
    "ByDimension",
    "Counters",
    "DailySegments",
    "DimensionValue",
    "FailureReason",
    "HourlySends",
    "LatencyPercentiles",
    "MailingCounters",
    "MailingStats",
    "Message",
    "MessagePage",
    "MinuteSends",
    "OverallStats",
    "openapi",
]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MailingCounters(_Answer):
    """One mailing's counters, as projected from its message events."""

    clients_count: StrictInt = Field(ge=0)
    created_messages: StrictInt = Field(ge=0)
    scheduled_messages: StrictInt = Field(ge=0)
    delivered_messages: StrictInt = Field(ge=0)
    undelivered_messages: StrictInt = Field(ge=0)
    cancelled_messages: StrictInt = Field(ge=0)
    attempts_total: StrictInt = Field(ge=0)
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    completed_at: datetime | None
    resolved_at: datetime | None = Field(
        description="When the scheduler resolved the audience (null: not yet)"
    )


class Counters(RootModel[dict[str, MailingCounters]]):
    """Counters by mailing id; ids the reporter does not know are absent."""


class Message(_Answer):
    """One message, in the seed API's field order."""

    id: StrictInt
    datetime_send: datetime | None
    status: str
    mailing_id: StrictInt
    client_id: StrictInt
    attempts: StrictInt = Field(ge=0)
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class MessagePage(_Answer):
    """A page of a mailing's messages, newest first; ``?before=next_before`` is the next page,
    ``?after=previous_after`` the previous one (null: none)."""

    count: StrictInt = Field(ge=0, description="Messages the filter selects in all")
    results: list[Message]
    next_before: StrictInt | None = Field(ge=0)
    previous_after: StrictInt | None = Field(ge=0)


class HourlySends(_Answer):
    hour: datetime
    delivered: StrictInt = Field(ge=0)
    failed: StrictInt = Field(ge=0)


class DailySegments(_Answer):
    day: date = Field(description="A UTC day, YYYY-MM-DD")
    segments: StrictInt = Field(ge=0, description="SMS segments of the messages delivered that day")


class OverallStats(_Answer):
    """Figures over every mailing: now, or as they were at `as_of`."""

    clients: StrictInt = Field(ge=0)
    mailings: dict[str, StrictInt] = Field(description="Mailings by state")
    messages: dict[str, StrictInt] = Field(description="Messages by status: SC, DL, ND, CA")
    delivery_rate: float | None = Field(description="DL / (DL + ND); null before any result")
    sends_per_hour: list[HourlySends] = Field(description="The last 24 hours, oldest first")
    segments_per_day: list[DailySegments] = Field(
        description="SMS segments delivered on each of the last 7 days (UTC), today last"
    )


class FailureReason(_Answer):
    reason: str = Field(description="Normalised provider answer, e.g. `HTTP 503`, `timeout`")
    attempts: StrictInt = Field(
        ge=0, description="Failed attempts with this reason (retried or not)"
    )
    final: StrictInt = Field(
        ge=0, description="Messages that ended undelivered (ND) with this reason"
    )


class MinuteSends(_Answer):
    minute: datetime
    delivered: StrictInt = Field(ge=0)
    failed: StrictInt = Field(ge=0)


class DimensionValue(_Answer):
    value: str | None = Field(description="The client's value (a tag of null: no tag)")
    messages: dict[str, StrictInt] = Field(description="Messages by status: SC, DL, ND, CA")
    delivery_rate: float | None = Field(description="DL / (DL + ND); null before any result")


class ByDimension(_Answer):
    operator_code: list[DimensionValue]
    tag: list[DimensionValue]
    time_zone: list[DimensionValue]
    unknown: dict[str, StrictInt] = Field(
        description="Messages by status whose client's values were not recorded (scheduled "
        "before the platform kept them): in none of the lists"
    )


class LatencyPercentiles(_Answer):
    settled: StrictInt = Field(
        ge=0, description="Messages delivered or finally undelivered, measured"
    )
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    resolution: float = Field(
        description="Read from log-spaced buckets (ten per decade from 0.1 s): each figure is "
        "the upper edge of its bucket, at most this fraction above the true value"
    )


class MailingStats(_Answer):
    """One mailing's figures: now, or as they were at `as_of`."""

    mailing_id: StrictInt
    messages: dict[str, StrictInt] = Field(description="Messages by status: SC, DL, ND, CA")
    delivery_rate: float | None = Field(description="DL / (DL + ND); null before any result")
    attempts_total: StrictInt = Field(ge=0)
    failures: list[FailureReason] = Field(description="Top 20 reasons, most frequent first")
    started_at: datetime | None
    completed_at: datetime | None
    time_to_complete_s: float | None = Field(description="From datetime_start to completion")
    sends_per_minute: list[MinuteSends]
    segments_per_message: StrictInt | None = Field(
        description="SMS segments each message takes (its text's encoding and length)"
    )
    segments_sent: StrictInt | None = Field(
        description="SMS segments of the delivered messages: DL times segments_per_message"
    )
    by_dimension: ByDimension = Field(
        description="Messages by status per operator code, tag and time zone: the client's "
        "values when its message was scheduled, the largest 100 of each"
    )
    latency: LatencyPercentiles | None = Field(
        description="Seconds from each message's first due time to the provider answer that "
        "settled it (delivered: sent, undelivered: failed); null before any"
    )


class ApiError(_Answer):
    error: str
    parameter: str | None = None
    reason: str | None = None
    mailing_id: StrictInt | None = None


PATHS: Final[dict[str, tuple[str, type[BaseModel]]]] = {
    "/internal/v1/stats": ("Figures over every mailing", OverallStats),
    "/internal/v1/mailings/counters": ("Counters of several mailings (?ids=1,2,3)", Counters),
    "/internal/v1/mailings/{mailing_id}/messages": ("A page of a mailing's messages", MessagePage),
    "/internal/v1/mailings/{mailing_id}/stats": ("One mailing's figures", MailingStats),
}
"""Each path of the API (all GET) and the model of its 200 answer."""


def openapi() -> dict[str, Any]:
    """The API's OpenAPI 3.1 document, its schemas generated from the models above."""
    models: list[type[BaseModel]] = [model for _, model in PATHS.values()] + [ApiError]
    _, schemas = models_json_schema(
        [(m, "serialization") for m in models], ref_template="#/components/schemas/{model}"
    )

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return {
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            }
        }

    paths: dict[str, Any] = {}
    for path, (summary, model) in PATHS.items():
        responses: dict[str, Any] = {
            "200": {"description": "OK", **ref(model)},
            "400": {"description": "A bad parameter", **ref(ApiError)},
            "401": {"description": "No or wrong bearer token", **ref(ApiError)},
        }
        if path.endswith("/stats") and "{mailing_id}" in path:
            responses["404"] = {"description": "Unknown mailing", **ref(ApiError)}
        parameters = (
            [{"name": "mailing_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
            if "{mailing_id}" in path
            else []
        )
        paths[path] = {
            "get": {"summary": summary, "parameters": parameters, "responses": responses}
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Reporter internal API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas.get("$defs", {})},
    }
