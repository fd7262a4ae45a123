"""The sessions page (admins only): who has an open session, with the role the current rule
gives them, and "log out everywhere" for a user, which revokes all of their sessions at once
(a stolen cookie, someone who left)."""

from __future__ import annotations

from typing import Final

import structlog
from fastapi import APIRouter, Response

from gateway.admin import session_store
from gateway.admin.roles import session_role
from gateway.admin.sessions import User
from gateway.admin.web import AdminRoute, SessionsPage, posted_form, render, see_other

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/admin/sessions", route_class=AdminRoute, include_in_schema=False)

SUBJECTS_SHOWN: Final = 200
MAX_SUBJECT: Final = 255


@router.get("")
async def session_list(page: SessionsPage, revoked: str | None = None) -> Response:
    subjects = await session_store.active_subjects(page.pool, SUBJECTS_SHOWN)
    rows = [
        (s, User.from_claims(s.claims), session_role(s.kind, s.claims, page.admin.rule))
        for s in subjects
    ]
    return render(
        page.request,
        "sessions.html",
        session=page.session,
        nav="sessions",
        rows=rows,
        revoked=int(revoked) if revoked and revoked.isascii() and revoked.isdigit() else None,
    )


@router.post("/revoke")
async def revoke(page: SessionsPage) -> Response:
    form = await posted_form(page)
    subject = form.get("subject")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT:
        return see_other("/admin/sessions")
    count = await session_store.revoke_subject(page.pool, subject)
    log.info("admin_sessions_revoked", sub=page.user.sub, subject=subject, sessions=count)
    return see_other(f"/admin/sessions?revoked={count}")
