"""GET /api/v1/audit/: who did what, read from the event store. Every command's events carry
their actor (an API key's name, or an admin's OIDC subject and email) in their metadata, so the
trail is as complete as the history and costs no table of its own."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import asyncpg
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from gateway.deps import Pool
from gateway.docs import BadRequest, json_content, responses
from gateway.errors import InvalidInput
from gateway.pagination import Cursor, InvalidPage
from gateway.routing import slash_routes

__all__ = ["AuditEntry", "entries", "router", "stream_of"]

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
route = slash_routes(router)

MAX_PAGE: Final = 500
EXAMPLE: Final = {
    "next": "http://127.0.0.1:8000/api/v1/audit/?cursor=YmVmb3JlOjQx",
    "results": [{"position": 42, "at": "2024-02-14T08:47:44.047000Z",
                 "actor": {"type": "api_key", "id": "crm", "email": None},
                 "event": "mailing.paused", "stream": "mailing-12", "request_id": "req-7"}],
}  # fmt: skip
_BAD_FILTER: Final = {
    400: {
        "model": BadRequest,
        "description": "A filter is invalid (named, with the reason)",
        "content": json_content({"since": ["Give a time zone, e.g. 2024-02-14T08:00:00Z."]}),
    }
}

# Newest first; each filter is optional. The partial indexes on events (events_0004_audit)
# serve the scan backwards from the cursor, for one actor or for all.
_PAGE = """
SELECT global_position, recorded_at, metadata -> 'actor' AS actor, type, stream_id,
       metadata ->> 'correlation_id' AS request_id
FROM events
WHERE metadata ? 'actor'
  AND ($1::text IS NULL OR metadata -> 'actor' ->> 'id' = $1)
  AND ($2::text IS NULL OR metadata -> 'actor' ->> 'email' = $2)
  AND ($3::text IS NULL OR stream_id = $3)
  AND ($4::timestamptz IS NULL OR recorded_at >= $4)
  AND ($5::timestamptz IS NULL OR recorded_at < $5)
  AND ($6::bigint IS NULL OR global_position < $6)
ORDER BY global_position DESC
LIMIT $7
"""


class Actor(BaseModel):
    type: str = Field(description="`api_key` or `oidc`")
    id: str = Field(description="The key's name, or the admin's OIDC subject")
    email: str | None = Field(default=None, description="The admin's email (OIDC)")


class AuditEntry(BaseModel):
    position: int = Field(description="The event's position in the store")
    at: datetime = Field(description="When the platform recorded it")
    actor: Actor
    event: str = Field(description="Event type, e.g. `mailing.paused`")
    stream: str = Field(description="What it changed, e.g. `mailing-12`, `client-7`")
    request_id: str | None = Field(description="The request's X-Request-ID")


class AuditPage(BaseModel):
    next: str | None = Field(description="The next (older) page, or null")
    results: list[AuditEntry]


def stream_of(mailing_id: int | None = None, client_id: int | None = None) -> str | None:
    """The stream whose history a mailing's or a client's filter means (``None``: all)."""
    if mailing_id is not None:
        return f"mailing-{mailing_id}"
    return f"client-{client_id}" if client_id is not None else None


async def entries(
    pool: asyncpg.Pool,
    *,
    limit: int,
    stream: str | None = None,
    actor: str | None = None,
    email: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
) -> list[AuditEntry]:
    """Who did what, newest first: the API's audit and the admin's History on a mailing or a
    client page both read it here."""
    rows = await pool.fetch(_PAGE, actor, email, stream, since, until, before, limit)
    return [
        AuditEntry(
            position=r["global_position"],
            at=r["recorded_at"],
            actor=Actor.model_validate(r["actor"]),
            event=r["type"],
            stream=r["stream_id"],
            request_id=r["request_id"],
        )
        for r in rows
    ]


@route(
    "",
    ["GET"],
    response_model=AuditPage,
    responses=responses(200, EXAMPLE, AuditPage, 400, documented=_BAD_FILTER),
    name="list_audit",
    summary="Who did what (admin scope)",
    description="Every command's events with their actor, newest first, filtered by actor "
    "(key name or OIDC subject), email, mailing, client and time; paged by `next`.",
)
async def audit(
    request: Request,
    pool: Pool,
    actor: Annotated[
        str | None, Query(max_length=200, description="Key name or OIDC subject")
    ] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    mailing_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    client_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    since: Annotated[datetime | None, Query(description="Recorded at or after")] = None,
    until: Annotated[datetime | None, Query(description="Recorded before")] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> Any:
    if mailing_id is not None and client_id is not None:
        raise InvalidInput({"client_id": ["Filter by a mailing or by a client, not both."]})
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput({name: ["Give a time zone, e.g. 2024-02-14T08:00:00Z."]})
    before = None
    if cursor is not None:
        try:
            decoded = Cursor.decode(cursor)
        except InvalidPage:
            decoded = None
        if decoded is None or decoded.direction != "before":
            raise InvalidInput({"cursor": ["Invalid cursor: use the `next` link as it is."]})
        before = decoded.boundary
    found = await entries(
        pool,
        limit=page_size + 1,
        stream=stream_of(mailing_id, client_id),
        actor=actor,
        email=email,
        since=since,
        until=until,
        before=before,
    )
    more = len(found) > page_size
    found = found[:page_size]
    next_url = None
    if more:
        base = request.url.remove_query_params("cursor")
        next_cursor = Cursor("before", found[-1].position).encode()
        next_url = str(base.include_query_params(cursor=next_cursor))
    return AuditPage(next=next_url, results=found)
