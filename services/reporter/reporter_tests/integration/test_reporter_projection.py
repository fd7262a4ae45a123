"""The batch handler against the real PostgreSQL: message rows and counters per event type,
the status lattice, events out of order, and mailing events."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from sms_events.contracts import (
    DueMessage,
    MailingCancelled,
    MailingDeleted,
    MailingPaused,
    MailingResumed,
    MailingScheduled,
    MailingUpdated,
    MessagesDue,
    MessagesRescheduled,
    ScheduledMessage,
)

from .reporter_support import (
    T0,
    cancelled,
    counters,
    counts,
    delivered,
    envelope,
    failed,
    handle,
    ids,
    messages,
    new_id,
    recount,
    scheduled,
    undelivered,
    withdrawn,
)


def expect(
    created: int = 0, sc: int = 0, dl: int = 0, nd: int = 0, ca: int = 0, att: int = 0
) -> dict[str, int]:
    return {
        "created_messages": created,
        "scheduled_messages": sc,
        "delivered_messages": dl,
        "undelivered_messages": nd,
        "cancelled_messages": ca,
        "attempts_total": att,
    }


async def assert_consistent(pool: asyncpg.Pool, mailing_id: int, expected: dict[str, int]) -> None:
    assert await counts(pool, mailing_id) == expected
    assert await recount(pool, mailing_id) == expected
    row = await counters(pool, mailing_id)
    assert row["clients_count"] == row["created_messages"]


async def test_scheduled_messages_are_counted_as_created_and_scheduled(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(3)
    await handle(pool, scheduled(mailing, msgs, due=T0))
    await assert_consistent(pool, mailing, expect(created=3, sc=3))
    rows = await messages(pool, mailing)
    assert {r["status"] for r in rows.values()} == {"SC"}
    assert all(r["datetime_send"] == T0 and r["attempts"] == 0 for r in rows.values())
    assert (await counters(pool, mailing))["completed_at"] is None


async def test_delivered_moves_messages_to_dl_with_send_time_and_attempt(
    pool: asyncpg.Pool,
) -> None:
    mailing, msgs = new_id(), ids(3)
    sent = T0 + timedelta(minutes=2)
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, delivered(mailing, msgs[:2], attempt=1, sent=sent))
    await assert_consistent(pool, mailing, expect(created=3, sc=1, dl=2, att=2))
    row = (await messages(pool, mailing))[msgs[0]]
    assert (row["status"], row["datetime_send"], row["attempts"]) == ("DL", sent, 1)
    mailing_row = await counters(pool, mailing)
    assert mailing_row["first_sent_at"] == mailing_row["last_sent_at"] == sent


async def test_failed_attempt_keeps_the_message_scheduled_and_records_the_error(
    pool: asyncpg.Pool,
) -> None:
    mailing, msgs = new_id(), ids(2)
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, failed(mailing, msgs[:1], attempts=1, error="timeout"))
    await handle(pool, failed(mailing, msgs[:1], attempts=2, error="HTTP 503"))
    await assert_consistent(pool, mailing, expect(created=2, sc=2, att=2))
    row = (await messages(pool, mailing))[msgs[0]]
    assert (row["status"], row["attempts"], row["last_error"]) == ("SC", 2, "HTTP 503")
    assert row["datetime_send"] == T0 + timedelta(seconds=60)  # the retry time


async def test_undelivered_moves_messages_to_nd_with_error_and_attempts(
    pool: asyncpg.Pool,
) -> None:
    mailing, msgs = new_id(), ids(2)
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, undelivered(mailing, msgs[:1], attempts=3, error="rejected: 400"))
    await assert_consistent(pool, mailing, expect(created=2, sc=1, nd=1, att=3))
    row = (await messages(pool, mailing))[msgs[0]]
    assert (row["status"], row["attempts"], row["last_error"]) == ("ND", 3, "rejected: 400")


async def test_cancelled_messages_are_counted_as_cancelled_and_complete_the_mailing(
    pool: asyncpg.Pool,
) -> None:
    mailing, msgs = new_id(), ids(3)
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, delivered(mailing, msgs[:1]))
    at = T0 + timedelta(hours=1)
    await handle(pool, envelope(cancelled(mailing, msgs[1:]), at=at))
    await assert_consistent(pool, mailing, expect(created=3, dl=1, ca=2, att=1))
    assert (await counters(pool, mailing))["completed_at"] == at


async def test_withdrawn_messages_no_longer_count_anywhere(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(3)
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, withdrawn(mailing, msgs[:2]))
    await assert_consistent(pool, mailing, expect(created=1, sc=1))
    assert set(await messages(pool, mailing)) == {msgs[2]}
    # The schedule of a withdrawn message redelivered late does not bring it back.
    await handle(pool, scheduled(mailing, msgs[:1]))
    await assert_consistent(pool, mailing, expect(created=1, sc=1))


async def test_cancel_after_delivery_leaves_it_delivered(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(2)
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, delivered(mailing, msgs))
    await handle(pool, cancelled(mailing, msgs))
    await assert_consistent(pool, mailing, expect(created=2, dl=2, att=2))


async def test_delivery_after_cancel_wins_and_moves_the_counters(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(2)
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, cancelled(mailing, msgs))
    await assert_consistent(pool, mailing, expect(created=2, ca=2))
    await handle(pool, delivered(mailing, msgs[:1]))
    await assert_consistent(pool, mailing, expect(created=2, dl=1, ca=1, att=1))


async def test_delivery_before_its_schedule_creates_the_row_and_counts_once(
    pool: asyncpg.Pool,
) -> None:
    mailing, msgs = new_id(), ids(2)
    sent = T0 + timedelta(minutes=1)
    await handle(pool, delivered(mailing, msgs[:1], sent=sent))
    await assert_consistent(pool, mailing, expect(created=1, dl=1, att=1))
    assert (await messages(pool, mailing))[msgs[0]]["client_id"] is None
    await handle(pool, scheduled(mailing, msgs))
    await assert_consistent(pool, mailing, expect(created=2, sc=1, dl=1, att=1))
    row = (await messages(pool, mailing))[msgs[0]]
    assert (row["status"], row["datetime_send"], row["client_id"]) == (
        "DL",
        sent,
        msgs[0] % 1_000_000 + 1,
    )


async def test_several_events_about_one_message_in_one_batch_apply_in_order(
    pool: asyncpg.Pool,
) -> None:
    mailing, msgs = new_id(), ids(2)
    await handle(
        pool,
        scheduled(mailing, msgs),
        failed(mailing, msgs, attempts=1),
        failed(mailing, msgs[:1], attempts=2, error="HTTP 502"),
        delivered(mailing, msgs[:1], attempt=3),
        undelivered(mailing, msgs[1:], attempts=1),
    )
    await assert_consistent(pool, mailing, expect(created=2, dl=1, nd=1, att=4))
    row = (await messages(pool, mailing))[msgs[0]]
    assert (row["status"], row["attempts"], row["last_error"]) == ("DL", 3, "HTTP 502")


async def test_the_same_batch_handled_twice_changes_nothing(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(4)
    batch = [
        scheduled(mailing, msgs),
        delivered(mailing, msgs[:1]),
        failed(mailing, msgs[1:2]),
        undelivered(mailing, msgs[2:3]),
        cancelled(mailing, msgs[3:]),
    ]
    await handle(pool, *batch)
    first = await messages(pool, mailing)
    await handle(pool, *batch)
    await assert_consistent(pool, mailing, expect(created=4, sc=1, dl=1, nd=1, ca=1, att=5))
    assert await messages(pool, mailing) == first


async def test_rescheduled_moves_the_due_time_of_scheduled_messages(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(2)
    later = T0 + timedelta(days=1)
    await handle(pool, scheduled(mailing, msgs))
    await handle(
        pool,
        MessagesRescheduled(
            mailing_id=mailing,
            batch_id="r",
            messages=[ScheduledMessage(message_id=msgs[0], client_id=1, due_at=later)],
        ),
    )
    rows = await messages(pool, mailing)
    assert (rows[msgs[0]]["datetime_send"], rows[msgs[1]]["datetime_send"]) == (later, T0)
    await assert_consistent(pool, mailing, expect(created=2, sc=2))


async def test_due_events_and_unknown_types_change_nothing(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(1)
    await handle(pool, scheduled(mailing, msgs))
    due = MessagesDue(
        mailing_id=mailing,
        batch_id="d",
        text="hi",
        not_after=T0 + timedelta(days=1),
        messages=[DueMessage(message_id=msgs[0], client_id=1, phone="79990000000", attempt=1)],
    )
    stranger = envelope(due)
    stranger = type(stranger)(
        id=stranger.id.__class__(int=new_id()),
        type="messages.teleported",
        subject="x",
        source="/tests",
        time=T0,
        data={"anything": 1},
    )
    await handle(pool, due, stranger)
    await assert_consistent(pool, mailing, expect(created=1, sc=1))


async def test_completed_at_is_set_when_nothing_is_left_scheduled_and_cleared_if_more_come(
    pool: asyncpg.Pool,
) -> None:
    mailing, msgs = new_id(), ids(3)
    done_at = T0 + timedelta(hours=2)
    await handle(pool, scheduled(mailing, msgs[:2]))
    await handle(pool, envelope(delivered(mailing, msgs[:2]), at=done_at))
    assert (await counters(pool, mailing))["completed_at"] == done_at
    await handle(pool, scheduled(mailing, msgs[2:]))
    assert (await counters(pool, mailing))["completed_at"] is None


# --- mailing events ------------------------------------------------------------------------------


def mailing_state(
    mailing_id: int,
    start_day: int,
    updated_minute: int,
    cls: type[MailingScheduled | MailingUpdated] = MailingScheduled,
) -> MailingScheduled | MailingUpdated:
    return cls(
        mailing_id=mailing_id,
        text="hello",
        datetime_start=T0 + timedelta(days=start_day),
        datetime_end=T0 + timedelta(days=start_day + 1),
        updated_at=T0 + timedelta(minutes=updated_minute),
    )


async def test_mailing_scheduled_and_updated_set_start_and_end_newest_first(
    pool: asyncpg.Pool,
) -> None:
    mailing = new_id()
    await handle(pool, mailing_state(mailing, 1, 0))
    row = await counters(pool, mailing)
    assert (row["datetime_start"], row["datetime_end"]) == (
        T0 + timedelta(days=1),
        T0 + timedelta(days=2),
    )
    await handle(pool, mailing_state(mailing, 5, 10, MailingUpdated))
    await handle(pool, mailing_state(mailing, 3, 5, MailingUpdated))  # older, late
    row = await counters(pool, mailing)
    assert row["datetime_start"] == T0 + timedelta(days=5)
    assert row["created_messages"] == 0


async def test_pause_resume_and_cancel_set_the_mailing_flags(pool: asyncpg.Pool) -> None:
    mailing = new_id()
    await handle(pool, MailingPaused(mailing_id=mailing, paused_at=T0))
    assert (await counters(pool, mailing))["paused"] is True
    await handle(pool, MailingResumed(mailing_id=mailing, resumed_at=T0 + timedelta(minutes=1)))
    assert (await counters(pool, mailing))["paused"] is False
    at = T0 + timedelta(hours=1)
    await handle(pool, MailingCancelled(mailing_id=mailing, cancelled_at=at))
    assert (await counters(pool, mailing))["cancelled_at"] == at


async def test_deleted_mailing_loses_its_messages_and_ignores_late_ones(pool: asyncpg.Pool) -> None:
    mailing, msgs = new_id(), ids(3)
    await handle(pool, mailing_state(mailing, 1, 0), scheduled(mailing, msgs[:2]))
    await handle(pool, withdrawn(mailing, msgs[:1]))
    await handle(pool, MailingDeleted(mailing_id=mailing, deleted_at=T0))
    await assert_consistent(pool, mailing, expect())
    assert await messages(pool, mailing) == {}
    await handle(pool, scheduled(mailing, msgs[2:]), delivered(mailing, msgs[:1]))
    await assert_consistent(pool, mailing, expect())
    assert (await counters(pool, mailing))["deleted_at"] == T0
    left = await pool.fetchval(
        "SELECT count(*) FROM reporter_withdrawn_messages WHERE mailing_id = $1", mailing
    )
    assert left == 0


async def test_concurrent_batches_on_one_mailing_keep_the_counters_exact(
    pool: asyncpg.Pool,
) -> None:
    # Two replicas of the reporter may handle batches of the same mailing at once; the
    # mailing row lock serialises them, so no difference is added on top of a stale read.
    mailing, msgs = new_id(), ids(400)
    await handle(pool, scheduled(mailing, msgs))
    batches = [
        [delivered(mailing, msgs[i : i + 60]), cancelled(mailing, msgs[i + 30 : i + 90])]
        for i in range(0, 400, 50)
    ]
    await asyncio.gather(*(handle(pool, *batch) for batch in batches))
    assert await counts(pool, mailing) == await recount(pool, mailing)
    row = await counts(pool, mailing)
    assert row["created_messages"] == 400 and row["scheduled_messages"] == 0
