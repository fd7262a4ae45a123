"""Opt-out commands: write the list and append the event in one transaction.

A single change is appended to opt_out-<phone> at the version the row returned
(``append_versioned``: the unique (stream, version) index refuses a version taken behind the
list's back, and the command is retried). Projections keep the newest version per phone, so the
order in which the events of different phones (or an import's batches) arrive does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import structlog

from gateway.metrics import OPT_OUTS
from gateway.opt_outs import repository
from gateway.opt_outs.repository import OptOutRow
from gateway.transactions import Guard, with_retries
from sms_events.contracts import OptOutRecorded, OptOutRemoved, OptOutSource
from sms_events.db import Connection
from sms_events.store import EventStore, NewEvent

__all__ = ["NotOptedOut", "Recorded", "record", "remove"]

log = structlog.get_logger(__name__)


class NotOptedOut(LookupError):
    """The phone is not on the suppression list (a 404)."""


@dataclass(frozen=True, slots=True)
class Recorded:
    row: OptOutRow
    created: bool  # False: the phone was on the list already; nothing was written


async def record(
    pool: asyncpg.Pool,
    phone: str,
    reason: str | None,
    source: OptOutSource,
    guard: Guard[Recorded] | None = None,
) -> Recorded:
    """Put ``phone`` on the list (``opt_out.recorded``); one already on it is left as it is."""
    store = EventStore(pool)

    async def attempt(conn: Connection) -> Recorded:
        row = await repository.record(conn, phone, reason, source)
        if row is None:
            current = await repository.get_opt_out(conn, phone)
            assert current is not None  # the upsert found it on the list, under our lock
            return Recorded(current, created=False)
        event = OptOutRecorded(
            phone=phone, reason=reason, source=source, opted_out_at=row.opted_out_at
        )
        await store.append_versioned([(event.stream_id(), row.version, NewEvent(event))], conn=conn)
        return Recorded(row, created=True)

    done = await with_retries(pool, attempt, subject="opt-out", guard=guard)
    if done.created:
        OPT_OUTS.labels(source).inc()
        log.info("opt_out_recorded", source=source)
    return done


async def remove(pool: asyncpg.Pool, phone: str) -> None:
    """Take ``phone`` off the list (``opt_out.removed``); raises ``NotOptedOut``."""
    store = EventStore(pool)

    async def attempt(conn: Connection) -> None:
        removed = await repository.remove(conn, phone)
        if removed is None:
            raise NotOptedOut(phone)
        version, at = removed
        event = OptOutRemoved(phone=phone, removed_at=at)
        await store.append_versioned([(event.stream_id(), version, NewEvent(event))], conn=conn)

    await with_retries(pool, attempt, subject="opt-out")
    log.info("opt_out_removed")
