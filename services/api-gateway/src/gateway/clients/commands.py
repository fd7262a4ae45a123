"""Client commands: validate, write the read model and append the event in one transaction.

The read model row and the client's events move together, in one transaction, so they cannot
drift and a read right after a write sees it. A command that changes nothing appends nothing.

Versions: a client's events live in two kinds of stream
--------------------------------------------------------
``gateway_clients.version`` is the client's version, and every change moves it by one. A
command appends its event to ``client-<id>`` at that version; a bulk import carries the new
state as an item of a ``clients.imported`` batch event, in a stream of its own (see
``gateway.clients.importer``). So ``client-<id>`` has no event at the versions an import
wrote, and an imported client's stream may have no event at all: its head is no guide to the
client's version, and ``EventStore.append``'s expected version (checked against that head)
cannot be used. A command instead appends at the version of the read-model row it locked, plus one
(``append_versioned``). Concurrency stays checked: the row lock orders every writer of one client
(commands and imports alike), the row and the event commit together, and the unique (stream,
version) index refuses an event at a version already taken, as by someone appending behind the
read model's back; the command then fails and is retried, and answers 409 once
``sms_events.retrying.CONFLICTS`` gives up.
The alternative, an import appending one event per client to its stream as well, is exactly
the per-client cost that batching removes.

Order of writers of one client
------------------------------
Readers of the whole store (the outbox relay) order events by the id of the transaction that
wrote them, and PostgreSQL hands that id out at a transaction's first write, not at commit. So
the transaction writing version n+1 must have got its id after the one that wrote n. A row
lock is not enough: a transaction waiting for ``SELECT ... FOR UPDATE`` can be given its id
before another waiter that gets the row first. A command therefore first takes the client's
advisory stream lock, which assigns no transaction id: its id comes with its first write, after
the previous holder committed. An import has its id before it locks any row, so a command that
waited for an import's row lock always comes after it. Before appending, a command still checks
that no younger transaction wrote the client (on its stream or in an import batch) and is
otherwise retried in a new transaction.
"""

from __future__ import annotations

from typing import Any, Final

import asyncpg
import structlog

from gateway.clients.repository import (
    PHONE_CONSTRAINT,
    ClientRow,
    delete_client,
    insert_client,
    lock_client,
    lock_stream,
    update_client,
    written_after_us,
)
from gateway.clients.rules import apply_change
from gateway.clients.schemas import parse_change
from gateway.errors import InvalidInput, NotFound
from gateway.transactions import Guard, with_retries
from sms_events.contracts import ClientCreated, ClientDeleted, ClientUpdated
from sms_events.db import Connection
from sms_events.store import NO_STREAM, EventStore, NewEvent, WrongExpectedVersion

__all__ = ["ClientNotFound", "create", "delete", "update"]

log = structlog.get_logger(__name__)

PHONE_TAKEN: Final = "A client with this phone already exists."


class ClientNotFound(NotFound):
    """No client has this id (never had, or it was deleted)."""


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


async def _append_at(
    conn: Connection,
    event: ClientCreated | ClientUpdated | ClientDeleted,
    version: int,
    store: EventStore,
) -> None:
    """Append ``event`` to its client's stream at ``version``: the client's new version, one
    past that of the row the command locked (see the module docstring)."""
    stream = event.stream_id()
    if await written_after_us(conn, [event.client_id]):
        raise WrongExpectedVersion(stream, version - 1, None)  # retried in a new transaction
    await store.append_versioned([(stream, version, NewEvent(event))], conn=conn)


def _phone_taken(exc: asyncpg.UniqueViolationError) -> bool:
    return exc.constraint_name == PHONE_CONSTRAINT


async def create(pool: asyncpg.Pool, data: Any, guard: Guard[ClientRow] | None = None) -> ClientRow:
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

    return await with_retries(pool, attempt, guard=guard)


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
        await _append_at(conn, client_event(row, created=False), row.version, store)
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
        await _append_at(conn, event, version + 1, store)

    await with_retries(pool, attempt)
