"""Opt-outs as the scheduler applies them, against the real PostgreSQL: resolution leaves listed
phones out; an opt-out withdraws (before the start) or cancels with reason opted_out (after it)
their unsent messages; a hand-back of an opted-out phone's message is cancelled, not retried;
coming off the list brings a phone back into mailings not started yet; versions keep late and
repeated events harmless."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from scheduler.timer import hand_over_due
from sms_events.contracts import (
    OPTED_OUT,
    FailedAttempt,
    ImportedOptOut,
    MessageAttemptsFailed,
    OptOutRecorded,
    OptOutRemoved,
    OptOutsImported,
)
from sms_events.store import appending

from .schedule_support import (
    NOW,
    apply_events,
    client_created,
    mailing_scheduled,
    new_id,
    stored_events,
    stored_messages,
)


def _phone(client_id: int, code: str = "999") -> str:
    return f"7{code}{client_id % 10**7:07d}"


def _opt_out(client_id: int) -> OptOutRecorded:
    return OptOutRecorded(phone=_phone(client_id), source="api", opted_out_at=NOW)


def _opt_in(client_id: int) -> OptOutRemoved:
    return OptOutRemoved(phone=_phone(client_id), removed_at=NOW)


async def test_resolution_leaves_opted_out_phones_out(pool: asyncpg.Pool) -> None:
    tag = f"t{new_id()}"
    stays, listed, imported = new_id(), new_id(), new_id()
    mailing = new_id()
    await apply_events(pool, [(client_created(c, tag), 1) for c in (stays, listed, imported)])
    batch = OptOutsImported(
        batch_id=f"b{new_id()}",
        opted_out_at=NOW,
        opt_outs=[ImportedOptOut(phone=_phone(imported), version=1)],
    )
    await apply_events(pool, [(_opt_out(listed), 1), (batch, 1)])
    await apply_events(pool, [(mailing_scheduled(mailing, tag, NOW - timedelta(minutes=1)), 1)])
    assert set(await stored_messages(pool, mailing)) == {stays}


async def test_opting_out_withdraws_before_the_start_and_opting_in_brings_back(
    pool: asyncpg.Pool,
) -> None:
    tag = f"t{new_id()}"
    a, b = new_id(), new_id()
    mailing = new_id()
    await apply_events(pool, [(client_created(c, tag), 1) for c in (a, b)])
    await apply_events(pool, [(mailing_scheduled(mailing, tag, NOW + timedelta(hours=1)), 1)])
    before = await stored_messages(pool, mailing)
    await apply_events(pool, [(_opt_out(a), 1)])
    assert set(await stored_messages(pool, mailing)) == {b}
    withdrawn = await stored_events(pool, mailing, "messages.withdrawn")
    assert [e["message_ids"] for e in withdrawn] == [[before[a]["message_id"]]]
    await apply_events(pool, [(_opt_in(a), 2)])
    assert set(await stored_messages(pool, mailing)) == {a, b}
    await apply_events(pool, [(_opt_out(a), 1)])  # older than what the scheduler holds: nothing
    assert set(await stored_messages(pool, mailing)) == {a, b}


async def test_opting_out_after_the_start_cancels_unsent_with_reason_opted_out(
    pool: asyncpg.Pool,
) -> None:
    tag = f"t{new_id()}"
    waiting, handed, other = new_id(), new_id(), new_id()
    mailing = new_id()
    await apply_events(pool, [(client_created(c, tag), 1) for c in (waiting, handed, other)])
    await apply_events(pool, [(mailing_scheduled(mailing, tag, NOW - timedelta(minutes=1)), 1)])
    # Two messages go to the dispatcher; then both their phones and a waiting one opt out.
    await pool.execute(
        "UPDATE scheduler_messages SET due_at = due_at + interval '1 hour'"
        " WHERE mailing_id = $1 AND client_id = $2",
        mailing,
        waiting,
    )
    async with pool.acquire() as conn, appending(conn):
        await hand_over_due(conn, NOW, limit=10_000, max_in_flight=10**9)
    await apply_events(pool, [(_opt_out(waiting), 1), (_opt_out(handed), 1)])
    await apply_events(pool, [(_opt_out(waiting), 1)])  # redelivered: nothing more
    rows = await stored_messages(pool, mailing)
    assert rows[waiting]["state"] == "cancelled"
    assert rows[handed]["state"] == "handed_over"  # the dispatcher refuses its call
    cancelled = await stored_events(pool, mailing, "messages.cancelled")
    assert [(e["message_ids"], e["reason"]) for e in cancelled] == [
        ([rows[waiting]["message_id"]], OPTED_OUT)
    ]
    # The dispatcher hands it back unsent: cancelled with the same reason, never retried.
    back = MessageAttemptsFailed(
        mailing_id=mailing,
        batch_id=f"b{new_id()}",
        messages=[
            FailedAttempt(message_id=rows[handed]["message_id"], attempts=0, error=OPTED_OUT,
                          retry_at=NOW),
            FailedAttempt(message_id=rows[other]["message_id"], attempts=1, error="HTTP 503",
                          retry_at=NOW + timedelta(seconds=30)),
        ],
    )  # fmt: skip
    await apply_events(pool, [(back, 1)])
    rows = await stored_messages(pool, mailing)
    assert rows[handed]["state"] == "cancelled"
    assert rows[other]["state"] == "scheduled"  # not opted out: retried
    cancelled = await stored_events(pool, mailing, "messages.cancelled")
    assert ([rows[handed]["message_id"]], OPTED_OUT) in [
        (e["message_ids"], e["reason"]) for e in cancelled
    ]
