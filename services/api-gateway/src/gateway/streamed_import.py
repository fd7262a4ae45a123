"""The HTTP side every bulk import shares (clients, opt-outs): the body's format from its
Content-Type (415), the byte cap by Content-Length before anything is read (413), a free
import slot (429), the body streamed under the caps into the import, and the answer. A client
that hangs up mid-upload gets no answer; the batches committed before stay."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable

import structlog
from fastapi import HTTPException, Request, Response, status
from starlette.requests import ClientDisconnect

from gateway.clients import importer
from gateway.clients.import_jobs import ImportJobs
from gateway.clients.importer import ImportFormat, ImportResult
from gateway.import_limits import capped, declared_length_fits
from gateway.responses import JSON

__all__ = ["ImportRun", "body_format", "run_import"]

log = structlog.get_logger(__name__)

ImportRun = Callable[[AsyncIterable[bytes], ImportFormat, int], Awaitable[ImportResult]]
"""An import of a streamed body in a format, with a cap on its lines."""


def body_format(request: Request) -> ImportFormat:
    """The body's format, checked with its declared length against the caps (415, 413)."""
    try:
        fmt = importer.import_format(request.headers.get("content-type"))
    except importer.UnsupportedMediaType as exc:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
    jobs: ImportJobs = request.app.state.import_jobs
    declared_length_fits(request.headers.get("content-length"), jobs.limits)
    return fmt


async def run_import(request: Request, fmt: ImportFormat, run: ImportRun, what: str) -> Response:
    """Run ``run`` over the request's body in an import slot and answer its counts."""
    jobs: ImportJobs = request.app.state.import_jobs
    try:
        async with jobs.slot():
            body = capped(request.stream(), jobs.limits.max_bytes)
            result = await run(body, fmt, jobs.limits.max_rows)
    except ClientDisconnect:
        # Batches committed so far stay; nobody is left to read an answer.
        log.info("import_aborted", what=what)
        return Response(status_code=status.HTTP_400_BAD_REQUEST)
    return JSON(result.to_json())
