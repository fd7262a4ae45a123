"""/api/v1/clients/: the old API's client endpoints, plus the streamed bulk import.

Every path answers with and without its trailing slash (no redirect, which would make clients
drop the Authorization header). Bodies are parsed by ``gateway.routing`` rather than by
FastAPI, so that errors come back in the old API's shape (400, each field with its messages),
and the import streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from starlette.requests import ClientDisconnect

from gateway.clients import commands, importer, repository
from gateway.clients.commands import ClientNotFound
from gateway.clients.import_jobs import ImportJobs, parse_job_id, prefers_async
from gateway.clients.importer import ImportFormat
from gateway.clients.repository import ClientFilters, ClientRow
from gateway.clients.schemas import (
    CLIENT_EXAMPLE,
    IMPORT_JOB_EXAMPLE,
    PAGE_EXAMPLE,
    UPDATED_EXAMPLE,
    Client,
    ClientPage,
    ImportJob,
    client_body,
    import_body,
)
from gateway.deps import Pool
from gateway.docs import IMPORT_EXAMPLE, IMPORT_LIMIT_ERRORS, ImportResult, responses
from gateway.idempotency import NOT_KEPT_IMPORT, Idem, checked_key
from gateway.pagination import InvalidPage, links, num_pages, page_request
from gateway.responses import JSON
from gateway.routing import MAX_BODY_BYTES, path_id, read_json, slash_routes
from gateway.streamed_import import body_format, run_import

__all__ = ["MAX_BODY_BYTES", "router"]

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1/clients", tags=["clients"])

route = slash_routes(router)


def _client_id(raw: str) -> int:
    return path_id(raw, ClientNotFound)


def _filter(value: str | None) -> str | None:
    # An empty filter is no filter, as django-filter does it.
    return value if value else None


@route(
    "",
    ["GET"],
    summary="List clients",
    description="Newest first, 25 per page. Filters are exact matches and combine with AND.",
    responses=responses(200, PAGE_EXAMPLE, ClientPage, 404),
)
async def list_clients(
    request: Request,
    pool: Pool,
    page: Annotated[str | None, Query(description="Page number from 1, or `last`")] = None,
    page_size: Annotated[
        str | None, Query(description="Clients per page (default 25, at most 1000)")
    ] = None,
    tag: Annotated[str | None, Query(description="Only clients with this tag")] = None,
    operator_code: Annotated[
        str | None, Query(description="Only clients of this operator code, e.g. 999")
    ] = None,
    phone: Annotated[str | None, Query(description="Only the client with this phone")] = None,
) -> Response:
    filters = ClientFilters(
        tag=_filter(tag),
        operator_code=_filter(operator_code),
        phone=_filter(phone.strip().removeprefix("+") if phone else None),
    )
    try:
        wanted = page_request(page, page_size)
        count, number, rows = await repository.list_clients(pool, filters, wanted)
    except InvalidPage:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Invalid page.") from None
    following, previous = links(request.url, number, num_pages(count, wanted.size))
    return JSON(
        {
            "count": count,
            "next": following,
            "previous": previous,
            "results": [row.to_json() for row in rows],
        }
    )


@route(
    "",
    ["POST"],
    summary="Create a client",
    status_code=status.HTTP_201_CREATED,
    responses=responses(201, CLIENT_EXAMPLE, Client, 400, 413, 415),
    openapi_extra=client_body(partial=False),
)
async def create_client(request: Request, pool: Pool, idempotency: Idem) -> Response:
    data = await read_json(request)

    def answer(row: ClientRow) -> Response:
        return JSON(row.to_json(), status_code=status.HTTP_201_CREATED)

    once = await idempotency.once(data, answer)
    await commands.create(pool, data, once)
    return once.response()


# Registered before /{client_id} for clarity; the router would pick it anyway, as
# /{client_id} has no POST.


@route(
    "/import",
    ["POST"],
    slash=False,
    summary="Import clients in bulk (CSV or NDJSON)",
    description=(
        "Streams the body and judges each row by the rules of *Create a client*. "
        "CSV: columns `phone,tag,time_zone` (a first row naming `phone` is a header and may "
        "name the columns in any order or leave some out); a blank `tag` clears it, a blank "
        "`time_zone` keeps the current one. NDJSON: one JSON object per line. A phone already "
        "in the base updates that client; fields a row leaves out keep their value. Rows are "
        "committed in batches of 5,000, so an interrupted import keeps what it committed; "
        "importing the same file again changes nothing. Answers with counts and the first "
        "1000 rejected lines.\n\n"
        "With `Prefer: respond-async` the import runs as a background job: once the body is "
        "uploaded the answer is `202` with the job (`Location`: its URL, see *Get an import "
        "job*), whose counts, lines read and errors grow as the import goes."
    ),
    responses=responses(
        200, IMPORT_EXAMPLE, ImportResult, 409, 413, 415, 429, documented=IMPORT_LIMIT_ERRORS
    )
    | {
        202: {
            "description": "Accepted (`Prefer: respond-async`): the import job, running",
            "model": ImportJob,
            "content": {"application/json": {"example": IMPORT_JOB_EXAMPLE}},
            "headers": {"Location": {"schema": {"type": "string"}, "description": "The job"}},
        }
    },
    openapi_extra=import_body(),
    dependencies=[Depends(checked_key(NOT_KEPT_IMPORT))],
)
async def import_clients(request: Request, pool: Pool) -> Response:
    fmt = body_format(request)
    if prefers_async(request.headers.get("prefer")):
        return await _start_job(request, fmt)

    async def run(
        body: AsyncIterable[bytes], fmt: ImportFormat, max_rows: int
    ) -> importer.ImportResult:
        return await importer.import_clients(pool, body, fmt, max_rows=max_rows)

    return await run_import(request, fmt, run, "clients")


async def _start_job(request: Request, fmt: importer.ImportFormat) -> Response:
    jobs: ImportJobs = request.app.state.import_jobs
    try:
        job = await jobs.start(request.stream(), fmt)
    except ClientDisconnect:
        # The upload broke off before the job was recorded: nothing was imported.
        log.info("client_import_aborted")
        return Response(status_code=status.HTTP_400_BAD_REQUEST)
    # The documented form, without the slash that url_for's first registered variant has.
    url = str(request.url_for("get_import_job", job_id=str(job.id))).removesuffix("/")
    headers = {"Location": url, "Preference-Applied": "respond-async"}
    return JSON(job.to_json() | {"url": url}, status_code=status.HTTP_202_ACCEPTED, headers=headers)


@route(
    "/import/jobs/{job_id}",
    ["GET"],
    slash=False,
    summary="Get an import job",
    description=(
        "A background import (`Prefer: respond-async`): `state` is `running`, `succeeded` or "
        "`failed` (`error` says why; the counts cover the batches committed before it). "
        "`bytes_read` of `bytes_total` is how far the importer has read the upload, `rows_read` "
        "the lines taken so far, `errors` the first 1000 rejected lines. Saved about once a "
        "second; a job whose gateway stopped is reported failed (importing again is safe)."
    ),
    responses=responses(200, IMPORT_JOB_EXAMPLE, ImportJob, 404),
)
async def get_import_job(job_id: str, request: Request) -> Response:
    jobs: ImportJobs = request.app.state.import_jobs
    parsed = parse_job_id(job_id)
    job = await jobs.get(parsed) if parsed else None
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not found.")
    return JSON(job.to_json() | {"url": str(request.url)})


@route(
    "/{client_id}",
    ["GET"],
    summary="Get a client",
    responses=responses(200, UPDATED_EXAMPLE, Client, 404),
)
async def get_client(client_id: str, pool: Pool) -> Response:
    row = await repository.get_client(pool, _client_id(client_id))
    if row is None:
        raise ClientNotFound(client_id)
    return JSON(row.to_json())


@route(
    "/{client_id}",
    ["PATCH"],
    summary="Change some fields of a client",
    description="Fields left out keep their value. A change to nothing appends no event.",
    responses=responses(200, UPDATED_EXAMPLE, Client, 400, 404, 409, 413, 415),
    openapi_extra=client_body(partial=True),
)
async def patch_client(client_id: str, request: Request, pool: Pool) -> Response:
    cid = _client_id(client_id)
    row = await commands.update(pool, cid, await read_json(request), partial=True)
    return JSON(row.to_json())


@route(
    "/{client_id}",
    ["PUT"],
    summary="Replace a client's fields",
    description="`phone` is required; as in the old API, other fields left out keep their value.",
    responses=responses(200, UPDATED_EXAMPLE, Client, 400, 404, 409, 413, 415),
    openapi_extra=client_body(partial=False),
)
async def put_client(client_id: str, request: Request, pool: Pool) -> Response:
    cid = _client_id(client_id)
    row = await commands.update(pool, cid, await read_json(request), partial=False)
    return JSON(row.to_json())


@route(
    "/{client_id}",
    ["DELETE"],
    summary="Delete a client",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(204, None, None, 404, 409),
)
async def delete_client(client_id: str, pool: Pool) -> Response:
    await commands.delete(pool, _client_id(client_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
