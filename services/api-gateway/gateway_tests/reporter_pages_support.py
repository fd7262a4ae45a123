"""The reporter's message pages, computed the plain way, for the gateway tests' reporter doubles
(``integration/reporter_stub_support.py`` and ``admin/admin_support.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def page_of(rows: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """The page the reporter answers for ``query`` over ``rows`` (newest first), the plain way:
    by number, or the rows just older (``before``) or newer (``after``) than an id."""
    size = int(query.get("page_size", "100"))
    ids = [r["id"] for r in rows]
    if "before" in query:
        bound = int(query["before"])
        rest = [r for r in rows if r["id"] < bound]
        chosen, beyond = rest[:size], len(rest) > size
        behind = any(i >= bound for i in ids)
        following = chosen[-1]["id"] if beyond else None
        previous = (chosen[0]["id"] if chosen else bound - 1) if behind else None
    elif "after" in query:
        bound = int(query["after"])
        rest = [r for r in rows if r["id"] > bound]
        chosen, beyond = rest[-size:], len(rest) > size
        behind = any(i <= bound for i in ids)
        following = (chosen[-1]["id"] if chosen else bound + 1) if behind else None
        previous = chosen[0]["id"] if beyond else None
    else:
        page = int(query.get("page", "1"))
        chosen = rows[(page - 1) * size : page * size]
        following = chosen[-1]["id"] if chosen and len(rows) > page * size else None
        previous = chosen[0]["id"] if chosen and page > 1 else None
    return {
        "count": len(rows),
        "results": chosen,
        "next_before": following,
        "previous_after": previous,
    }
