"""POST /api/v1/mailings/preview/: what a mailing would do, before it is created.

The audience is read as grouped counts (one statement: the clients counted per zone, operator
code and tag in one index-only scan, then ``GROUPING SETS`` over those few rows), never client
by client;
``gateway.mailings.forecast`` turns the per-zone counts into departures per hour. Nothing is
stored and no event is appended.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import asyncpg
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from gateway.config import Settings
from gateway.deps import Pool
from gateway.docs import responses
from gateway.idempotency import NOT_KEPT_FORECAST, checked_key
from gateway.mailings.forecast import Departures, cost, departures
from gateway.mailings.rules import MailingFields, new_mailing
from gateway.mailings.schemas import documented_errors, mailing_body, parse_change
from gateway.responses import JSON
from gateway.routing import log_fields, read_json, slash_routes
from sms_events.audience import matches_sql, parse_client_filter
from sms_events.segments import measure
from sms_events.window import send_window

__all__ = ["TOP_TAGS", "audience_groups", "forecast", "router"]

router = APIRouter(prefix="/api/v1/mailings", tags=["mailings"])
route = slash_routes(router)

TOP_TAGS: Final = 100  # tags listed by name; the others are summed in one `null`-named line

# GROUPING(time_zone, operator_code, tag) of each grouping set; _OPTED_OUT marks the row
# counting the matching clients whose phone is on the suppression list.
_BY_ZONE, _BY_CODE, _BY_TAG, _OPTED_OUT = 0b011, 0b101, 0b110, -1
_GROUPS_SQL: Final = f"""
    WITH combos AS (
        -- One row per (zone, code, tag) present: an index-only scan of gateway_clients_groups
        -- that groups as it reads.
        SELECT c.time_zone, c.operator_code, c.tag, count(*) AS n
          FROM gateway_clients c
         WHERE {matches_sql(1, "c")}
         GROUP BY c.time_zone, c.operator_code, c.tag
    ), opted AS (
        -- The opted-out among them, read from the suppression list (far shorter than the
        -- base) through the unique phone index, so the scan above stays index-only.
        SELECT c.time_zone, c.operator_code, c.tag, count(*) AS n
          FROM gateway_opt_outs o JOIN gateway_clients c ON c.phone = o.phone
         WHERE o.opted_out AND {matches_sql(1, "c")}
         GROUP BY c.time_zone, c.operator_code, c.tag
    ), net AS (
        SELECT b.time_zone, b.operator_code, b.tag, b.n - coalesce(o.n, 0) AS n
          FROM combos b LEFT JOIN opted o
            ON (o.time_zone, o.operator_code, o.tag)
               IS NOT DISTINCT FROM (b.time_zone, b.operator_code, b.tag)
    ), grouped AS (
        SELECT GROUPING(time_zone, operator_code, tag) AS g,
               time_zone, operator_code, tag, sum(n) AS n
          FROM net WHERE n > 0
         GROUP BY GROUPING SETS ((time_zone), (operator_code), (tag))
    ), ranked AS (
        SELECT *, row_number() OVER (PARTITION BY g ORDER BY n DESC, tag) AS rank FROM grouped
    )
    SELECT g, time_zone, operator_code, tag, n, false AS others
      FROM ranked WHERE g <> {_BY_TAG} OR rank <= $2
    UNION ALL
    SELECT g, NULL, NULL, NULL, sum(n), true FROM ranked
     WHERE g = {_BY_TAG} AND rank > $2 GROUP BY g
    UNION ALL
    SELECT {_OPTED_OUT}, NULL, NULL, NULL, coalesce(sum(n), 0), false FROM opted
"""

EXAMPLE: Final[dict[str, Any]] = {
    "audience": {
        "total": 3,
        "by_operator_code": [{"operator_code": "912", "count": 2},
                             {"operator_code": "999", "count": 1}],
        "by_tag": [{"tag": "vip", "count": 2}, {"tag": None, "count": 1}],
        "other_tags": 0,
        "opted_out": 1,
        "by_time_zone": [{"time_zone": "Asia/Vladivostok", "count": 1,
                          "first_send": None},
                         {"time_zone": "Europe/Moscow", "count": 2,
                          "first_send": "2024-03-12T06:00:00Z"}],
    },
    "schedule": {
        "send_rate": 0,
        "first_send": "2024-03-12T06:00:00Z",
        "last_send": "2024-03-12T06:00:00Z",
        "hours": [{"hour": "2024-03-12T06:00:00Z", "messages": 2}],
        "more_hours": False,
    },
    "unsendable": {
        "total": 1,
        "reasons": [{"reason": "no_window_before_end", "count": 1,
                     "time_zones": ["Asia/Vladivostok"]}],
    },
    "encoding": "GSM-7",
    "characters": 4,
    "segments": 1,
    "cost": {"messages": 2, "segments": 2, "price_per_segment": "0.50", "total": "1.00",
             "currency": "RUB"},
}  # fmt: skip


class Preview(BaseModel):
    """The forecast of a mailing (see the operation's description for each part)."""

    model_config = {"json_schema_extra": {"examples": [EXAMPLE]}}

    audience: dict[str, Any] = Field(
        description="`total`; counts `by_operator_code`, `by_tag` (the top 100; "
        "`other_tags` sums the rest; a `null` tag is clients without one) and `by_time_zone`, "
        "each zone with its first send moment (null: none before the end); `opted_out`: "
        "matching clients left out because their phone is on the suppression list (not in "
        "`total` nor in the counts)"
    )
    schedule: dict[str, Any] = Field(
        description="`send_rate` (messages/s, 0: no limit), `first_send`, `last_send` (when "
        "the last message would leave), and "
        "`hours`: messages leaving per UTC hour, zero-filled from the first (at most 744; "
        "`more_hours` says whether later ones were cut off)"
    )
    unsendable: dict[str, Any] = Field(
        description="Recipients with no send moment before the end: `total`, and `reasons`: "
        "`no_window_before_end` (their zone's window does not open before the end), "
        "`send_rate_too_low` (the rate cannot reach them in their windows), "
        "`unknown_time_zone`; each with its count and zones"
    )
    encoding: str
    characters: int
    segments: int
    cost: dict[str, Any] = Field(
        description="`messages` that would be sent, their `segments`, `price_per_segment` "
        "(SMS_PRICE_PER_SEGMENT), `total` and `currency` (amounts as decimal strings)"
    )


async def audience_groups(pool: asyncpg.Pool, client_filter: str | None) -> list[asyncpg.Record]:
    """The matching clients counted by zone, by operator code and by tag (top tags only)."""
    items = sorted(parse_client_filter(client_filter))
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        return list(await conn.fetch(_GROUPS_SQL, items, TOP_TAGS))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}" if amount == amount.quantize(Decimal("0.01")) else str(amount)


def render(
    mailing: MailingFields,
    groups: list[asyncpg.Record],
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    """The answer: the grouped audience, its departures, what cannot be sent, and the cost."""
    zones = {r["time_zone"]: int(r["n"]) for r in groups if r["g"] == _BY_ZONE}
    window = send_window(mailing.send_interval_time_start, mailing.send_interval_time_end)
    rate = settings.dispatch_rate_limit
    plan = departures(
        zones,
        start=mailing.datetime_start,
        end=mailing.datetime_end,
        window=window,
        now=now,
        rate=rate,
    )
    hours, more = plan.hour_list(max(now, mailing.datetime_start))
    length = measure(mailing.text)
    price = settings.sms_price_per_segment
    sent = plan.sendable
    return {
        "audience": _audience(groups, zones, plan),
        "schedule": {
            "send_rate": rate,
            "first_send": _iso(min((o for o in plan.opens.values() if o), default=None))
            if plan.hours
            else None,
            "last_send": _iso(plan.last),
            "hours": [{"hour": _iso(h), "messages": n} for h, n in hours],
            "more_hours": more,
        },
        "unsendable": {
            "total": sum(sum(z.values()) for z in plan.unsendable.values()),
            "reasons": [
                {"reason": reason.value, "count": sum(z.values()), "time_zones": sorted(z)}
                for reason, z in plan.unsendable.items()
            ],
        },
        **length.to_json(),
        "cost": {
            "messages": sent,
            "segments": sent * length.segments,
            "price_per_segment": _money(price),
            "total": _money(cost(sent, length.segments, price)),
            "currency": settings.sms_price_currency,
        },
    }


def _audience(
    groups: list[asyncpg.Record],
    zones: dict[str, int],
    plan: Departures,
) -> dict[str, Any]:
    codes = sorted(
        ((r["operator_code"], int(r["n"])) for r in groups if r["g"] == _BY_CODE),
        key=lambda item: (-item[1], item[0]),
    )
    tags = [r for r in groups if r["g"] == _BY_TAG and not r["others"]]
    others = sum(int(r["n"]) for r in groups if r["g"] == _BY_TAG and r["others"])
    return {
        "total": sum(zones.values()),
        "by_operator_code": [{"operator_code": c, "count": n} for c, n in codes],
        "by_tag": [{"tag": r["tag"], "count": int(r["n"])} for r in tags],
        "other_tags": others,
        "opted_out": sum(int(r["n"]) for r in groups if r["g"] == _OPTED_OUT),
        "by_time_zone": [
            {"time_zone": zone, "count": n, "first_send": _iso(plan.opens.get(zone))}
            for zone, n in sorted(zones.items(), key=lambda item: (-item[1], item[0]))
        ],
    }


@route(
    "/preview",
    ["POST"],
    summary="Forecast a mailing before creating it",
    description=(
        "Takes the body of a create and stores nothing. Answers the audience (total, by "
        "operator code, tag and time zone; opted-out phones counted apart), when the "
        "messages would leave (per UTC hour, from "
        "each zone's window and the send rate `DISPATCH_RATE_LIMIT`; 0 means no limit, so a "
        "zone's messages are counted in the hour its window opens), who would get no message "
        "before the end and why, the text's encoding, characters and SMS segments, and the "
        "cost at `SMS_PRICE_PER_SEGMENT`. Computed from counts grouped by zone, operator code "
        "and tag, never client by client. Invalid bodies are 400 as for a create."
    ),
    responses=responses(200, EXAMPLE, Preview, 400, 413, 415, documented=documented_errors()),
    openapi_extra=mailing_body(partial=False),
    dependencies=[Depends(checked_key(NOT_KEPT_FORECAST))],
)
async def preview_mailing(request: Request, pool: Pool) -> Response:
    log_fields(request, command="preview")
    settings: Settings = request.app.state.settings
    return JSON(await forecast(pool, await read_json(request), settings, datetime.now(UTC)))


async def forecast(
    pool: asyncpg.Pool, data: Any, settings: Settings, now: datetime
) -> dict[str, Any]:
    """The forecast of a mailing created from ``data`` now; raises ``InvalidInput`` as a
    create would."""
    change = parse_change(data, require=True)
    mailing = new_mailing(change, now, max_segments=settings.mailing_max_segments)
    groups = await audience_groups(pool, mailing.client_filter)
    return render(mailing, groups, settings, now)
