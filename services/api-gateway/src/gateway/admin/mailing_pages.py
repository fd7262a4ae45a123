"""Mailing pages: the list with state and progress, create and edit, cancel, pause, resume and
delete, and the detail page with live progress, charts, failure reasons and the messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Response

from gateway.admin.charts import Part, buckets, donut, fill_gaps, progress_bar, stacked_bars
from gateway.admin.forms import field_errors, mailing_body, mailing_changes, mailing_values
from gateway.admin.history import history
from gateway.admin.web import (
    AdminRoute,
    ChangePage,
    Page,
    ViewPage,
    not_found,
    page_number,
    posted_form,
    render,
    see_other,
)
from gateway.errors import DomainError, InvalidInput, status_of
from gateway.mailings import commands as mailing_commands
from gateway.mailings import repository as mailing_repository
from gateway.mailings.commands import MailingNotFound
from gateway.mailings.lifecycle import (
    Command,
    MailingState,
    can_cancel,
    can_move_end,
    can_pause,
    can_resume,
    editable,
)
from gateway.mailings.preview import forecast
from gateway.mailings.repository import MailingRow, get_mailing, list_mailings
from gateway.pagination import Cursor, InvalidPage, PageRequest, num_pages
from gateway.routing import MAX_ID
from gateway.stats.reporter_client import Counters, MessagePage, ReporterError, ReporterUnavailable
from sms_events.reporter_contract import MailingStats
from sms_events.segments import measure

__all__ = ["MailingView", "load_views", "router"]

if TYPE_CHECKING:
    from gateway.config import Settings

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/admin/mailings", route_class=AdminRoute, include_in_schema=False)

PAGE_SIZE: Final = 20
MESSAGES_PAGE_SIZE: Final = 50
STATUS_LABELS: Final = {
    "SC": "scheduled",
    "DL": "delivered",
    "ND": "undelivered",
    "CA": "cancelled",
}
NOTICES: Final = {
    "created": "Mailing created.",
    "updated": "Mailing saved.",
    "cancel": "Mailing cancelled: its unsent messages will not be sent.",
    "pause": "Mailing paused: nothing more is sent until it is resumed.",
    "resume": "Mailing resumed.",
    "deleted": "Mailing deleted.",
    "resent": "Follow-up created: it sends again to the original's chosen recipients.",
}
FOLLOW_UPS_SHOWN: Final = 20


@dataclass(frozen=True, slots=True)
class MailingView:
    """A mailing as the pages show it: its row, its state now and the reporter's counters
    (``None`` when the reporter cannot be reached)."""

    row: MailingRow
    state: MailingState
    counters: Counters | None
    now: datetime

    @property
    def total(self) -> int:
        return self.counters.created_messages if self.counters else 0

    @property
    def done(self) -> int:
        c = self.counters
        return c.delivered_messages + c.undelivered_messages + c.cancelled_messages if c else 0

    @property
    def percent(self) -> int | None:
        if self.counters is None or not self.total:
            return None
        return int(100 * self.done / self.total)

    @property
    def parts(self) -> list[Part]:
        c = self.counters
        if c is None:
            return []
        return [
            Part("delivered", c.delivered_messages, "c-delivered"),
            Part("undelivered", c.undelivered_messages, "c-failed"),
            Part("cancelled", c.cancelled_messages, "c-cancelled"),
        ]

    def bar(self) -> Any:
        return progress_bar(self.parts, self.total, label=f"{self.done} of {self.total} done")

    @property
    def final(self) -> bool:
        return self.state.is_final

    @property
    def can_edit(self) -> bool:
        return can_move_end(self.state)

    @property
    def editable(self) -> bool:
        """Every field may change (before the start); otherwise only the end."""
        return editable(self.now, self.row.datetime_start) and not self.row.cancelled

    @property
    def actions(self) -> list[str]:
        out = []
        if can_pause(self.state):
            out.append("pause")
        if can_resume(self.state):
            out.append("resume")
        if can_cancel(self.state):
            out.append("cancel")
        if editable(self.now, self.row.datetime_start):
            out.append("delete")
        return out


async def _counters(page: Page, ids: list[int]) -> dict[int, Counters] | None:
    reporter = page.admin.reporter
    if not ids:
        return {}
    if reporter is None:
        return None
    try:
        return await reporter.counters(ids)
    except (ReporterUnavailable, ReporterError):
        return None


def _view(row: MailingRow, counters: Counters | None, now: datetime) -> MailingView:
    final = counters.all_messages_final if counters else False
    return MailingView(row, mailing_commands.state_of(row, now, final), counters, now)


async def load_views(page: Page, rows: list[MailingRow]) -> tuple[list[MailingView], bool]:
    """Views of ``rows`` and whether the reporter answered."""
    counters = await _counters(page, [r.id for r in rows])
    now = datetime.now(UTC)
    views = [_view(r, counters.get(r.id) if counters is not None else None, now) for r in rows]
    return views, counters is not None


async def _one(page: Page, mailing_id: str) -> MailingView | None:
    if not (mailing_id.isascii() and mailing_id.isdigit()) or int(mailing_id) > MAX_ID:
        return None
    row = await get_mailing(page.pool, int(mailing_id))
    if row is None:
        return None
    views, _ = await load_views(page, [row])
    return views[0]


def _not_found(page: Page) -> Response:
    return not_found(page, "Mailing")


@router.get("")
async def mailing_list(page: ViewPage, p: str | None = None, notice: str | None = None) -> Response:
    try:
        wanted = PageRequest(page_number(p), PAGE_SIZE)
        count, number, rows = await list_mailings(page.pool, wanted)
    except InvalidPage:
        return see_other("/admin/mailings")
    views, reporter_ok = await load_views(page, rows)
    return render(
        page.request,
        "mailings.html",
        session=page.session,
        nav="mailings",
        mailings=views,
        reporter_ok=reporter_ok,
        count=count,
        number=number,
        pages=num_pages(count, PAGE_SIZE),
        notice=NOTICES.get(notice or ""),
    )


def _form_page(
    page: Page,
    *,
    values: dict[str, str],
    errors: dict[str, list[str]] | None = None,
    general: list[str] | None = None,
    mailing: MailingView | None = None,
    status: int = 200,
) -> Response:
    return render(
        page.request,
        "mailing_form.html",
        status=status,
        session=page.session,
        nav="mailings",
        values=values,
        errors=errors or {},
        general=general or [],
        mailing=mailing,
    )


@router.get("/new")
async def new_mailing(page: ChangePage) -> Response:
    values = mailing_values(None, page.admin.zone)
    start = datetime.now(page.admin.zone).replace(second=0, microsecond=0) + timedelta(minutes=5)
    values["datetime_start"] = start.strftime("%Y-%m-%dT%H:%M")
    values["datetime_end"] = (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    return _form_page(page, values=values)


@router.post("/new")
async def create_mailing(page: ChangePage) -> Response:
    form = await posted_form(page)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    body, errors = mailing_body(form, page.admin.zone)
    try:
        if errors:
            raise InvalidInput(errors)
        row = await mailing_commands.create(
            page.pool,
            body,
            now=datetime.now(UTC),
            max_segments=_settings(page).mailing_max_segments,
        )
    except InvalidInput as exc:
        fields, general = field_errors(exc.errors)
        return _form_page(
            page, values=values, errors=fields, general=general, status=status_of(exc)
        )
    log.info("admin_mailing_created", mailing_id=row.id, sub=page.user.sub)
    return see_other(f"/admin/mailings/{row.id}?notice=created")


def _settings(page: Page) -> Settings:
    settings: Settings = page.request.app.state.settings
    return settings


@router.post("/preview")
async def preview_mailing(page: ChangePage) -> Response:
    """The forecast of the new-mailing form as it stands (a fragment the form's script shows
    as the operator types); a form that would be refused shows why instead."""
    form = await posted_form(page)
    body, errors = mailing_body(form, page.admin.zone)
    answer: dict[str, Any] | None = None
    try:
        if errors:
            raise InvalidInput(errors)
        answer = await forecast(page.pool, body, _settings(page), datetime.now(UTC))
    except InvalidInput as exc:
        errors = exc.errors
    return render(
        page.request, "_mailing_preview.html", session=page.session, f=answer, errors=errors
    )


@router.get("/{mailing_id}/edit")
async def edit_mailing(page: ChangePage, mailing_id: str) -> Response:
    view = await _one(page, mailing_id)
    if view is None:
        return _not_found(page)
    values = mailing_values(view.row, page.admin.zone)
    return _form_page(page, values=values, mailing=view)


@router.post("/{mailing_id}/edit")
async def update_mailing(page: ChangePage, mailing_id: str) -> Response:
    form = await posted_form(page)
    view = await _one(page, mailing_id)
    if view is None:
        return _not_found(page)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    body, errors = mailing_changes(form, view.row, page.admin.zone)
    try:
        if errors:
            raise InvalidInput(errors)
        await mailing_commands.update(
            page.pool,
            view.row.id,
            body,
            partial=True,
            now=datetime.now(UTC),
            all_messages_final=view.counters.all_messages_final if view.counters else False,
            max_segments=_settings(page).mailing_max_segments,
        )
    except InvalidInput as exc:
        fields, general = field_errors(exc.errors)
        return _form_page(
            page, values=values, errors=fields, general=general, mailing=view, status=status_of(exc)
        )
    except DomainError as exc:
        return _form_page(
            page, values=values, general=[str(exc)], mailing=view, status=status_of(exc)
        )
    log.info("admin_mailing_updated", mailing_id=view.row.id, sub=page.user.sub)
    return see_other(f"/admin/mailings/{view.row.id}?notice=updated")


@dataclass(frozen=True, slots=True)
class MessagesQuery:
    """The messages table as asked for: a status filter, and a page by number (``p``) or by
    cursor. With a cursor, ``number`` only labels the page: the links carry it along, since a
    page reached by its neighbour's cursor cannot know its number."""

    status: str | None
    number: int
    cursor: Cursor | None

    def url(self, mailing_id: int, number: int, cursor: Cursor | None, path: str = "") -> str:
        params = {"status": self.status} if self.status else {}
        params["p"] = str(number)
        if cursor is not None:
            params["cursor"] = cursor.encode()
        return f"/admin/mailings/{mailing_id}{path}?{urlencode(params)}"


def _messages_query(status: str | None, p: str | None, cursor: str | None) -> MessagesQuery:
    chosen = status if status in STATUS_LABELS else None
    number = int(p) if p and p.isascii() and p.isdigit() and 0 < int(p) < 10**6 else 1
    try:
        return MessagesQuery(chosen, number, Cursor.decode(cursor) if cursor else None)
    except InvalidPage:  # a bad link shows the first page, as a bad ``p`` does
        return MessagesQuery(chosen, 1, None)


def _pager(query: MessagesQuery, mailing_id: int, messages: MessagePage) -> dict[str, Any]:
    """Links to the neighbouring pages, by cursor; back to page 1, the plain first page,
    which shows new messages as they come."""
    pages = num_pages(messages.count, MESSAGES_PAGE_SIZE)
    number = min(query.number, pages)
    following = previous = None
    if messages.next_before is not None:
        following = query.url(mailing_id, number + 1, Cursor("before", messages.next_before))
    if messages.previous_after is not None and number > 2:
        previous = query.url(mailing_id, number - 1, Cursor("after", messages.previous_after))
    elif messages.previous_after is not None:
        previous = query.url(mailing_id, 1, None)
    return {"number": number, "pages": pages, "next_url": following, "previous_url": previous}


async def _messages(page: Page, view: MailingView, query: MessagesQuery) -> dict[str, Any]:
    messages = None
    if page.admin.reporter is not None:
        at = query.cursor or query.number
        try:
            messages = await page.admin.reporter.messages(
                view.row.id, status=query.status, at=at, page_size=MESSAGES_PAGE_SIZE
            )
        except (ReporterUnavailable, ReporterError):
            messages = None
    pager = {"number": query.number, "pages": 1, "next_url": None, "previous_url": None}
    return {
        "m": view,
        "messages": messages,
        "status_filter": query.status,
        "status_labels": STATUS_LABELS,
        "live_url": query.url(view.row.id, query.number, query.cursor, "/messages"),
        **(pager if messages is None else _pager(query, view.row.id, messages)),
    }


async def _detail(
    page: Page,
    view: MailingView,
    query: MessagesQuery,
    *,
    notice: str | None = None,
    error: str | None = None,
    code: int = 200,
) -> Response:
    stats = await page.admin.stats.mailing(view.row.id) if page.admin.stats else None
    follow_ups = await mailing_repository.follow_ups(page.pool, view.row.id, FOLLOW_UPS_SHOWN)
    changes = await history(page, mailing_id=view.row.id)
    return render(
        page.request,
        "mailing_detail.html",
        status=code,
        session=page.session,
        nav="mailings",
        notice=NOTICES.get(notice or ""),
        error=error,
        length=measure(view.row.text),
        follow_ups=follow_ups,
        history=changes,
        **(await _messages(page, view, query) | _live_context(page, view, stats)),
    )


def _live_context(page: Page, view: MailingView, stats: MailingStats | None) -> dict[str, Any]:
    charts: dict[str, Any] = {}
    if stats is not None:
        minutes = fill_gaps(buckets(stats.sends_per_minute), timedelta(minutes=1))
        charts["per_minute"] = stacked_bars(
            minutes, label="Sends per minute", time_format="%H:%M", zone=page.admin.zone
        )
        # The most harmful first: final failures, then failed attempts.
        failures = sorted(stats.failures, key=lambda f: (-f.final, -f.attempts, f.reason))
        peak = max((f.attempts for f in failures), default=0)
        charts["failures"] = [
            (f, progress_bar([Part("failed", f.attempts, "c-failed")], peak, label=f.reason))
            for f in failures
        ]
    c = view.counters
    if c is not None:
        charts["donut"] = donut(
            [*view.parts, Part("scheduled", c.scheduled_messages, "c-scheduled")],
            label="Messages by status",
        )
    return {"m": view, "stats": stats, "charts": charts}


@router.get("/{mailing_id}")
async def mailing_detail(
    page: ViewPage,
    mailing_id: str,
    status: str | None = None,
    p: str | None = None,
    cursor: str | None = None,
    notice: str | None = None,
) -> Response:
    view = await _one(page, mailing_id)
    if view is None:
        return _not_found(page)
    return await _detail(page, view, _messages_query(status, p, cursor), notice=notice)


@router.get("/{mailing_id}/live")
async def mailing_live(page: ViewPage, mailing_id: str) -> Response:
    view = await _one(page, mailing_id)
    if view is None:
        return _not_found(page)
    stats = await page.admin.stats.mailing(view.row.id) if page.admin.stats else None
    return render(
        page.request, "_mailing_live.html", session=page.session, **_live_context(page, view, stats)
    )


@router.get("/{mailing_id}/messages")
async def mailing_messages(
    page: ViewPage,
    mailing_id: str,
    status: str | None = None,
    p: str | None = None,
    cursor: str | None = None,
) -> Response:
    view = await _one(page, mailing_id)
    if view is None:
        return _not_found(page)
    context = await _messages(page, view, _messages_query(status, p, cursor))
    return render(page.request, "_messages.html", session=page.session, **context)


async def _resend(page: Page, view: MailingView) -> Response:
    """A follow-up to the recipients whose messages ended in the ticked statuses."""
    form = await page.request.form()
    statuses = [s for s in form.getlist("statuses") if isinstance(s, str)]
    try:
        row = await mailing_commands.resend(
            page.pool,
            view.row.id,
            {"statuses": statuses},
            now=datetime.now(UTC),
            max_segments=_settings(page).mailing_max_segments,
        )
    except MailingNotFound:
        return _not_found(page)
    except InvalidInput as exc:
        message = "; ".join(m for messages in exc.errors.values() for m in messages)
        return await _detail(
            page, view, MessagesQuery(None, 1, None), error=message, code=status_of(exc)
        )
    log.info("admin_mailing_resent", mailing_id=view.row.id, follow_up=row.id, sub=page.user.sub)
    return see_other(f"/admin/mailings/{row.id}?notice=resent")


@router.post("/{mailing_id}/{action}")
async def mailing_action(page: ChangePage, mailing_id: str, action: str) -> Response:
    await posted_form(page)
    view = await _one(page, mailing_id)
    if view is None or action not in ("cancel", "pause", "resume", "delete", "resend"):
        return _not_found(page)
    if action == "resend":
        return await _resend(page, view)
    now = datetime.now(UTC)
    final = view.counters.all_messages_final if view.counters else False
    try:
        if action == "delete":
            await mailing_commands.delete(page.pool, view.row.id, now=now)
        else:
            await mailing_commands.run(
                page.pool, view.row.id, Command(action), now=now, all_messages_final=final
            )
    except MailingNotFound:
        return _not_found(page)
    except DomainError as exc:
        first = MessagesQuery(None, 1, None)
        return await _detail(page, view, first, error=str(exc), code=status_of(exc))
    log.info("admin_mailing_command", mailing_id=view.row.id, command=action, sub=page.user.sub)
    if action == "delete":
        return see_other("/admin/mailings?notice=deleted")
    return see_other(f"/admin/mailings/{view.row.id}?notice={action}")
