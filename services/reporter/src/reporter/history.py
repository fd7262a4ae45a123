"""Statistics as they were at a past moment (``?as_of=``): the reporter's own fold over the
events the store had recorded by then, into temporary tables (``sms_events.replay.at_moment``),
read by the same queries as the live figures. The live projections are never touched.

Answers are kept per (mailing, second): a moment is taken to its second (floored) and the
answer for a second never changes once that second is further back than any transaction lasts
(``STRAGGLER``), so it is cached then; a question about the last few minutes is answered afresh.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg

from reporter import queries
from reporter.projection import PROJECTION
from sms_events.contracts import ClientCreated, ClientDeleted, ClientsImported
from sms_events.envelope import Envelope
from sms_events.replay import STRAGGLER, at_moment, first_position

__all__ = ["BUCKET", "History"]

BUCKET: Final = timedelta(seconds=1)
_CLIENT_TYPES = frozenset(
    {ClientCreated.event_type, ClientDeleted.event_type, ClientsImported.event_type}
)


def bucket_of(moment: datetime) -> datetime:
    """The start of the second ``moment`` falls in: the moment an answer is given for."""
    return moment.replace(microsecond=0)


class History:
    """Answers ``as_of`` questions, with a bounded cache of settled answers."""

    def __init__(self, pool: asyncpg.Pool, *, cache_size: int = 256) -> None:
        self._pool = pool
        self._cache: OrderedDict[tuple[int | None, datetime], Any] = OrderedDict()
        self._cache_size = cache_size

    async def overview(self, moment: datetime, now: datetime) -> dict[str, Any]:
        """``queries.overview`` as of ``moment`` (floored to the second)."""
        at = bucket_of(moment)

        async def compute() -> dict[str, Any]:
            return await at_moment(
                self._pool, PROJECTION, at, lambda conn: queries.overview_on(conn, at)
            )

        return dict(await self._cached((None, at), now, compute))

    async def mailing_stats(
        self, mailing_id: int, moment: datetime, now: datetime
    ) -> dict[str, Any] | None:
        """``queries.mailing_stats`` as of ``moment`` (floored to the second); None if the
        mailing did not exist then. Reads from the mailing's first event on, and only its."""
        at = bucket_of(moment)

        def ours(env: Envelope) -> bool:
            return env.type not in _CLIENT_TYPES and env.data.get("mailing_id") == mailing_id

        async def compute() -> dict[str, Any] | None:
            start = await first_position(self._pool, f"mailing-{mailing_id}")
            return await at_moment(
                self._pool,
                PROJECTION,
                at,
                lambda conn: queries.mailing_stats_on(conn, mailing_id),
                keep=ours,
                start=start,
            )

        found = await self._cached((mailing_id, at), now, compute)
        return dict(found) if found is not None else None

    async def _cached(self, key: tuple[int | None, datetime], now: datetime, compute: Any) -> Any:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        answer = await compute()
        if key[1] + BUCKET + STRAGGLER < now:  # settled: no event can still join that second
            self._cache[key] = answer
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return answer
