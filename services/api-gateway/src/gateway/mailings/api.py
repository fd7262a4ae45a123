"""/api/v1/mailings/: the old API's mailing endpoints, plus state, messages and lifecycle commands.

Mailings live in the gateway's read model; their counters and messages are the reporter's
(``gateway.stats.reporter_client``). Reads need the reporter and answer 503 without it. Commands do
not: they are committed whatever the reporter's health, and their answer then carries zero
counters and a state judged by the clock and the mailing's own flags.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeVar

import structlog
from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from gateway.deps import Pool, Reporter, max_segments
from gateway.docs import json_body, responses
from gateway.errors import InvalidInput
from gateway.idempotency import Idem
from gateway.mailings import commands, repository
from gateway.mailings.commands import MailingNotFound, state_of
from gateway.mailings.lifecycle import Command
from gateway.mailings.repository import MailingRow
from gateway.mailings.schemas import (
    DETAIL_EXAMPLE,
    MAILING_EXAMPLE,
    MESSAGES_EXAMPLE,
    PAGE_EXAMPLE,
    PATCHED_EXAMPLE,
    Mailing,
    MailingDetail,
    MailingMessagePage,
    MailingPage,
    ResendRequest,
    documented_errors,
    mailing_body,
)
from gateway.pagination import (
    InvalidPage,
    PageRequest,
    cursor_links,
    cursor_request,
    links,
    num_pages,
    page_request,
)
from gateway.responses import JSON
from gateway.routing import log_fields, path_id, read_json, slash_routes
from gateway.stats.reporter_client import (
    ZERO,
    Counters,
    MessagePage,
    ReporterClient,
    ReporterError,
    ReporterUnavailable,
)
from sms_events.segments import measure
from sms_events.vocabulary import MESSAGE_STATUSES

__all__ = ["DETAIL_MESSAGES", "STATUSES", "router"]

log = structlog.get_logger(__name__)

DETAIL_MESSAGES: Final = 100
DETAIL_FOLLOW_UPS: Final = 100
STATUSES: Final = tuple(s.value for s in MESSAGE_STATUSES)
A = TypeVar("A")
B = TypeVar("B")

router = APIRouter(prefix="/api/v1/mailings", tags=["mailings"])
route = slash_routes(router)
_ERRORS: Final = documented_errors()

_COUNTERS_NOTE: Final = (
    " The counters and `state` come from the statistics service; if it cannot be reached the "
    "answer is 503 (retry after `Retry-After`)."
)
_COMMAND_NOTE: Final = (
    " The change is committed even when the statistics service cannot be reached; the answer "
    "then shows zero counters and a `state` judged from the dates and the pause/cancel flags "
    "only (GET the mailing later for the real counters)."
)


def _mailing_id(raw: str) -> int:
    return path_id(raw, MailingNotFound)


def _now() -> datetime:
    return datetime.now(UTC)


def to_json(row: MailingRow, counters: Counters, now: datetime) -> dict[str, Any]:
    """The seed API's representation (key order included), then ``state``."""
    return {
        "id": row.id,
        "datetime_start": row.datetime_start,
        "datetime_end": row.datetime_end,
        "send_interval_time_start": row.send_interval_time_start,
        "send_interval_time_end": row.send_interval_time_end,
        "text": row.text,
        "client_filter": row.client_filter,
        **counters.to_json(),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "state": state_of(row, now, counters.all_messages_final).value,
        **measure(row.text).to_json(),
        "source_mailing_id": row.source_mailing_id,
        "source_statuses": row.source_statuses,
    }


def follow_up_json(row: MailingRow, counters: Counters, now: datetime) -> dict[str, Any]:
    """A follow-up as its original's detail shows it: its outcome, from its own counters."""
    return {
        "id": row.id,
        "source_statuses": row.source_statuses,
        "datetime_start": row.datetime_start,
        "state": state_of(row, now, counters.all_messages_final).value,
        **counters.to_json(),
    }


@contextlib.contextmanager
def _command(request: Request, mailing_id: int, command: str) -> Iterator[None]:
    """Every log line of the command, and the request's own line, name the mailing."""
    log_fields(request, mailing_id=mailing_id, command=command)
    with structlog.contextvars.bound_contextvars(mailing_id=mailing_id):
        yield


async def _counters_for_command(reporter: ReporterClient, mailing_id: int) -> Counters:
    """Best effort: a command must not depend on the statistics. Without them the command is
    judged as if some message were still to come (the only fact they add to the state), which
    at worst lets a cancel, pause or end move through on a mailing that has just finished
    early, where it changes nothing."""
    try:
        return (await reporter.counters([mailing_id]))[mailing_id]
    except (ReporterUnavailable, ReporterError):  # the client has logged the cause
        log.warning("mailing_counters_unknown", effect="answered with zero counters")
        return ZERO


async def _both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    # Both calls run to their end (no orphaned task); the first failure is raised.
    a, b = await asyncio.gather(first, second, return_exceptions=True)
    if isinstance(a, BaseException):
        raise a
    if isinstance(b, BaseException):
        raise b
    return a, b


def _status_filter(raw: str | None) -> str | None:
    if not raw:
        return None  # an empty filter is no filter, as django-filter does it
    if raw not in STATUSES:
        raise InvalidInput(
            {"status": [f'"{raw[:20]}" is not a valid choice; use one of {", ".join(STATUSES)}.']}
        )
    return raw


def _page(page: str | None, page_size: str | None) -> PageRequest:
    try:
        return page_request(page, page_size)
    except InvalidPage:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Invalid page.") from None


PageParam = Annotated[str | None, Query(description="Page number from 1, or `last`")]
PageSizeParam = Annotated[str | None, Query(description="Per page (default 25, at most 1000)")]
CursorParam = Annotated[
    str | None,
    Query(description="Where `next` or `previous` leads (opaque); `page` is ignored with it"),
]


@route(
    "",
    ["GET"],
    summary="List mailings",
    description="Newest first, 25 per page." + _COUNTERS_NOTE,
    responses=responses(200, PAGE_EXAMPLE, MailingPage, 404, 503, documented=_ERRORS),
)
async def list_mailings(
    request: Request,
    pool: Pool,
    reporter: Reporter,
    page: PageParam = None,
    page_size: PageSizeParam = None,
) -> Response:
    wanted = _page(page, page_size)
    try:
        count, number, rows = await repository.list_mailings(pool, wanted)
    except InvalidPage:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Invalid page.") from None
    # One call for the whole page, never one per mailing.
    counters = await reporter.counters([row.id for row in rows]) if rows else {}
    now = _now()
    following, previous = links(request.url, number, num_pages(count, wanted.size))
    return JSON(
        {
            "count": count,
            "next": following,
            "previous": previous,
            "results": [to_json(row, counters[row.id], now) for row in rows],
        }
    )


@route(
    "",
    ["POST"],
    summary="Create a mailing",
    description=(
        "Answers 201 with zero counters (the audience is resolved just after). A start in the "
        "past starts the mailing at once; the end must be in the future."
    ),
    status_code=status.HTTP_201_CREATED,
    responses=responses(201, MAILING_EXAMPLE, Mailing, 400, 409, 413, 415, documented=_ERRORS),
    openapi_extra=mailing_body(partial=False),
)
async def create_mailing(request: Request, pool: Pool, idempotency: Idem) -> Response:
    now = _now()
    data = await read_json(request)
    once = await idempotency.once(data, _created(now))
    row = await commands.create(pool, data, now=now, max_segments=max_segments(request), guard=once)
    log_fields(request, mailing_id=row.id, command="create")
    return once.response()


def _created(now: datetime) -> Callable[[MailingRow], Response]:
    """The answer to a new mailing (a create or a resend): rendered in its transaction."""
    return lambda row: JSON(to_json(row, ZERO, now), status_code=status.HTTP_201_CREATED)


@route(
    "/{mailing_id}",
    ["GET"],
    summary="Get a mailing with its newest messages",
    description=(
        f"`mailing_messages` holds the newest {DETAIL_MESSAGES} messages; `messages_url` pages "
        "through all of them." + _COUNTERS_NOTE
    ),
    responses=responses(200, DETAIL_EXAMPLE, MailingDetail, 404, 503, documented=_ERRORS),
)
async def get_mailing(
    mailing_id: str, request: Request, pool: Pool, reporter: Reporter
) -> Response:
    mid = _mailing_id(mailing_id)
    row = await repository.get_mailing(pool, mid)
    if row is None:
        raise MailingNotFound(mailing_id)
    follow_ups = await repository.follow_ups(pool, mid, DETAIL_FOLLOW_UPS)
    counters, newest = await _both(
        reporter.counters([mid, *(f.id for f in follow_ups)]),
        reporter.messages(mid, status=None, at=1, page_size=DETAIL_MESSAGES),
    )
    now = _now()
    return JSON(
        {
            **to_json(row, counters[mid], now),
            "mailing_messages": newest.results,
            "messages_url": str(request.url_for("list_mailing_messages", mailing_id=str(mid))),
            "follow_ups": [follow_up_json(f, counters[f.id], now) for f in follow_ups],
        }
    )


@route(
    "/{mailing_id}/messages",
    ["GET"],
    summary="List a mailing's messages",
    description=(
        "Newest first, 25 per page; `?status=` keeps one status. `next` and `previous` carry "
        "a `cursor` and cost the same at any depth; `?page=N` jumps to a page (the deeper, the "
        "slower)." + _COUNTERS_NOTE
    ),
    responses=responses(
        200, MESSAGES_EXAMPLE, MailingMessagePage, 400, 404, 503, documented=_ERRORS
    ),
)
async def list_mailing_messages(
    mailing_id: str,
    request: Request,
    pool: Pool,
    reporter: Reporter,
    message_status: Annotated[
        str | None,
        Query(
            alias="status",
            description="SC scheduled, DL delivered, ND not delivered, CA cancelled",
        ),
    ] = None,
    page: PageParam = None,
    page_size: PageSizeParam = None,
    cursor: CursorParam = None,
) -> Response:
    mid = _mailing_id(mailing_id)
    if await repository.get_mailing(pool, mid) is None:
        raise MailingNotFound(mailing_id)
    wanted_status = _status_filter(message_status)
    if cursor:
        try:
            at, size = cursor_request(cursor, page_size)
        except InvalidPage:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Invalid page.") from None
        result = await reporter.messages(mid, status=wanted_status, at=at, page_size=size)
    else:
        result = await _numbered_messages(reporter, mid, wanted_status, _page(page, page_size))
    following, previous = cursor_links(request.url, result.next_before, result.previous_after)
    return JSON(
        {"count": result.count, "next": following, "previous": previous, "results": result.results}
    )


async def _numbered_messages(
    reporter: ReporterClient, mailing_id: int, message_status: str | None, wanted: PageRequest
) -> MessagePage:
    """A page by number: the first one, or a jump (the reporter reads past the pages before
    it; ``last`` asks twice). Its neighbours are cursors, as every page's are."""
    number = wanted.number or 1
    result = await reporter.messages(
        mailing_id, status=message_status, at=number, page_size=wanted.size
    )
    if wanted.number is None and (last := num_pages(result.count, wanted.size)) != number:
        number = last  # ?page=last: the first answer told how many pages there are
        result = await reporter.messages(
            mailing_id, status=message_status, at=number, page_size=wanted.size
        )
    if number > num_pages(result.count, wanted.size):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Invalid page.")
    return result


async def _update(
    request: Request, pool: Pool, reporter: Reporter, raw_id: str, *, partial: bool
) -> Response:
    mid = _mailing_id(raw_id)
    with _command(request, mid, "patch" if partial else "put"):
        data = await read_json(request)
        counters = await _counters_for_command(reporter, mid)
        now = _now()
        final = counters.all_messages_final
        row = await commands.update(
            pool,
            mid,
            data,
            partial=partial,
            now=now,
            all_messages_final=final,
            max_segments=max_segments(request),
        )
        return JSON(to_json(row, counters, now))


_EDIT_RULES: Final = (
    " Before the start every field may change; from the start only `datetime_end` may move "
    "(after the start and into the future), until the mailing is finished or cancelled. "
    "Anything else is 400 with `detail` saying why."
)


@route(
    "/{mailing_id}/resend",
    ["POST"],
    summary="Send again to the recipients a mailing failed",
    description=(
        "Creates a follow-up mailing whose audience is exactly the recipients of this one whose "
        'messages ended in `statuses` (default `["ND"]`; `"CA"` may be added), not a new '
        "filter on the base; clients deleted since are left out. Optional `text`, "
        "`datetime_start`, `datetime_end`, `send_interval_time_start`/`_end` override the "
        "original's; left out: its text and window, a start now and an end after the "
        "original's duration. The follow-up has its own counters and statistics and names the "
        "original in `source_mailing_id`; the original's detail lists it in `follow_ups`. "
        "Answers 201 with zero counters, as a create."
    ),
    status_code=status.HTTP_201_CREATED,
    responses=responses(
        201,
        {**MAILING_EXAMPLE, "id": 2, "source_mailing_id": 1, "source_statuses": ["ND"]},
        Mailing,
        400,
        404,
        409,
        413,
        415,
        documented=_ERRORS,
    ),
    openapi_extra=json_body(
        ResendRequest,
        {
            "the undelivered, as they were": {"value": {}},
            "undelivered and cancelled, new text": {
                "value": {"statuses": ["ND", "CA"], "text": "Last chance: 20% off today"}
            },
        },
        required=False,
    ),
)
async def resend_mailing(
    mailing_id: str, request: Request, pool: Pool, idempotency: Idem
) -> Response:
    mid = _mailing_id(mailing_id)
    with _command(request, mid, "resend"):
        now = _now()
        data = await read_json(request)
        once = await idempotency.once(data, _created(now))
        row = await commands.resend(
            pool, mid, data, now=now, max_segments=max_segments(request), guard=once
        )
        log_fields(request, follow_up_id=row.id)
        return once.response()


@route(
    "/{mailing_id}",
    ["PATCH"],
    summary="Change some fields of a mailing",
    description="Fields left out keep their value; a change to nothing appends no event."
    + _EDIT_RULES
    + _COMMAND_NOTE,
    responses=responses(200, PATCHED_EXAMPLE, Mailing, 400, 404, 409, 413, 415, documented=_ERRORS),
    openapi_extra=mailing_body(partial=True),
)
async def patch_mailing(
    mailing_id: str, request: Request, pool: Pool, reporter: Reporter
) -> Response:
    return await _update(request, pool, reporter, mailing_id, partial=True)


@route(
    "/{mailing_id}",
    ["PUT"],
    summary="Replace a mailing's fields",
    description="`datetime_start`, `datetime_end` and `text` are required; as in the old API, "
    "optional fields left out keep their value." + _EDIT_RULES + _COMMAND_NOTE,
    responses=responses(200, PATCHED_EXAMPLE, Mailing, 400, 404, 409, 413, 415, documented=_ERRORS),
    openapi_extra=mailing_body(partial=False),
)
async def put_mailing(
    mailing_id: str, request: Request, pool: Pool, reporter: Reporter
) -> Response:
    return await _update(request, pool, reporter, mailing_id, partial=False)


@route(
    "/{mailing_id}",
    ["DELETE"],
    summary="Delete a mailing before its start",
    description="After the start the answer is 400: cancel the mailing instead.",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(204, None, None, 400, 404, 409, documented=_ERRORS, description="Deleted"),
)
async def delete_mailing(mailing_id: str, request: Request, pool: Pool) -> Response:
    mid = _mailing_id(mailing_id)
    with _command(request, mid, "delete"):
        await commands.delete(pool, mid, now=_now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


_COMMANDS: Final = {
    Command.CANCEL: (
        "Cancel a mailing",
        "Stops the mailing for good, at any time until it is finished: its unsent messages "
        "become CA. 400 if it is already finished or cancelled.",
        "cancelled",
    ),
    Command.PAUSE: (
        "Pause a mailing",
        "Holds sending (before or after the start) until it is resumed. A paused mailing "
        "still finishes at its end. 400 unless it is scheduled or running.",
        "paused",
    ),
    Command.RESUME: (
        "Resume a paused mailing",
        "Sending goes on (or starts at `datetime_start`). 400 unless it is paused.",
        "running",
    ),
}


def _register_command(command: Command) -> None:
    summary, description, state = _COMMANDS[command]

    async def endpoint(
        mailing_id: str, request: Request, pool: Pool, reporter: Reporter, idempotency: Idem
    ) -> Response:
        mid = _mailing_id(mailing_id)
        with _command(request, mid, command.value):
            counters = await _counters_for_command(reporter, mid)
            now = _now()

            def answer(row: MailingRow) -> Response:
                return JSON(to_json(row, counters, now))

            # No body: the key names the command on this mailing (its path).
            once = await idempotency.once(None, answer)
            await commands.run(
                pool,
                mid,
                command,
                now=now,
                all_messages_final=counters.all_messages_final,
                guard=once,
            )
            return once.response()

    endpoint.__name__ = f"{command.value}_mailing"
    route(
        f"/{{mailing_id}}/{command.value}",
        ["POST"],
        summary=summary,
        description=description + _COMMAND_NOTE,
        responses=responses(
            200, {**MAILING_EXAMPLE, "state": state}, Mailing, 400, 404, 409, documented=_ERRORS
        ),
    )(endpoint)


for _command_name in Command:
    _register_command(_command_name)
