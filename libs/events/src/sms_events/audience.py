"""Who gets a mailing: the mailing's ``client_filter`` against a client's operator code and tag.

Shared by the scheduler (which resolves audiences) and the gateway (which forecasts them): both
run ``matches_sql``, the set-based form of ``matches_filter``."""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["matches_filter", "matches_sql", "parse_client_filter"]


def parse_client_filter(text: str | None) -> frozenset[str]:
    """The items of a comma-separated ``client_filter``.

    Spaces around items and empty items are dropped, so ``" 999, vip ,,"`` gives
    ``{"999", "vip"}``. None, ``""`` or a text of only commas and spaces gives the empty set,
    which means every client.
    """
    if text is None:
        return frozenset()
    return frozenset(item for raw in text.split(",") if (item := raw.strip()))


def matches_filter(items: Collection[str], operator_code: str, tag: str | None) -> bool:
    """Whether a client is in the audience: no items, or its operator code or tag is one.

    Comparison is exact (case-sensitive), as in the old system; a client without a tag can
    match only by operator code.
    """
    if not items:
        return True
    return operator_code in items or (tag is not None and tag in items)


def matches_sql(n: int, alias: str = "c") -> str:
    """SQL: the row ``alias`` (with ``operator_code`` and ``tag`` columns) matches the filter
    items bound as ``$n`` (a ``text[]``, sorted ``parse_client_filter`` items), as
    ``matches_filter`` says: true or false, never null (a client without a tag is simply not
    matched by it)."""
    return (
        f"(cardinality(${n}::text[]) = 0 OR {alias}.operator_code = ANY(${n})"
        f" OR ({alias}.tag IS NOT NULL AND {alias}.tag = ANY(${n})))"
    )
