"""Mailing commands: decide, write the read model and append the event in one transaction.

The discipline is the client commands' (``gateway.clients.commands`` explains it): take the stream's
advisory lock before the first write, lock the row, append at the version read (the row's
``version`` is always the version of ``mailing-<id>``), and run the whole command again in a
new transaction when the store reports a conflict. A command that changes nothing appends
nothing.

Whether a mailing has finished early (every message final) is known only to the reporter; the
caller passes it in as ``all_messages_final``, read before the transaction so that no HTTP call
is made while holding the locks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from gateway.errors import NotFound
from gateway.mailings.lifecycle import Command, MailingState, mailing_state, transition
from gateway.mailings.repository import (
    MailingRow,
    cancel_mailing,
    delete_mailing,
    get_mailing,
    insert_mailing,
    lock_mailing,
    lock_stream,
    set_paused,
    update_mailing,
)
from gateway.mailings.rules import (
    check_deletable,
    edit,
    follow_up,
    new_mailing,
)
from gateway.mailings.schemas import parse_change, parse_resend
from gateway.transactions import Guard, with_retries
from sms_events.contracts import (
    Event,
    MailingCancelled,
    MailingDeleted,
    MailingPaused,
    MailingResumed,
    MailingScheduled,
    MailingUpdated,
)
from sms_events.db import Connection
from sms_events.store import NO_STREAM, EventStore

__all__ = ["MailingNotFound", "create", "delete", "resend", "run", "state_of", "update"]

SUBJECT = "mailing"


class MailingNotFound(NotFound):
    """No mailing has this id (never had, or it was deleted)."""


def state_of(row: MailingRow, now: datetime, all_messages_final: bool) -> MailingState:
    return mailing_state(
        now,
        start=row.datetime_start,
        end=row.datetime_end,
        paused=row.paused,
        cancelled=row.cancelled,
        all_messages_final=all_messages_final,
    )


def _state_event(cls: type[MailingScheduled | MailingUpdated], row: MailingRow) -> Event:
    return cls(
        mailing_id=row.id,
        text=row.text,
        datetime_start=row.datetime_start,
        datetime_end=row.datetime_end,
        send_interval_time_start=row.send_interval_time_start,
        send_interval_time_end=row.send_interval_time_end,
        client_filter=row.client_filter,
        updated_at=row.updated_at,
        source_mailing_id=row.source_mailing_id,
        source_statuses=row.source_statuses,
    )


async def _locked(conn: Connection, mailing_id: int) -> MailingRow:
    await lock_stream(conn, mailing_id)
    current = await lock_mailing(conn, mailing_id)
    if current is None:
        raise MailingNotFound(mailing_id)
    return current


async def _append(conn: Connection, store: EventStore, event: Event, version: int) -> None:
    await store.append(event.stream_id(), [event], expected_version=version, conn=conn)


async def create(
    pool: asyncpg.Pool,
    data: Any,
    *,
    now: datetime,
    max_segments: int = 0,
    guard: Guard[MailingRow] | None = None,
) -> MailingRow:
    """``POST``: a new mailing (``mailing.scheduled``); raises ``InvalidInput``."""
    mailing = new_mailing(parse_change(data, require=True), now, max_segments=max_segments)
    store = EventStore(pool)

    async def attempt(conn: Connection) -> MailingRow:
        # A new id from the sequence: nobody else can write this stream yet, no lock needed.
        row = await insert_mailing(conn, mailing)
        await _append(conn, store, _state_event(MailingScheduled, row), NO_STREAM)
        return row

    return await with_retries(pool, attempt, SUBJECT, guard)


async def resend(
    pool: asyncpg.Pool,
    source_id: int,
    data: Any,
    *,
    now: datetime,
    max_segments: int = 0,
    guard: Guard[MailingRow] | None = None,
) -> MailingRow:
    """``POST /{id}/resend/``: a follow-up mailing to the original's recipients whose messages
    ended in the requested statuses (``mailing.scheduled`` with ``source_mailing_id``); raises
    ``MailingNotFound`` or ``InvalidInput``."""
    statuses, change = parse_resend(data)
    store = EventStore(pool)

    async def attempt(conn: Connection) -> MailingRow:
        # The original is only read: a follow-up changes nothing of it.
        original = await get_mailing(conn, source_id)
        if original is None:
            raise MailingNotFound(source_id)
        mailing = follow_up(original.fields, change, now=now, max_segments=max_segments)
        row = await insert_mailing(conn, mailing, source_id, statuses)
        await _append(conn, store, _state_event(MailingScheduled, row), NO_STREAM)
        return row

    return await with_retries(pool, attempt, SUBJECT, guard)


async def update(
    pool: asyncpg.Pool,
    mailing_id: int,
    data: Any,
    *,
    partial: bool,
    now: datetime,
    all_messages_final: bool,
    max_segments: int = 0,
) -> MailingRow:
    """``PATCH`` (``partial``) or ``PUT``; raises ``MailingNotFound``, ``InvalidInput`` or
    ``EditRefused``."""
    change = parse_change(data, require=not partial)
    store = EventStore(pool)

    async def attempt(conn: Connection) -> MailingRow:
        current = await _locked(conn, mailing_id)
        state = state_of(current, now, all_messages_final)
        mailing = edit(current.fields, change, now=now, state=state, max_segments=max_segments)
        if mailing == current.fields:
            return current
        row = await update_mailing(conn, mailing_id, mailing)
        await _append(conn, store, _state_event(MailingUpdated, row), current.version)
        return row

    return await with_retries(pool, attempt, SUBJECT)


async def delete(pool: asyncpg.Pool, mailing_id: int, *, now: datetime) -> None:
    """``DELETE`` before the start: remove the row, append ``mailing.deleted``."""
    store = EventStore(pool)

    async def attempt(conn: Connection) -> None:
        current = await _locked(conn, mailing_id)
        check_deletable(current.fields, now)
        deleted_at = await delete_mailing(conn, mailing_id)
        event = MailingDeleted(mailing_id=mailing_id, deleted_at=deleted_at)
        await _append(conn, store, event, current.version)

    await with_retries(pool, attempt, SUBJECT)


async def run(
    pool: asyncpg.Pool,
    mailing_id: int,
    command: Command,
    *,
    now: datetime,
    all_messages_final: bool,
    guard: Guard[MailingRow] | None = None,
) -> MailingRow:
    """Cancel, pause or resume; raises ``MailingNotFound`` or ``CommandRejected``."""
    store = EventStore(pool)

    async def attempt(conn: Connection) -> MailingRow:
        current = await _locked(conn, mailing_id)
        state = state_of(current, now, all_messages_final)
        transition(state, command, now=now, start=current.datetime_start)
        event: Event
        if command is Command.CANCEL:
            row = await cancel_mailing(conn, mailing_id)
            assert row.cancelled_at is not None
            event = MailingCancelled(mailing_id=mailing_id, cancelled_at=row.cancelled_at)
        elif command is Command.PAUSE:
            row = await set_paused(conn, mailing_id, True)
            event = MailingPaused(mailing_id=mailing_id, paused_at=row.updated_at)
        else:
            row = await set_paused(conn, mailing_id, False)
            event = MailingResumed(mailing_id=mailing_id, resumed_at=row.updated_at)
        await _append(conn, store, event, current.version)
        return row

    return await with_retries(pool, attempt, SUBJECT, guard)
