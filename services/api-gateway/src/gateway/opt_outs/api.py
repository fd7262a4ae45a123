"""/api/v1/opt-outs/ (the suppression list) and /api/v1/inbound/ (the provider's
mobile-originated messages, which opt a phone out when they are a stop word)."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.clients import importer
from gateway.clients.importer import ImportFormat
from gateway.deps import Pool
from gateway.docs import IMPORT_EXAMPLE, IMPORT_LIMIT_ERRORS, ImportResult, responses
from gateway.errors import NotFound
from gateway.idempotency import NOT_KEPT_IMPORT, Idem, answer_alone, checked_key
from gateway.metrics import INBOUND_MESSAGES
from gateway.opt_outs import commands, repository
from gateway.opt_outs.importer import import_opt_outs
from gateway.opt_outs.rules import SOURCES, StopWords, parse_phone
from gateway.opt_outs.schemas import (
    INBOUND_EXAMPLE,
    OPT_OUT_EXAMPLE,
    PAGE_EXAMPLE,
    InboundAnswer,
    OptOut,
    OptOutPage,
    inbound_body,
    inbound_unauthorized,
    opt_out_body,
    opt_out_import_body,
    parse_inbound,
    parse_opt_out,
)
from gateway.pagination import InvalidPage, links, num_pages, page_request
from gateway.responses import JSON
from gateway.routing import log_fields, read_json, slash_routes
from gateway.streamed_import import body_format, run_import
from sms_events.bearer import bearer_matches

__all__ = ["inbound_router", "router"]

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1/opt-outs", tags=["opt-outs"])
route = slash_routes(router)

inbound_router = APIRouter(prefix="/api/v1/inbound", tags=["opt-outs"])
inbound_route = slash_routes(inbound_router)


class OptOutNotFound(NotFound):
    """No such phone on the list (a 404, like an unknown id)."""


def _phone(raw: str) -> str:
    try:
        return parse_phone(raw)
    except ValueError:
        raise OptOutNotFound(raw) from None


@route(
    "",
    ["GET"],
    summary="List the suppression list",
    description="Phones that get no message, newest first, 25 per page.",
    responses=responses(200, PAGE_EXAMPLE, OptOutPage, 400, 404),
)
async def list_opt_outs(
    request: Request,
    pool: Pool,
    page: Annotated[str | None, Query(description="Page number from 1, or `last`")] = None,
    page_size: Annotated[
        str | None, Query(description="Per page (default 25, at most 1000)")
    ] = None,
    source: Annotated[
        str | None, Query(description="Only those recorded by: api, admin, import, inbound")
    ] = None,
) -> Response:
    if source and source not in SOURCES:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"Unknown source {source!r}; one of {', '.join(SOURCES)}."
        )
    try:
        wanted = page_request(page, page_size)
        count, number, rows = await repository.list_opt_outs(pool, wanted, source or None)
    except InvalidPage:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Invalid page.") from None
    following, previous = links(request.url, number, num_pages(count, wanted.size))
    results = [row.to_json() for row in rows]
    return JSON({"count": count, "next": following, "previous": previous, "results": results})


@route(
    "",
    ["POST"],
    summary="Opt a phone out",
    description=(
        "The phone gets no message from now on: it is left out of every audience, and its "
        "unsent messages end `CA` (reason `opted_out`) before any call. `201` when it was "
        "added, `200` with the existing entry when it was on the list already."
    ),
    status_code=status.HTTP_201_CREATED,
    responses=responses(201, OPT_OUT_EXAMPLE, OptOut, 400, 409, 413, 415)
    | {
        200: {
            "description": "The phone was on the list already: the entry as it is (unchanged)",
            "model": OptOut,
            "content": {"application/json": {"example": OPT_OUT_EXAMPLE}},
        }
    },
    openapi_extra=opt_out_body(),
)
async def create_opt_out(request: Request, pool: Pool, idempotency: Idem) -> Response:
    data = await read_json(request)
    wanted = parse_opt_out(data)

    def answer(done: commands.Recorded) -> Response:
        code = status.HTTP_201_CREATED if done.created else status.HTTP_200_OK
        return JSON(done.row.to_json(), status_code=code)

    once = await idempotency.once(data, answer)
    await commands.record(pool, wanted.phone, wanted.reason, "api", once)
    return once.response()


@route(
    "/import",
    ["POST"],
    slash=False,
    summary="Import opt-outs in bulk (CSV or NDJSON)",
    name="import_opt_outs",
    description=(
        "CSV columns `phone,reason` (a first row naming `phone` is a header), or NDJSON objects "
        "like the body of *Opt a phone out*. `created` counts the phones added, `unchanged` "
        "those already on the list; `updated` is always 0. Committed in batches of 5,000; "
        "importing the same file again changes nothing. The limits of the client import apply."
    ),
    responses=responses(
        200, IMPORT_EXAMPLE, ImportResult, 409, 413, 415, 429, documented=IMPORT_LIMIT_ERRORS
    ),
    openapi_extra=opt_out_import_body(),
    dependencies=[Depends(checked_key(NOT_KEPT_IMPORT))],
)
async def import_opt_outs_endpoint(request: Request, pool: Pool) -> Response:
    fmt = body_format(request)

    async def run(
        body: AsyncIterable[bytes], fmt: ImportFormat, max_rows: int
    ) -> importer.ImportResult:
        return await import_opt_outs(pool, body, fmt, max_rows=max_rows)

    return await run_import(request, fmt, run, "opt-outs")


@route(
    "/{phone}",
    ["GET"],
    summary="Get a phone's opt-out",
    responses=responses(200, OPT_OUT_EXAMPLE, OptOut, 404),
)
async def get_opt_out(phone: str, pool: Pool) -> Response:
    row = await repository.get_opt_out(pool, _phone(phone))
    if row is None:
        raise OptOutNotFound(phone)
    return JSON(row.to_json())


@route(
    "/{phone}",
    ["DELETE"],
    summary="Take a phone off the suppression list",
    description="Mailings not started yet take it in again; messages already cancelled stay so.",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(204, None, None, 404, 409),
)
async def delete_opt_out(phone: str, pool: Pool) -> Response:
    try:
        await commands.remove(pool, _phone(phone))
    except commands.NotOptedOut:
        raise OptOutNotFound(phone) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- inbound ---------------------------------------------------------------------------------


inbound_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="InboundToken",
    description="INBOUND_TOKEN, sent by the SMS provider as `Authorization: Bearer <token>`",
)


async def _inbound_token(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(inbound_scheme)],
) -> None:
    """``Authorization: Bearer <INBOUND_TOKEN>``; with no token configured nothing is accepted."""
    token = request.app.state.settings.inbound_token
    authorization = request.headers.get("authorization")
    if token is None or not bearer_matches(authorization, token.get_secret_value()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Invalid inbound token.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.actor = {"type": "inbound", "id": "provider"}


@inbound_route(
    "",
    ["POST"],
    summary="Receive a mobile-originated message (provider callback)",
    description=(
        "The SMS provider posts each message a recipient sends back, with "
        "`Authorization: Bearer <INBOUND_TOKEN>`. A text that is a stop word "
        "(`OPT_OUT_STOP_WORDS`, by default STOP, СТОП, UNSUBSCRIBE; any case, punctuation "
        "around it ignored) puts the sender on the suppression list (source `inbound`); any "
        "other text is acknowledged and dropped."
    ),
    dependencies=[Depends(_inbound_token)],
    responses={
        200: {
            "model": InboundAnswer,
            "description": "Taken",
            "content": {"application/json": {"example": INBOUND_EXAMPLE}},
        },
        400: responses(200, None, None, 400)[400],
        401: inbound_unauthorized(),
    },
    openapi_extra=inbound_body(),
)
async def receive_inbound(request: Request, pool: Pool, idempotency: Idem) -> Response:
    data = await read_json(request)
    message = parse_inbound(data)
    stop_words: StopWords = request.app.state.stop_words
    word = stop_words.match(message.text)

    def answer(done: commands.Recorded | None) -> Response:
        return JSON({"opted_out": done is not None, "stop_word": word})

    once = await idempotency.once(data, answer)
    if word is None:
        response = await answer_alone(pool, once, None)  # nothing to record; the answer is kept
    else:
        reason = message.text.strip()[:200]
        done = await commands.record(pool, message.phone, reason, "inbound", once)
        response = once.response()
        log_fields(request, opt_out_created=done.created)
    INBOUND_MESSAGES.labels("opt_out" if word else "other").inc()
    log_fields(request, stop_word=word is not None)
    return response
