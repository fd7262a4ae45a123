"""Client commands: validate, write the read model and append the event in one transaction.

The read model row and the stream move together: ``gateway_clients.version`` is always the
version of ``client-<id>``, and both are written in one transaction, so they cannot drift and a
read right after a write sees it. A command that changes nothing appends nothing.

Order of writers on one stream
------------------------------
Readers of the whole store (the outbox relay) order events by the id of the transaction that
wrote them, and PostgreSQL hands that id out at a transaction's first write, not at commit. So
the transaction appending version n+1 must have got its id after the one that appended n. A row
lock is not enough: a transaction waiting for ``SELECT ... FOR UPDATE`` can be given its id
before another waiter that gets the row first. A command therefore first takes the client's
advisory stream lock, which assigns no transaction id: its id comes with its first write, after
the previous holder committed. The event store double-checks (an append whose stream head was
written by a younger transaction fails) and the command is retried in a new transaction.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import asyncpg
import structlog

from gateway.domain import InvalidInput, apply_change, parse_change
from gateway.repository import (
    PHONE_CONSTRAINT,
    ClientRow,
    delete_client,
    insert_client,
    lock_client,
    lock_stream,
    update_client,
)
from sms_events.contracts import ClientCreated, ClientDeleted, ClientUpdated
from sms_events.db import Connection
from sms_events.store import NO_STREAM, EventStore, WrongExpectedVersion, appending

__all__ = [
    "ATTEMPTS",
    "ClientNotFound",
    "ConcurrentModification",
    "create",
    "delete",
    "update",
    "with_retries",
]

log = structlog.get_logger(__name__)

ATTEMPTS: Final = 5
PHONE_TAKEN: Final = "A client with this phone already exists."

T = TypeVar("T")

# Conflicts that a fresh attempt of the same command resolves.
_RETRYABLE = (WrongExpectedVersion, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class ClientNotFound(LookupError):
    """No client has this id (never had, or it was deleted)."""


class ConcurrentModification(RuntimeError):
    """A stream kept moving under us; the caller may retry the request."""

    def __init__(self, subject: str = "client") -> None:
        super().__init__(f"the {subject} was modified concurrently")
        self.subject = subject


def client_event(row: ClientRow, *, created: bool) -> ClientCreated | ClientUpdated:
    """The event carrying a client's full state after a create or an update."""
    cls = ClientCreated if created else ClientUpdated
    return cls(
        client_id=row.id,
        phone=row.phone,
        operator_code=row.operator_code,
        tag=row.tag,
        time_zone=row.time_zone,
        updated_at=row.updated_at,
    )


def _phone_taken(exc: asyncpg.UniqueViolationError) -> bool:
    return exc.constraint_name == PHONE_CONSTRAINT


async def with_retries(
    pool: asyncpg.Pool, attempt: Callable[[Connection], Awaitable[T]], subject: str = "client"
) -> T:
    """Run ``attempt`` in a transaction of its own, again in a new one (so with a new
    transaction id) after a version conflict; ``ConcurrentModification`` after ``ATTEMPTS``."""
    for n in range(1, ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, appending(conn):
                return await attempt(conn)
        except _RETRYABLE as exc:
            log.warning("command_conflict", subject=subject, attempt=n, error=type(exc).__name__)
            await asyncio.sleep(random.uniform(0, 0.01 * 2**n))  # let the other writer finish
    raise ConcurrentModification(subject)


async def create(pool: asyncpg.Pool, data: Any) -> ClientRow:
    """``POST``: a new client from a request body; raises ``InvalidInput``."""
    state = apply_change(None, parse_change(data, require_phone=True))
    store = EventStore(pool)

    async def attempt(conn: Connection) -> ClientRow:
        row = await insert_client(conn, state)
        if row is None:
            raise InvalidInput({"phone": [PHONE_TAKEN]})
        event = client_event(row, created=True)
        await store.append(event.stream_id(), [event], expected_version=NO_STREAM, conn=conn)
        return row

    return await with_retries(pool, attempt)


async def update(pool: asyncpg.Pool, client_id: int, data: Any, *, partial: bool) -> ClientRow:
    """``PATCH`` (``partial``) or ``PUT``; raises ``ClientNotFound`` or ``InvalidInput``."""
    store = EventStore(pool)

    async def attempt(conn: Connection) -> ClientRow:
        await lock_stream(conn, client_id)
        current = await lock_client(conn, client_id)
        if current is None:
            raise ClientNotFound(client_id)
        state = apply_change(current.state, parse_change(data, require_phone=not partial))
        if state == current.state:
            return current
        try:
            row = await update_client(conn, client_id, state)
        except asyncpg.UniqueViolationError as exc:
            if _phone_taken(exc):
                raise InvalidInput({"phone": [PHONE_TAKEN]}) from None
            raise
        event = client_event(row, created=False)
        await store.append(event.stream_id(), [event], expected_version=current.version, conn=conn)
        return row

    return await with_retries(pool, attempt)


async def delete(pool: asyncpg.Pool, client_id: int) -> None:
    """``DELETE``: remove the row and append ``client.deleted``; raises ``ClientNotFound``."""
    store = EventStore(pool)

    async def attempt(conn: Connection) -> None:
        await lock_stream(conn, client_id)
        removed = await delete_client(conn, client_id)
        if removed is None:
            raise ClientNotFound(client_id)
        version, deleted_at = removed
        event = ClientDeleted(client_id=client_id, deleted_at=deleted_at)
        await store.append(event.stream_id(), [event], expected_version=version, conn=conn)

    await with_retries(pool, attempt)
