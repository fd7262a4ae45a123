"""Claims: a provider call is written down before it is made, so that no two copies of a due
event (relay republish, redelivery after a crash, a stale hand-over recovered by the scheduler)
ever both call for the same (message, attempt).

A claim is a ``dispatcher_attempts`` row without an outcome, owned by one dispatcher process.
Each process holds a lease on its owner row (``dispatcher_owners``), renewed by a heartbeat. A
claim may be taken over only when its owner's lease has run out; the owner, for its part, starts
no call unless its lease is known to be valid for a while yet (``OwnerLease.valid``), measured
from before the renewal was sent. So a process that lost the database (and so its heartbeat)
stops calling before anyone may take its claims, and after a ``kill -9`` only the calls that
were on the wire can be made twice: at most the dispatcher's concurrency, because a call keeps
its concurrency slot until its outcome is recorded.

A lease that ran out is never renewed: the process continues under a new owner id, and the
messages it had claimed under the old one are handed back instead of called.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg
import structlog

from dispatcher.domain import PROJECTION_NAME
from dispatcher.provider import Outcome
from sms_events.db import Connection
from sms_events.replay import writing

__all__ = ["ClaimResult", "OwnerLease", "claim", "release"]

log = structlog.get_logger(__name__)

_FINAL = (Outcome.DELIVERED.value, Outcome.REJECTED.value)

# For each wanted (message, attempt): already done (a final outcome, this attempt's outcome,
# or a later attempt), newly claimed by us, or held by a claim whose owner is alive (and who
# owns it). A claim whose owner's lease ran out is taken over.
_CLAIM = f"""
WITH wanted AS (
    SELECT * FROM unnest($1::bigint[], $2::int[]) AS w(message_id, attempt)
), judged AS (
    SELECT w.message_id, w.attempt,
           EXISTS (SELECT 1 FROM dispatcher_attempts a
                   WHERE a.message_id = w.message_id
                     AND (a.outcome IN {_FINAL} OR a.attempt > w.attempt
                          OR (a.attempt = w.attempt AND a.outcome IS NOT NULL))) AS done
    FROM wanted w
), claimed AS (
    INSERT INTO dispatcher_attempts AS a (message_id, attempt, owner)
    SELECT message_id, attempt, $3 FROM judged WHERE NOT done
    ON CONFLICT (message_id, attempt) DO UPDATE SET owner = excluded.owner, at = now()
     WHERE a.outcome IS NULL
       AND NOT EXISTS (SELECT 1 FROM dispatcher_owners o
                       WHERE o.owner = a.owner AND o.alive_until > now())
    RETURNING a.message_id
)
SELECT j.message_id, j.done, c.message_id IS NOT NULL AS claimed, h.owner AS holder,
       coalesce(o.alive_until, now()) AS held_until
FROM judged j LEFT JOIN claimed c USING (message_id)
LEFT JOIN dispatcher_attempts h ON h.message_id = j.message_id AND h.attempt = j.attempt
LEFT JOIN dispatcher_owners o ON o.owner = h.owner
"""


@dataclass(frozen=True, slots=True)
class ClaimResult:
    claimed: frozenset[int] = frozenset()
    """Ours to call now."""
    busy: Mapping[int, datetime] = field(default_factory=dict)
    """Claimed by a live owner (another process, or another copy here), with the end of that
    owner's lease: hand them back until then (the owner records them, or its claim lapses)."""
    done: frozenset[int] = frozenset()
    """Already called or settled: its outcome event exists, nothing to do."""


async def claim(
    conn: Connection,
    owner: UUID,
    wanted: Iterable[tuple[int, int]],
) -> ClaimResult:
    """Claim the (message id, attempt) pairs in one statement. The caller has reserved them
    within its process, so a claim of ``owner``'s own was left by a handler attempt that
    failed, and is ours again."""
    pairs = list(wanted)
    if not pairs:
        return ClaimResult()
    async with conn.transaction():
        # Claims live in a rebuilt table (carried over at a swap): no swap while one is written.
        await writing(conn, PROJECTION_NAME)
        rows = await conn.fetch(_CLAIM, [m for m, _ in pairs], [a for _, a in pairs], owner)
    claimed: set[int] = set()
    busy: dict[int, datetime] = {}
    done: set[int] = set()
    for r in rows:
        m = r["message_id"]
        if r["done"]:
            done.add(m)
        elif r["claimed"] or r["holder"] == owner:
            claimed.add(m)
        else:
            busy[m] = r["held_until"]
    return ClaimResult(frozenset(claimed), busy, frozenset(done))


async def release(conn: Connection, owner: UUID, pairs: list[tuple[int, int]]) -> None:
    """Drop our claims of (message, attempt) pairs handed back without a call, so that the next
    hand-over of the same attempt can claim it at once. In the caller's transaction, which has
    announced it writes the dispatcher's records (``recorder.py``)."""
    if pairs:
        await conn.execute(
            """
            DELETE FROM dispatcher_attempts a
            USING unnest($1::bigint[], $2::int[]) AS u(message_id, attempt)
            WHERE a.message_id = u.message_id AND a.attempt = u.attempt
              AND a.owner = $3 AND a.outcome IS NULL
            """,
            [m for m, _ in pairs],
            [a for _, a in pairs],
            owner,
        )


@dataclass
class OwnerLease:
    """This process's owner id and how long its lease is known to be valid."""

    pool: asyncpg.Pool
    ttl_s: float
    owner: UUID = field(default_factory=uuid4)
    _valid_until: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def margin_s(self) -> float:
        # A call that starts just before the lease is thought to end must still be covered:
        # stop starting calls a while before, longer than any clock or scheduling hiccup.
        return min(self.ttl_s / 3, 10.0)

    def valid(self) -> bool:
        return time.monotonic() < self._valid_until

    async def renew(self) -> None:
        """Extend the lease; when it had run out, continue under a new owner id."""
        sent = time.monotonic()
        async with self.pool.acquire() as conn:
            renewed = await conn.fetchval(
                """
                INSERT INTO dispatcher_owners AS o (owner, alive_until)
                VALUES ($1, now() + make_interval(secs => $2))
                ON CONFLICT (owner) DO UPDATE SET alive_until = excluded.alive_until
                 WHERE o.alive_until > now()
                RETURNING owner
                """,
                self.owner,
                self.ttl_s,
            )
            if renewed is None:
                log.warning("dispatcher_lease_lost", ttl_s=self.ttl_s)
                self.owner = uuid4()
                self._valid_until = 0.0
                self.changed.set()
                return await self.renew()
            # Owners gone for a day hold no claim anyone waits for (theirs are takeable).
            await conn.execute(
                "DELETE FROM dispatcher_owners WHERE alive_until < now() - interval '1 day'"
            )
        self._valid_until = sent + self.ttl_s - self.margin_s

    async def run(self, stop: asyncio.Event) -> None:
        """Renew every quarter of the lease until ``stop``; errors are waited out."""
        failing = False
        while not stop.is_set():
            try:
                await self.renew()
                if failing:
                    log.info("dispatcher_lease_renewed")
                failing = False
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                if not failing:  # once per outage, not once per try
                    log.warning("dispatcher_lease_renewal_failing", error=type(exc).__name__)
                failing = True
            # After a failure, try again soon: sending resumes as soon as the database is back.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0 if failing else self.ttl_s / 4)
