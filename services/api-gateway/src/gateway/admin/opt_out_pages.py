"""Opt-out pages: the suppression list newest first, filtered by source; add a phone, take one
off, and a CSV upload imported while the request waits (as ``POST /api/v1/opt-outs/import``).

Everything the admin records has the source ``admin``; the event's metadata names the admin
(``web.Needs``). The phone to take off travels in the form, not the URL, so that it stays
out of request logs.
"""

from __future__ import annotations

from typing import Any, Final

import structlog
from fastapi import APIRouter, Response

from gateway.admin.forms import field_errors
from gateway.admin.uploads import REFUSALS, chunks, posted_upload, refusal_status, upload_format
from gateway.admin.web import (
    AdminRoute,
    ChangePage,
    Page,
    ViewPage,
    not_found,
    page_link,
    page_number,
    posted_form,
    render,
    see_other,
)
from gateway.clients.import_jobs import ImportJobs
from gateway.errors import ConcurrentModification, InvalidInput, status_of
from gateway.import_limits import ImportTooLarge, TooManyImports, capped
from gateway.opt_outs import commands, repository
from gateway.opt_outs.importer import import_opt_outs
from gateway.opt_outs.rules import REASON_MAX_LENGTH, SOURCES, parse_phone
from gateway.opt_outs.schemas import parse_opt_out
from gateway.pagination import InvalidPage, PageRequest, num_pages

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/admin/opt-outs", route_class=AdminRoute, include_in_schema=False)

PAGE_SIZE: Final = 25
NOTICES: Final = {
    "added": "Phone added to the suppression list: it gets no message from now on.",
    "removed": "Phone taken off the suppression list: mailings not started yet include it again.",
}
CONFLICT: Final = "Someone changed this phone's entry at the same time; try again."
IMPORT_CONFLICT: Final = (
    "A batch kept conflicting with concurrent changes. The batches committed before it stay; "
    "importing the file again is safe."
)


async def _list_page(
    page: Page,
    *,
    source: str | None = None,
    p: str | None = None,
    notice: str | None = None,
    already: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    general: list[str] | None = None,
    status: int = 200,
) -> Response:
    wanted = source if source in SOURCES else None
    try:
        count, number, rows = await repository.list_opt_outs(
            page.pool, PageRequest(page_number(p), PAGE_SIZE), wanted
        )
    except InvalidPage:
        return see_other(str(page.request.url.remove_query_params("p")))
    return render(
        page.request,
        "opt_outs.html",
        status=status,
        session=page.session,
        nav="opt-outs",
        opt_outs=rows,
        count=count,
        number=number,
        pages=num_pages(count, PAGE_SIZE),
        source=wanted or "",
        sources=SOURCES,
        page_url=lambda n: page_link(page.request.url, n),
        notice=notice,
        already=already,
        values=values or {"phone": "", "reason": ""},
        errors=errors or {},
        general=general or [],
        reason_max=REASON_MAX_LENGTH,
    )


@router.get("")
async def opt_out_list(
    page: ViewPage, source: str | None = None, p: str | None = None, notice: str | None = None
) -> Response:
    return await _list_page(page, source=source, p=p, notice=NOTICES.get(notice or ""))


@router.post("")
async def add_opt_out(page: ChangePage) -> Response:
    form = await posted_form(page)
    values = {k: v for k in ("phone", "reason") if isinstance(v := form.get(k, ""), str)}
    try:
        wanted = parse_opt_out(values)
        done = await commands.record(page.pool, wanted.phone, wanted.reason, "admin")
    except InvalidInput as exc:
        fields, general = field_errors(exc.errors)
        return await _list_page(
            page, values=values, errors=fields, general=general, status=status_of(exc)
        )
    except ConcurrentModification as exc:
        return await _list_page(page, values=values, general=[CONFLICT], status=status_of(exc))
    log.info("admin_opt_out_recorded", created=done.created, sub=page.user.sub)
    if done.created:
        return see_other("/admin/opt-outs?notice=added")
    # Said on the page rather than in a redirect, whose URL would carry the phone.
    row = done.row
    already = f"+{row.phone} is already on the suppression list (source {row.source})."
    return await _list_page(page, already=already)


@router.post("/remove")
async def remove_opt_out(page: ChangePage) -> Response:
    form = await posted_form(page)
    try:
        await commands.remove(page.pool, parse_phone(form.get("phone")))
    except (ValueError, commands.NotOptedOut):
        return not_found(page, "Opt-out")
    except ConcurrentModification as exc:
        return await _list_page(page, general=[CONFLICT], status=status_of(exc))
    log.info("admin_opt_out_removed", sub=page.user.sub)
    return see_other("/admin/opt-outs?notice=removed")


def _import_page(page: Page, *, status: int = 200, **context: Any) -> Response:
    return render(page.request, "opt_out_import.html", status=status, session=page.session,
                  nav="opt-outs", **context)  # fmt: skip


@router.get("/import")
async def import_page(page: ChangePage) -> Response:
    return _import_page(page)


@router.post("/import")
async def import_file(page: ChangePage) -> Response:
    jobs: ImportJobs = page.request.app.state.import_jobs
    limits = jobs.limits
    try:
        upload = await posted_upload(page, limits)
    except REFUSALS as exc:
        return _import_page(page, status=refusal_status(exc), error=str(exc))
    try:
        async with jobs.slot():
            body = capped(chunks(upload), limits.max_bytes)
            fmt = upload_format(upload)
            result = await import_opt_outs(page.pool, body, fmt, max_rows=limits.max_rows)
    except ImportTooLarge as exc:
        # Found while importing: the batches committed before the cap stay.
        error = f"{exc} The lines before it were imported; importing them again is safe."
        return _import_page(page, status=413, error=error)
    except TooManyImports as exc:
        return _import_page(page, status=refusal_status(exc), error=str(exc))
    except ConcurrentModification as exc:
        return _import_page(page, status=status_of(exc), error=IMPORT_CONFLICT)
    finally:
        await upload.close()
    log.info("admin_opt_outs_imported", created=result.created, sub=page.user.sub)
    return _import_page(page, result=result)
