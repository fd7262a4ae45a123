"""Internal HTTP read API for the gateway, served beside /healthz, /readyz and /metrics.

Its answers' schemas are declared once, in ``sms_events.reporter_contract`` (the gateway parses
with them too), and served as OpenAPI at ``/openapi.json``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from reporter import queries
from reporter.domain import Status
from reporter.history import History
from reporter.message_pages import MAX_MESSAGE_ID, Newer, Older, PageNumber, Position, messages_page
from sms_events.bearer import bearer_matches
from sms_events.replay import parse_moment
from sms_events.reporter_contract import openapi
from sms_events.runtime import RUNTIME

__all__ = ["MAX_IDS", "MAX_PAGE_SIZE", "ROUTES"]

MAX_IDS = 1000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
_MAX_BIGINT = 2**63 - 1
_FILTERABLE = {s.value: s for s in Status if s is not Status.WITHDRAWN}


class _BadParameter(Exception):
    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(reason)
        self.parameter = parameter
        self.reason = reason


def _json(body: Any, status: int = 200) -> web.Response:
    # OPT_UTC_Z: timestamps read back as UTC render as 2024-02-14T08:47:43.474183Z.
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_UTC_Z),
        status=status,
        content_type="application/json",
    )


def _digits(text: str, limit: int) -> int | None:
    """The value of a plain decimal ``text`` within 1..limit, else None."""
    if not text.isascii() or not text.isdigit() or len(text) > len(str(limit)):
        return None
    value = int(text)
    return value if 1 <= value <= limit else None


def _id(parameter: str, text: str) -> int:
    value = _digits(text.strip(), _MAX_BIGINT)
    if value is None:
        raise _BadParameter(parameter, f"{text[:40]!r} is not a positive integer id")
    return value


def _positive(request: web.Request, parameter: str, default: int, maximum: int | None) -> int:
    text = request.query.get(parameter)
    if text is None:
        return default
    value = _digits(text, _MAX_BIGINT)
    if value is None:
        raise _BadParameter(parameter, "must be a positive integer")
    if maximum is not None and value > maximum:
        raise _BadParameter(parameter, f"must be at most {maximum}")
    return value


def _position(request: web.Request) -> Position:
    """``?page=`` (a number, read with OFFSET), ``?before=`` or ``?after=`` (a message id: the
    page just older or newer than it); at most one of them, page 1 without any."""
    given = [name for name in ("page", "before", "after") if name in request.query]
    if len(given) > 1:
        raise _BadParameter(given[1], "give only one of page, before, after")
    if not given or given[0] == "page":
        return PageNumber(_positive(request, "page", 1, None))
    text = request.query[given[0]]
    # 0 is a boundary too: "after=0" is every message.
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_MESSAGE_ID)):
        raise _BadParameter(given[0], "must be a message id")
    boundary = int(text)
    if boundary > MAX_MESSAGE_ID:
        raise _BadParameter(given[0], "must be a message id")
    return Older(boundary) if given[0] == "before" else Newer(boundary)


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _answers_400(handler: Handler) -> Handler:
    """Turn a bad query or path parameter into a 400 that says which one and why."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except _BadParameter as exc:
            body = {"error": "invalid_parameter", "parameter": exc.parameter, "reason": exc.reason}
            return _json(body, 400)

    return wrapped


@_answers_400
async def mailing_counters(request: web.Request) -> web.Response:
    """GET /internal/v1/mailings/counters?ids=1,2,3 -> {"1": {...}, ...}; unknown ids absent."""
    raw = request.query.get("ids")
    if raw is None:
        raise _BadParameter("ids", "required: comma-separated mailing ids")
    items = [part for part in raw.split(",") if part.strip()]
    if len(items) > MAX_IDS:
        raise _BadParameter("ids", f"at most {MAX_IDS} ids per request")
    ids = sorted({_id("ids", part) for part in items})
    found = await queries.counters(request.app[RUNTIME].pool, ids) if ids else {}
    return _json({str(k): v for k, v in found.items()})


@_answers_400
async def mailing_messages(request: web.Request) -> web.Response:
    """GET /internal/v1/mailings/{id}/messages?status=&page_size=&page=|before=|after=
    -> {count, results, next_before, previous_after}: the next page is ``?before=next_before``,
    the previous one ``?after=previous_after`` (null: none). See ``reporter.message_pages``."""
    mailing_id = _id("mailing_id", request.match_info["mailing_id"])
    status_text = request.query.get("status")
    status = None
    if status_text is not None:
        status = _FILTERABLE.get(status_text)
        if status is None:
            raise _BadParameter("status", f"must be one of {', '.join(_FILTERABLE)}")
    position = _position(request)
    page_size = _positive(request, "page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    page = await messages_page(request.app[RUNTIME].pool, mailing_id, status, position, page_size)
    return _json(
        {
            "count": page.count,
            "results": page.results,
            "next_before": page.next_before,
            "previous_after": page.previous_after,
        }
    )


def _as_of(request: web.Request, now: datetime) -> datetime | None:
    text = request.query.get("as_of")
    if text is None:
        return None
    try:
        return parse_moment(text, now)
    except ValueError as exc:
        raise _BadParameter("as_of", str(exc)) from None


# One History (and its cache) per pool, that is per reporter process.
_HISTORIES: dict[int, History] = {}


def _history(request: web.Request) -> History:
    pool = request.app[RUNTIME].pool
    found = _HISTORIES.get(id(pool))
    if found is None:
        found = _HISTORIES[id(pool)] = History(pool)
    return found


@_answers_400
async def stats(request: web.Request) -> web.Response:
    """GET /internal/v1/stats[?as_of=] -> clients, mailings by state, messages by status,
    delivery rate, sends per hour of the 24 hours up to now (or ``as_of``), oldest first."""
    now = datetime.now(UTC)
    moment = _as_of(request, now)
    if moment is not None:
        return _json(await _history(request).overview(moment, now))
    return _json(await queries.overview(request.app[RUNTIME].pool, now))


@_answers_400
async def mailing_stats(request: web.Request) -> web.Response:
    """GET /internal/v1/mailings/{id}/stats[?as_of=] -> one mailing's statistics (as they were
    at ``as_of``); 404 if unknown (then)."""
    mailing_id = _id("mailing_id", request.match_info["mailing_id"])
    now = datetime.now(UTC)
    moment = _as_of(request, now)
    if moment is not None:
        found = await _history(request).mailing_stats(mailing_id, moment, now)
    else:
        found = await queries.mailing_stats(request.app[RUNTIME].pool, mailing_id)
    if found is None:
        return _json({"error": "not_found", "mailing_id": mailing_id}, 404)
    return _json(found)


_OPENAPI = orjson.dumps(openapi())


async def openapi_document(request: web.Request) -> web.Response:
    """GET /openapi.json -> the API's OpenAPI document (sms_events.reporter_contract)."""
    return web.Response(body=_OPENAPI, content_type="application/json")


def _authorized(handler: Handler) -> Handler:
    """401 unless the request carries INTERNAL_API_TOKEN (when one is set: without it the
    reporter binds loopback only, see config)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.Response:
        # (getattr: tests serve these routes with the shared settings, which have no token)
        token = getattr(request.app[RUNTIME].settings, "internal_api_token", None)
        if token is not None and not bearer_matches(
            request.headers.get("Authorization"), token.get_secret_value()
        ):
            return _json({"error": "unauthorized"}, 401)
        return await handler(request)

    return wrapped


ROUTES = [
    web.get(path, _authorized(handler))
    for path, handler in (
        ("/internal/v1/stats", stats),
        ("/internal/v1/mailings/counters", mailing_counters),
        ("/internal/v1/mailings/{mailing_id}/messages", mailing_messages),
        ("/internal/v1/mailings/{mailing_id}/stats", mailing_stats),
        ("/openapi.json", openapi_document),
    )
]
