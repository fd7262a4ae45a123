"""Imports arrive as batch events (``clients.imported``): the scheduler's projection of a batch
equals its projection of the same clients' one-by-one events, and a redelivered batch changes
nothing.

Each world runs in a transaction that is rolled back, so both use the same client and mailing
ids and are compared row for row. The mailing is created before its clients and they join it by
following the base, so nothing here depends on how a new mailing's audience is first resolved.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import asyncpg

from scheduler.handlers import handle_batch
from sms_events.contracts import (
    ClientCreated,
    ClientDeleted,
    ClientsImported,
    ClientUpdated,
    Event,
    ImportedClient,
    MailingScheduled,
)
from sms_events.db import Connection
from sms_events.envelope import Envelope
from sms_events.store import appending
from sms_events.testing.factories import envelope_for

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
START = NOW + timedelta(hours=1)  # 13:00 UTC
AFTER_START = NOW + timedelta(hours=2)


def _id() -> int:
    return random.randint(10**9, 10**12)


def _state(cid: int, tag: str, zone: str = "UTC", phone: str | None = None) -> dict[str, Any]:
    return dict(
        client_id=cid, phone=phone or f"7999{cid % 10**7:07d}", operator_code="999", tag=tag,
        time_zone=zone, updated_at=NOW,
    )  # fmt: skip


Change = tuple[ClientCreated | ClientUpdated, int]
"""A client's new state and its version, as a command or an import writes it."""


def one_by_one(changes: Sequence[Change]) -> list[Envelope]:
    """The changes as a command would append them: one event per client, at its version."""
    return [envelope_for(event, version) for event, version in changes]


def _item(event: ClientCreated | ClientUpdated, version: int) -> ImportedClient:
    return ImportedClient(
        client_id=event.client_id, version=version, created=isinstance(event, ClientCreated),
        phone=event.phone, operator_code=event.operator_code, tag=event.tag,
        time_zone=event.time_zone,
    )  # fmt: skip


def as_import(*batches: Sequence[Change]) -> list[Envelope]:
    """The same changes as an import appends them: one ``clients.imported`` event per batch."""
    return [
        envelope_for(
            ClientsImported(
                batch_id=f"b{_id()}", imported_at=NOW, clients=[_item(e, v) for e, v in batch]
            )
        )
        for batch in batches
    ]


async def _snapshot(
    conn: Connection, clients: Sequence[int], mailing: int, since: int
) -> dict[str, Any]:
    """What the scheduler holds about these clients and this mailing, and the events it
    appended after global position ``since`` (message ids differ between worlds: left out)."""
    return {
        "clients": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT client_id, phone, operator_code, tag, time_zone, version"
                " FROM scheduler_clients WHERE client_id = ANY($1) ORDER BY client_id",
                clients,
            )
        ],
        "tombstones": [
            r["client_id"]
            for r in await conn.fetch(
                "SELECT client_id FROM scheduler_deleted_clients WHERE client_id = ANY($1)"
                " ORDER BY client_id",
                clients,
            )
        ],
        "messages": {
            r["client_id"]: (r["state"], r["due_at"], r["closes_at"], r["attempts"])
            for r in await conn.fetch(
                "SELECT client_id, state, due_at, closes_at, attempts FROM scheduler_messages"
                " WHERE mailing_id = $1",
                mailing,
            )
        },
        "events": sorted(
            (r["type"], r["n"])
            for r in await conn.fetch(
                """
                SELECT type, coalesce(jsonb_array_length(data->'messages'),
                                      jsonb_array_length(data->'message_ids')) AS n
                  FROM events
                 WHERE global_position > $1 AND (data->>'mailing_id')::bigint = $2
                """,
                since,
                mailing,
            )
        ),
    }


async def _world(
    pool: asyncpg.Pool,
    steps: Sequence[tuple[datetime, Sequence[Envelope]]],
    clients: Sequence[int],
    mailing: int,
) -> list[dict[str, Any]]:
    """Handle each step (one consumer batch at its time) and take a snapshot after each; then
    roll everything back."""
    snapshots = []
    async with pool.acquire() as conn:
        with contextlib.suppress(_RolledBack):
            async with appending(conn):  # the handlers append events, as in the consumer
                since = await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM events")
                for now, envelopes in steps:
                    async with conn.transaction():
                        await handle_batch(conn, envelopes, clock=lambda now=now: now)
                    snapshots.append(await _snapshot(conn, clients, mailing, since))
                raise _RolledBack
    return snapshots


class _RolledBack(Exception):
    """Leaves the world's transaction by rolling it back."""


def _mailing(mailing_id: int, tag: str) -> Event:
    # A 13:00-18:00 local window: 13:00 UTC for UTC clients, but 23:00 in Vladivostok (UTC+10),
    # whose clients are due at its next opening, 03:00 UTC the next day.
    return MailingScheduled(
        mailing_id=mailing_id, text="hello", datetime_start=START,
        datetime_end=START + timedelta(days=2), client_filter=tag,
        send_interval_time_start=time(13, 0), send_interval_time_end=time(18, 0), updated_at=NOW,
    )  # fmt: skip


async def test_a_batch_projects_like_the_same_clients_events_one_by_one(
    pool: asyncpg.Pool,
) -> None:
    tag = f"t{_id()}"
    a, b, c, d, e, f = (_id() for _ in range(6))
    mailing = _id()
    first = [(ClientCreated(**_state(cid, tag)), 1) for cid in (a, b, c, d)]
    # d is updated by an import (version 2) and then deleted by a command (version 3), but the
    # scheduler sees the deletion first: the late import must not bring d back.
    late_for_d: list[Change] = [(ClientUpdated(**_state(d, tag, "Asia/Omsk")), 2)]
    imported: list[Change] = [
        (ClientCreated(**_state(e, tag, phone=_state(d, tag)["phone"])), 1),  # d's phone again
        (ClientCreated(**_state(f, "other")), 1),
        (ClientUpdated(**_state(a, tag, "Asia/Vladivostok")), 2),  # moves
        (ClientUpdated(**_state(b, "other")), 2),  # leaves the audience
    ]
    # After the start: a command on a client the import changed, and one on a client it did
    # not touch, in the same consumer batch as the import's redelivery.
    later = [
        envelope_for(ClientUpdated(**_state(a, tag, "UTC")), 3),
        envelope_for(ClientDeleted(client_id=c, deleted_at=AFTER_START), 2),
    ]

    def steps(import_events: list[Envelope]) -> list[tuple[datetime, Sequence[Envelope]]]:
        return [
            (NOW, [envelope_for(_mailing(mailing, tag), 1), *one_by_one(first)]),
            (NOW, [envelope_for(ClientDeleted(client_id=d, deleted_at=NOW), 3)]),
            (NOW, import_events),
            (AFTER_START, [*import_events, *later]),
        ]

    clients = [a, b, c, d, e, f]
    per_client = await _world(pool, steps(one_by_one([*late_for_d, *imported])), clients, mailing)
    batched = await _world(
        pool, steps(as_import(late_for_d, imported[:2], imported[2:])), clients, mailing
    )
    assert batched == per_client

    # And the story is the one told above.
    after_import, final = batched[2], batched[3]
    assert set(after_import["messages"]) == {a, c, e}
    assert after_import["messages"][a][1] == datetime(2026, 6, 2, 3, 0, tzinfo=UTC)
    assert after_import["messages"][e][1] == START
    assert ("messages.withdrawn", 1) in after_import["events"]  # d, then b: one each
    assert after_import["tombstones"] == sorted([d])
    assert {row[0]: row[5] for row in final["clients"]} == {a: 3, b: 2, e: 1, f: 1}
    assert final["messages"][a][:2] == ("scheduled", AFTER_START)  # back in UTC, due now
    assert final["messages"][c][0] == "cancelled"
    assert final["tombstones"] == sorted([c, d])


async def test_a_redelivered_batch_changes_nothing(pool: asyncpg.Pool) -> None:
    tag = f"t{_id()}"
    clients = [_id() for _ in range(5)]
    mailing = _id()
    batch = as_import([(ClientCreated(**_state(cid, tag)), 1) for cid in clients])
    mailing_event = envelope_for(_mailing(mailing, tag), 1)
    once, again, out_of_order = await _world(
        pool,
        [(NOW, [mailing_event, *batch]), (NOW, batch), (AFTER_START, [*batch, *batch])],
        clients,
        mailing,
    )
    assert set(once["messages"]) == set(clients)
    assert once == again == out_of_order
