"""Imports arrive as batch events (``clients.imported``): the reporter's client count and rows
after a batch equal those after the same clients' one-by-one events, and a redelivered batch
changes nothing.

Each world runs in a transaction that is rolled back, so both use the same client ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from reporter.handlers import handle_batch
from sms_events.contracts import (
    ClientCreated,
    ClientDeleted,
    ClientsImported,
    ClientUpdated,
    Event,
    ImportedClient,
)
from sms_events.envelope import Envelope

from .reporter_support import T0, envelope, new_id


def _created(cid: int) -> ClientCreated:
    return ClientCreated(
        client_id=cid, phone="79991234567", operator_code="999", time_zone="UTC", updated_at=T0
    )


def _updated(cid: int) -> ClientUpdated:
    return ClientUpdated(**_created(cid).model_dump())


def _deleted(cid: int) -> ClientDeleted:
    return ClientDeleted(client_id=cid, deleted_at=T0)


def _imported(*changes: ClientCreated | ClientUpdated) -> ClientsImported:
    """The same changes as an import appends them, in one batch event."""
    return ClientsImported(
        batch_id=f"b{new_id()}",
        imported_at=T0,
        clients=[
            ImportedClient(
                client_id=e.client_id,
                version=1 if isinstance(e, ClientCreated) else 2,
                created=isinstance(e, ClientCreated),
                phone=e.phone,
                operator_code=e.operator_code,
                tag=e.tag,
                time_zone=e.time_zone,
            )
            for e in changes
        ],
    )


async def _world(
    pool: asyncpg.Pool, batches: Sequence[Sequence[Event | Envelope]], clients: Sequence[int]
) -> list[dict[str, Any]]:
    """Project each batch in turn; after each, how the client count moved and the rows of these
    clients. Everything is rolled back at the end."""
    seen = []
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            count = "SELECT coalesce(sum(value), 0) FROM reporter_totals WHERE name = 'clients'"
            before = await conn.fetchval(count)
            for items in batches:
                envelopes = [i if isinstance(i, Envelope) else envelope(i) for i in items]
                async with conn.transaction():
                    await handle_batch(conn, envelopes)
                rows = await conn.fetch(
                    "SELECT client_id, created, deleted_at IS NOT NULL AS deleted"
                    " FROM reporter_clients WHERE client_id = ANY($1) ORDER BY client_id",
                    clients,
                )
                seen.append(
                    {"moved": await conn.fetchval(count) - before, "rows": [tuple(r) for r in rows]}
                )
        finally:
            await tx.rollback()
    return seen


async def test_a_batch_counts_like_the_same_clients_events_one_by_one(pool: asyncpg.Pool) -> None:
    kept, updated, deleted, again, late = (new_id() for _ in range(5))
    clients = [kept, updated, deleted, again, late]
    # Before the import: two clients exist, one is then deleted; a fifth is deleted before its
    # creation (by an import) reaches the reporter. The import creates kept and again (the
    # deleted client's phone imported anew: a new id) and late, and updates updated.
    before: list[Event] = [_created(updated), _created(deleted), _deleted(deleted), _deleted(late)]
    changes = [_created(kept), _updated(updated), _created(again), _created(late)]
    one_by_one = [envelope(e) for e in changes]
    batch = [envelope(_imported(*changes[:2])), envelope(_imported(*changes[2:]))]

    per_client = await _world(pool, [before, one_by_one, one_by_one], clients)
    batched = await _world(pool, [before, batch, batch], clients)
    assert batched == per_client
    assert [w["moved"] for w in batched] == [1, 3, 3]  # the redelivery counts nothing


async def test_an_imported_update_is_no_new_client(pool: asyncpg.Pool) -> None:
    cid = new_id()
    (seen,) = await _world(pool, [[_imported(_updated(cid))]], [cid])
    assert seen == {"moved": 0, "rows": []}
