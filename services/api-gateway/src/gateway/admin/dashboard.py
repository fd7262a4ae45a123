"""The dashboard: overall figures and charts from the reporter, and the latest mailings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from fastapi import APIRouter, Response

from gateway.admin.charts import Part, buckets, donut, fill_gaps, stacked_bars
from gateway.admin.mailing_pages import load_views
from gateway.admin.web import AdminRoute, Page, ViewPage, render
from gateway.mailings.lifecycle import MailingState
from gateway.mailings.repository import list_mailings
from gateway.pagination import PageRequest
from sms_events.reporter_contract import OverallStats

__all__ = ["router"]

router = APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)

RECENT: Final = 5
HOURS_SHOWN: Final = 48


def _charts(page: Page, overview: OverallStats | None) -> dict[str, Any]:
    if overview is None:
        return {}
    m = overview.messages
    hours = fill_gaps(buckets(overview.sends_per_hour), timedelta(hours=1), limit=HOURS_SHOWN)
    return {
        "per_hour": stacked_bars(
            hours, label="Sends per hour", time_format="%d.%m %H:00", zone=page.admin.zone
        ),
        "messages": donut(
            [
                Part("delivered", m["DL"], "c-delivered"),
                Part("undelivered", m["ND"], "c-failed"),
                Part("cancelled", m["CA"], "c-cancelled"),
                Part("scheduled", m["SC"], "c-scheduled"),
            ],
            label="Messages by status",
        ),
    }


async def _context(page: Page) -> dict[str, Any]:
    overview = await page.admin.stats.overview() if page.admin.stats else None
    return {
        "overview": overview,
        "charts": _charts(page, overview),
        "states": [s.value for s in MailingState],
    }


@router.get("")
@router.get("/")
async def dashboard(page: ViewPage) -> Response:
    _, _, rows = await list_mailings(page.pool, PageRequest(1, RECENT))
    recent, reporter_ok = await load_views(page, rows)
    return render(
        page.request,
        "dashboard.html",
        session=page.session,
        nav="dashboard",
        recent=recent,
        reporter_ok=reporter_ok,
        **await _context(page),
    )


@router.get("/live")
async def dashboard_live(page: ViewPage) -> Response:
    return render(
        page.request, "_dashboard_live.html", session=page.session, **await _context(page)
    )
