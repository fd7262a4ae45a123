"""Client of the reporter's internal read API: counters per mailing and pages of its messages.

The reporter projects both from the message events; the gateway never counts messages itself.
One pooled ``httpx.AsyncClient`` per process (made in the app's lifespan) carries every call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

import httpx
import orjson
import structlog
from pydantic import BaseModel, SecretStr

from gateway.metrics import REPORTER_REQUESTS, REPORTER_SECONDS
from gateway.pagination import Cursor
from sms_events import reporter_contract as contract
from sms_events.bearer import bearer_header

__all__ = [
    "COUNTER_KEYS",
    "MESSAGE_KEYS",
    "ZERO",
    "Counters",
    "MessagePage",
    "ReporterClient",
    "ReporterError",
    "ReporterUnavailable",
    "make_http_client",
]

log = structlog.get_logger(__name__)

Answer = TypeVar("Answer", bound=BaseModel)

COUNTERS_PATH: Final = "/internal/v1/mailings/counters"
MESSAGES_PATH: Final = "/internal/v1/mailings/{mailing_id}/messages"
STATS_PATH: Final = "/internal/v1/stats"
MAILING_STATS_PATH: Final = "/internal/v1/mailings/{mailing_id}/stats"
MAX_IDS_PER_CALL: Final = 1000  # the reporter's limit
# The seed API's counter fields, in its order.
COUNTER_KEYS: Final = (
    "clients_count",
    "scheduled_messages",
    "created_messages",
    "delivered_messages",
    "undelivered_messages",
    "cancelled_messages",
)
MESSAGE_KEYS: Final = tuple(contract.Message.model_fields)  # the seed's order


class ReporterUnavailable(RuntimeError):
    """The reporter cannot answer now (down, timing out, 5xx, garbled): retry later."""


class ReporterError(RuntimeError):
    """The reporter refused a request (4xx): a bug on one side or the other, not an outage."""


@dataclass(frozen=True, slots=True)
class Counters:
    """A mailing's counters as the reporter projected them (all 0 before it saw anything)."""

    clients_count: int = 0
    scheduled_messages: int = 0
    created_messages: int = 0
    delivered_messages: int = 0
    undelivered_messages: int = 0
    cancelled_messages: int = 0
    resolved: bool = False  # the scheduler has resolved the audience (resolved_at is set)

    @property
    def all_messages_final(self) -> bool:
        """Every message is delivered, undelivered or cancelled, and none is still to come."""
        return self.resolved and self.scheduled_messages == 0

    def to_json(self) -> dict[str, int]:
        return {key: getattr(self, key) for key in COUNTER_KEYS}


ZERO: Final = Counters()


@dataclass(frozen=True, slots=True)
class MessagePage:
    """A page of messages, newest first, and how many the filter selects in all. The next page
    is the messages older than ``next_before``, the previous one those newer than
    ``previous_after`` (``None``: no such page)."""

    count: int
    results: list[dict[str, Any]]
    next_before: int | None = None
    previous_after: int | None = None


def _counters(raw: Any) -> Counters:
    parsed = contract.MailingCounters.model_validate(raw)
    values = {key: getattr(parsed, key) for key in COUNTER_KEYS}
    return Counters(**values, resolved=parsed.resolved_at is not None)


def make_http_client(base_url: str, timeout: float, token: SecretStr | None) -> httpx.AsyncClient:
    """The pooled HTTP client for the reporter, sending its token. Proxies from the
    environment are ignored: the reporter is an internal service, reached directly."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers=bearer_header(token.get_secret_value()) if token is not None else None,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        trust_env=False,
    )


class ReporterClient:
    def __init__(self, http: httpx.AsyncClient, *, timeout_s: float | None = None) -> None:
        self._http = http
        self._timeout: float | httpx._client.UseClientDefault = (
            httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s
        )

    def with_timeout(self, timeout_s: float) -> ReporterClient:
        """The same client (one connection pool) with another timeout per call: the admin's
        pages wait less than the API."""
        return ReporterClient(self._http, timeout_s=timeout_s)

    async def counters(self, mailing_ids: Sequence[int]) -> dict[int, Counters]:
        """Counters of each of ``mailing_ids``, ``ZERO`` for those the reporter does not know
        yet; one call per 1000 ids."""
        found: dict[int, Counters] = {}
        ids = list(dict.fromkeys(mailing_ids))
        for i in range(0, len(ids), MAX_IDS_PER_CALL):
            chunk = ids[i : i + MAX_IDS_PER_CALL]
            body = await self._get("counters", COUNTERS_PATH, {"ids": ",".join(map(str, chunk))})
            try:
                if not isinstance(body, Mapping):
                    raise ValueError("not an object")
                found |= {int(key): _counters(value) for key, value in body.items()}
            except (ValueError, KeyError, TypeError) as exc:
                raise self._garbled("counters", exc) from None
        return {mailing_id: found.get(mailing_id, ZERO) for mailing_id in ids}

    async def messages(
        self, mailing_id: int, *, status: str | None, at: int | Cursor, page_size: int
    ) -> MessagePage:
        """One page of a mailing's messages, newest first, and how many the filter selects:
        page number ``at`` (the reporter skips the pages before it), or the page a cursor
        points to (the reporter starts at its boundary)."""
        params: dict[str, Any] = {"page_size": page_size}
        if isinstance(at, Cursor):
            params[at.direction] = at.boundary
        else:
            params["page"] = at
        if status is not None:
            params["status"] = status
        body = await self._get("messages", MESSAGES_PATH.format(mailing_id=mailing_id), params)
        page = self._parse("messages", contract.MessagePage, body)
        # Each message passed through as the reporter rendered it (ISO 8601 with Z), checked
        # by the model above, in the seed's key order.
        return MessagePage(
            page.count,
            [{key: item[key] for key in MESSAGE_KEYS} for item in body["results"]],
            page.next_before,
            page.previous_after,
        )

    async def overall_stats(self, *, as_of: datetime | None = None) -> contract.OverallStats:
        """Figures over every mailing (read from the reporter's projections, or from the
        event history as they were at ``as_of``)."""
        body = await self._get("stats", STATS_PATH, _as_of_params(as_of))
        return self._parse("stats", contract.OverallStats, body)

    async def mailing_stats(
        self, mailing_id: int, *, as_of: datetime | None = None
    ) -> contract.MailingStats | None:
        """One mailing's figures (as they were at ``as_of``); None when the reporter has seen
        nothing of it yet (by then)."""
        body = await self._get(
            "mailing_stats",
            MAILING_STATS_PATH.format(mailing_id=mailing_id),
            _as_of_params(as_of),
            missing_ok=True,
        )
        return None if body is None else self._parse("mailing_stats", contract.MailingStats, body)

    async def _get(
        self, endpoint: str, path: str, params: Mapping[str, Any], *, missing_ok: bool = False
    ) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            try:
                response = await self._http.get(path, params=params, timeout=self._timeout)
            except httpx.HTTPError as exc:  # refused, reset, timed out
                outcome = "unreachable"
                log.warning("reporter_unavailable", endpoint=endpoint, error=type(exc).__name__)
                raise ReporterUnavailable(f"reporter unreachable: {type(exc).__name__}") from exc
            status = response.status_code
            if status == 404 and missing_ok:
                outcome = "ok"
                return None
            if status >= 500:
                outcome = "5xx"
                log.warning("reporter_unavailable", endpoint=endpoint, status=status)
                raise ReporterUnavailable(f"reporter answered {status}")
            if status != 200:
                log.error("reporter_refused", endpoint=endpoint, status=status)
                raise ReporterError(f"reporter answered {status} to {endpoint}")
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError as exc:
                raise self._garbled(endpoint, exc) from None
            outcome = "ok"
            return body
        finally:
            REPORTER_REQUESTS.labels(endpoint, outcome).inc()
            REPORTER_SECONDS.labels(endpoint).observe(time.perf_counter() - started)

    @classmethod
    def _parse(cls, endpoint: str, model: type[Answer], body: Any) -> Answer:
        try:
            return model.model_validate(body)
        except ValueError as exc:  # pydantic's ValidationError is one
            raise cls._garbled(endpoint, exc) from None

    @staticmethod
    def _garbled(endpoint: str, exc: Exception) -> ReporterUnavailable:
        log.error("reporter_answer_garbled", endpoint=endpoint, error=type(exc).__name__)
        return ReporterUnavailable(f"reporter answer to {endpoint} is garbled")


def _as_of_params(as_of: datetime | None) -> dict[str, str]:
    return {} if as_of is None else {"as_of": as_of.isoformat()}
