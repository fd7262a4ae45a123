"""Client pages: search by phone, tag or operator code; create, edit, delete; CSV import as a
background job, its page showing live progress and every rejected line."""

from __future__ import annotations

from typing import Any, Final

import structlog
from fastapi import APIRouter, Response

from gateway.admin.charts import Part, progress_bar
from gateway.admin.forms import client_body, client_values, field_errors
from gateway.admin.history import history
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
from gateway.audit import AuditEntry
from gateway.clients import commands, repository
from gateway.clients.commands import ClientNotFound
from gateway.clients.import_jobs import ImportJob, ImportJobs, parse_job_id
from gateway.clients.repository import ClientFilters, ClientRow
from gateway.errors import ConcurrentModification, InvalidInput, status_of
from gateway.pagination import InvalidPage, PageRequest, num_pages
from gateway.routing import MAX_ID

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/admin/clients", route_class=AdminRoute, include_in_schema=False)

PAGE_SIZE: Final = 25
NOTICES: Final = {
    "created": "Client created.",
    "updated": "Client saved.",
    "deleted": "Client deleted.",
}
COMMON_ZONES: Final = (
    "UTC", "Europe/Moscow", "Europe/Kaliningrad", "Europe/Samara", "Asia/Yekaterinburg",
    "Asia/Omsk", "Asia/Novosibirsk", "Asia/Krasnoyarsk", "Asia/Irkutsk", "Asia/Yakutsk",
    "Asia/Vladivostok", "Asia/Magadan", "Asia/Kamchatka", "Europe/London", "Europe/Berlin",
)  # fmt: skip


def _blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _client_id(raw: str) -> int | None:
    if raw.isascii() and raw.isdigit() and int(raw) <= MAX_ID:
        return int(raw)
    return None


@router.get("")
async def client_list(
    page: ViewPage,
    phone: str | None = None,
    tag: str | None = None,
    operator_code: str | None = None,
    p: str | None = None,
    notice: str | None = None,
) -> Response:
    phone_filter = _blank_to_none(phone)
    filters = ClientFilters(
        tag=_blank_to_none(tag),
        operator_code=_blank_to_none(operator_code),
        phone=phone_filter.removeprefix("+") if phone_filter else None,
    )
    try:
        wanted = PageRequest(page_number(p), PAGE_SIZE)
        count, number, rows = await repository.list_clients(page.pool, filters, wanted)
    except InvalidPage:
        return see_other(str(page.request.url.remove_query_params("p")))
    return render(
        page.request,
        "clients.html",
        session=page.session,
        nav="clients",
        clients=rows,
        count=count,
        number=number,
        pages=num_pages(count, PAGE_SIZE),
        query={"phone": phone or "", "tag": tag or "", "operator_code": operator_code or ""},
        page_url=lambda n: page_link(page.request.url, n),
        notice=NOTICES.get(notice or ""),
    )


def _form(
    page: Page,
    *,
    values: dict[str, str],
    client: ClientRow | None = None,
    errors: dict[str, list[str]] | None = None,
    general: list[str] | None = None,
    status: int = 200,
    history: list[AuditEntry] | None = None,
) -> Response:
    return render(
        page.request,
        "client_form.html",
        status=status,
        session=page.session,
        nav="clients",
        client=client,
        values=values,
        errors=errors or {},
        general=general or [],
        zones=COMMON_ZONES,
        history=history,
    )


def _not_found(page: Page) -> Response:
    return not_found(page, "Client")


@router.get("/new")
async def new_client(page: ChangePage) -> Response:
    return _form(page, values=client_values(None))


@router.post("/new")
async def create_client(page: ChangePage) -> Response:
    form = await posted_form(page)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        row = await commands.create(page.pool, client_body(form))
    except InvalidInput as exc:
        fields, general = field_errors(exc.errors)
        return _form(page, values=values, errors=fields, general=general, status=status_of(exc))
    log.info("admin_client_created", client_id=row.id, sub=page.user.sub)
    return see_other("/admin/clients?notice=created")


@router.get("/import")
async def import_page(page: ChangePage) -> Response:
    return render(page.request, "import.html", session=page.session, nav="clients")


@router.post("/import")
async def import_clients(page: ChangePage) -> Response:
    jobs: ImportJobs = page.request.app.state.import_jobs
    try:
        upload = await posted_upload(page, jobs.limits)
        try:
            job = await jobs.start(chunks(upload), upload_format(upload))
        finally:
            await upload.close()
    except REFUSALS as exc:
        return render(page.request, "import.html", status=refusal_status(exc),
                      session=page.session, nav="clients", error=str(exc))  # fmt: skip
    log.info("admin_clients_import_started", job_id=str(job.id), sub=page.user.sub)
    return see_other(f"/admin/clients/import/{job.id}")


async def _job(page: Page, job_id: str) -> ImportJob | None:
    jobs: ImportJobs = page.request.app.state.import_jobs
    parsed = parse_job_id(job_id)
    return await jobs.get(parsed) if parsed else None


def _job_context(job: ImportJob) -> dict[str, Any]:
    label = f"{job.percent:.0f} % of the file read"
    bar = progress_bar([Part("read", round(job.percent * 10), "c-delivered")], 1000, label=label)
    return {"job": job, "bar": bar}


@router.get("/import/{job_id}")
async def import_job_page(page: ViewPage, job_id: str) -> Response:
    job = await _job(page, job_id)
    if job is None:
        return not_found(page, "Import")
    return render(
        page.request,
        "import.html",
        session=page.session,
        nav="clients",
        **_job_context(job),
    )


@router.get("/import/{job_id}/live")
async def import_job_live(page: ViewPage, job_id: str) -> Response:
    job = await _job(page, job_id)
    if job is None:
        return not_found(page, "Import")
    return render(page.request, "_import_live.html", session=page.session, **_job_context(job))


async def _client(page: Page, client_id: str) -> ClientRow | None:
    cid = _client_id(client_id)
    return await repository.get_client(page.pool, cid) if cid is not None else None


@router.get("/{client_id}/edit")
async def edit_client(page: ViewPage, client_id: str) -> Response:
    row = await _client(page, client_id)
    if row is None:
        return _not_found(page)
    changes = await history(page, client_id=row.id)
    return _form(page, values=client_values(row), client=row, history=changes)


@router.post("/{client_id}/edit")
async def update_client(page: ChangePage, client_id: str) -> Response:
    form = await posted_form(page)
    row = await _client(page, client_id)
    if row is None:
        return _not_found(page)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        await commands.update(page.pool, row.id, client_body(form), partial=False)
    except ClientNotFound:
        return _not_found(page)
    except InvalidInput as exc:
        fields, general = field_errors(exc.errors)
        return _form(
            page, values=values, client=row, errors=fields, general=general, status=status_of(exc)
        )
    except ConcurrentModification as exc:
        general = ["Someone changed this client at the same time; try again."]
        return _form(page, values=values, client=row, general=general, status=status_of(exc))
    log.info("admin_client_updated", client_id=row.id, sub=page.user.sub)
    return see_other("/admin/clients?notice=updated")


@router.post("/{client_id}/delete")
async def delete_client(page: ChangePage, client_id: str) -> Response:
    await posted_form(page)
    cid = _client_id(client_id)
    try:
        if cid is None:
            raise ClientNotFound(client_id)
        await commands.delete(page.pool, cid)
    except ClientNotFound:
        return _not_found(page)
    log.info("admin_client_deleted", client_id=cid, sub=page.user.sub)
    return see_other("/admin/clients?notice=deleted")
