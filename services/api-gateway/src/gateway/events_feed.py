"""GET /api/v1/events/: the whole history as the relay publishes it, from any point, so that
another project can replay it and then follow live (its own scope, ``events:read``: events
carry phones and texts). Reading and cursors live in sms_events.feed; this module parses the
query and answers."""

from __future__ import annotations

from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from gateway.deps import Pool
from gateway.docs import BadRequest, json_content, responses
from gateway.errors import InvalidInput
from gateway.responses import JSON
from gateway.routing import slash_routes
from sms_events.broker import envelope_of
from sms_events.contracts import registered_events
from sms_events.feed import InvalidCursor, cursor_of, parse_cursor, read_page
from sms_events.store import Checkpoint

__all__ = ["RELAY_SOURCE", "router"]

router = APIRouter(prefix="/api/v1/events", tags=["events"])
route = slash_routes(router)

RELAY_SOURCE: Final = "/sms/api-gateway"
"""The ``source`` of the CloudEvents this gateway's relay publishes, and of the feed's."""
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
# With a type filter a page examines at most this many events per one it may return: a rare
# type costs each request a bounded scan, and the cursor still moves past what it examined.
SCAN_FACTOR: Final = 10

EXAMPLE_CURSOR: Final = "00000000000003e9000000000000002a"
EXAMPLE: Final = {
    "events": [{"specversion": "1.0", "id": "0b5e8c6e-5b7a-4c1e-9d4f-3c2b1a098765",
                "source": RELAY_SOURCE, "type": "mailing.paused", "subject": "mailing-12",
                "time": "2024-02-14T08:47:44.047000Z", "datacontenttype": "application/json",
                "dataversion": 1, "sequence": 3, "correlationid": "req-7",
                "cursor": EXAMPLE_CURSOR,
                "data": {"mailing_id": 12, "paused_at": "2024-02-14T08:47:44.046000Z"}}],
    "next": EXAMPLE_CURSOR,
    "has_more": False,
}  # fmt: skip
_BAD_QUERY: Final = {
    400: {
        "model": BadRequest,
        "description": "A query parameter is invalid (named, with the reason)",
        "content": json_content({"type": ["Unknown event type 'mailing.sent'."]}),
    }
}


class EventPage(BaseModel):
    events: list[dict[str, Any]] = Field(
        description="CloudEvents exactly as published to `sms.events` (see docs/asyncapi.json), "
        "in publishing order; each carries its `cursor`"
    )
    next: str = Field(
        description="Where the next page starts (`after`): the last event examined, or `after` "
        "as given when there was none"
    )
    has_more: bool = Field(
        description="More events may follow at once; when false, poll again later from `next`"
    )


@route(
    "",
    ["GET"],
    response_model=EventPage,
    responses=responses(200, EXAMPLE, EventPage, 400, documented=_BAD_QUERY),
    name="list_events",
    summary="Every event, in publishing order, from any point (events:read scope)",
    description="The history as the outbox relay publishes it to `sms.events`, after the "
    "cursor `after` (from the beginning without it), optionally of some `type`s only. "
    "An event appears only once every event that could precede it has committed, so following "
    "`next` never skips one; to switch to a queue bound to `sms.events`, see the README.",
)
async def list_events(
    pool: Pool,
    after: Annotated[
        str | None, Query(max_length=64, description="A cursor: `next` of a page, or an event's")
    ] = None,
    type_: Annotated[
        list[str] | None,
        Query(alias="type", description="Event types, repeated or comma-separated"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response:
    start = _start(after)
    types = _types(type_)
    scan = None if types is None else SCAN_FACTOR * limit
    page = await read_page(pool, start, limit=limit, types=types, max_scanned=scan)
    # The envelopes' own JSON, as the relay sends it, spliced in without a second encoding.
    events = [orjson.Fragment(envelope_of(e, RELAY_SOURCE).to_json()) for e in page.events]
    return JSON({"events": events, "next": cursor_of(page.next), "has_more": page.has_more})


def _start(after: str | None) -> Checkpoint:
    if after is None:
        return Checkpoint()
    try:
        return parse_cursor(after)
    except InvalidCursor:
        raise InvalidInput(
            {"after": ["Invalid cursor: pass a page's `next` or an event's `cursor` as is."]}
        ) from None


def _types(raw: list[str] | None) -> frozenset[str] | None:
    if raw is None:
        return None
    types = frozenset(t.strip() for value in raw for t in value.split(",") if t.strip())
    known = {cls.event_type for cls in registered_events()}
    if unknown := sorted(types - known):
        raise InvalidInput({"type": [f"Unknown event type {t!r}." for t in unknown]})
    return types or None
