"""The History card of a mailing's or a client's page: the latest entries of the audit trail
(``gateway.audit``, the API's own query) for that stream, for the roles that may see it."""

from __future__ import annotations

from typing import Final

from gateway import audit
from gateway.admin.roles import Permission
from gateway.admin.web import Page

__all__ = ["HISTORY_SHOWN", "history"]

HISTORY_SHOWN: Final = 20


async def history(
    page: Page, *, mailing_id: int | None = None, client_id: int | None = None
) -> list[audit.AuditEntry] | None:
    """The latest changes and who made them; ``None`` (no card) unless the role may audit."""
    stream = audit.stream_of(mailing_id, client_id)
    if stream is None or not page.may(Permission.AUDIT):
        return None
    return await audit.entries(page.pool, limit=HISTORY_SHOWN, stream=stream)
