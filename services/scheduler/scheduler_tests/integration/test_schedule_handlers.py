"""The scheduler's handlers and timer against the real PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import UTC, datetime, time, timedelta
from typing import cast

import asyncpg

from scheduler.handlers import handle_batch
from scheduler.resolution import resolve_next_chunk
from scheduler.timer import hand_over_due, recover_stale, retime_missed
from sms_events.contracts import (
    ClientDeleted,
    ClientUpdated,
    DeliveredMessage,
    FailedAttempt,
    MailingCancelled,
    MailingPaused,
    MailingUpdated,
    MessageAttemptsFailed,
    MessagesDelivered,
)
from sms_events.store import appending
from sms_events.testing.factories import envelope_for
from sms_events.tracing import traced

from .schedule_support import (
    NOW,
    apply_events,
    client_created,
    mailing_scheduled,
    new_id,
    stored_events,
    stored_messages,
)


async def test_resolves_matching_clients_once_with_one_message_each(pool: asyncpg.Pool) -> None:
    tag = f"t{new_id()}"
    a, b, other = new_id(), new_id(), new_id()
    mailing = new_id()
    start = NOW - timedelta(minutes=1)
    await apply_events(
        pool,
        [(client_created(a, tag), 1), (client_created(b, tag), 1), (client_created(other, "x"), 1)],
    )
    await apply_events(pool, [(mailing_scheduled(mailing, tag, start), 1)])
    await apply_events(
        pool, [(mailing_scheduled(mailing, tag, start), 1)]
    )  # redelivered: nothing new
    messages = await stored_messages(pool, mailing)
    assert set(messages) == {a, b}
    # Resolved after its start: due now, never at the start that has passed.
    assert all(m["due_at"] == NOW for m in messages.values())
    assert all(m["closes_at"] == start + timedelta(days=1) for m in messages.values())
    scheduled = await stored_events(pool, mailing, "messages.scheduled")
    assert sum(len(e["messages"]) for e in scheduled) == 2  # type: ignore[arg-type]
    resolved = await stored_events(pool, mailing, "mailing.audience_resolved")
    assert resolved[0]["recipients"] == 2


async def test_audience_follows_the_base_until_the_start(pool: asyncpg.Pool) -> None:
    tag = f"t{new_id()}"
    stay, leave, move, join = new_id(), new_id(), new_id(), new_id()
    mailing = new_id()
    start = NOW + timedelta(hours=1)
    window = dict(send_interval_time_start=time(13, 0), send_interval_time_end=time(18, 0))
    await apply_events(pool, [(client_created(c, tag), 1) for c in (stay, leave, move)])
    await apply_events(pool, [(mailing_scheduled(mailing, tag, start, **window), 1)])
    before = await stored_messages(pool, mailing)
    assert set(before) == {stay, leave, move}
    await apply_events(
        pool,
        [
            (ClientDeleted(client_id=leave, deleted_at=NOW), 2),
            (ClientUpdated(**(client_created(move, tag, "Asia/Vladivostok").model_dump())), 2),
            (client_created(join, tag), 1),
        ],
    )
    after = await stored_messages(pool, mailing)
    assert set(after) == {stay, move, join}
    assert after[move]["message_id"] == before[move]["message_id"]  # the id is stable
    # The start, 13:00 UTC, is 23:00 in Vladivostok (UTC+10); its window opens 03:00 UTC.
    assert after[move]["due_at"] == datetime(2026, 6, 2, 3, 0, tzinfo=UTC)
    assert after[stay]["due_at"] == start
    withdrawn = await stored_events(pool, mailing, "messages.withdrawn")
    assert [e["message_ids"] for e in withdrawn] == [[before[leave]["message_id"]]]


async def test_scheduled_messages_carry_the_clients_values_as_they_were_then(
    pool: asyncpg.Pool,
) -> None:
    tag = f"t{new_id()}"
    a, b = new_id(), new_id()
    mailing = new_id()
    start = NOW + timedelta(hours=1)
    window = dict(send_interval_time_start=time(13, 0), send_interval_time_end=time(18, 0))
    await apply_events(
        pool, [(client_created(a, tag, "Asia/Tokyo", "901"), 1), (client_created(b, tag), 1)]
    )
    await apply_events(pool, [(mailing_scheduled(mailing, tag, start, **window), 1)])
    moved = ClientUpdated(**client_created(a, tag, "Asia/Vladivostok", "902").model_dump())
    await apply_events(pool, [(moved, 2)])
    scheduled = [
        m for e in await stored_events(pool, mailing, "messages.scheduled") for m in _items(e)
    ]
    carried = {m["client_id"]: (m["operator_code"], m["tag"], m["time_zone"]) for m in scheduled}
    assert carried == {a: ("901", tag, "Asia/Tokyo"), b: ("999", tag, "UTC")}
    # The reschedule that followed the move carries none: the first values stand.
    moves = [
        m for e in await stored_events(pool, mailing, "messages.rescheduled") for m in _items(e)
    ]
    assert [m["client_id"] for m in moves] == [a]
    assert all("operator_code" not in m for m in moves)


def _items(event: dict[str, object]) -> list[dict[str, object]]:
    return cast(list[dict[str, object]], event["messages"])


async def test_edit_before_start_re_resolves_the_audience(pool: asyncpg.Pool) -> None:
    tag, tag2 = f"t{new_id()}", f"u{new_id()}"
    a, b = new_id(), new_id()
    mailing = new_id()
    start = NOW + timedelta(hours=1)
    await apply_events(pool, [(client_created(a, tag), 1), (client_created(b, tag2), 1)])
    await apply_events(pool, [(mailing_scheduled(mailing, tag, start), 1)])
    edited = MailingUpdated(**mailing_scheduled(mailing, tag2, start).model_dump())
    await apply_events(pool, [(edited, 2)])
    assert set(await stored_messages(pool, mailing)) == {b}


async def test_hands_over_due_messages_of_running_mailings_only(pool: asyncpg.Pool) -> None:
    tag = f"t{new_id()}"
    clients = [new_id() for _ in range(3)]
    running, paused = new_id(), new_id()
    start = NOW - timedelta(minutes=5)
    await apply_events(pool, [(client_created(c, tag), 1) for c in clients])
    await apply_events(
        pool,
        [(mailing_scheduled(running, tag, start), 1), (mailing_scheduled(paused, tag, start), 1)],
    )
    await apply_events(pool, [(MailingPaused(mailing_id=paused, paused_at=NOW), 2)])
    async with pool.acquire() as conn, appending(conn):
        await hand_over_due(conn, NOW, limit=10_000, max_in_flight=10**9)
    due = await stored_events(pool, running, "messages.due")
    assert sorted(m["client_id"] for e in due for m in e["messages"]) == sorted(clients)  # type: ignore[union-attr]
    assert all(m["attempt"] == 1 for e in due for m in e["messages"])  # type: ignore[union-attr]
    assert await stored_events(pool, paused, "messages.due") == []
    states = {r["state"] for r in (await stored_messages(pool, running)).values()}
    assert states == {"handed_over"}


async def test_failed_attempt_goes_back_on_the_timer_and_end_settles_it(pool: asyncpg.Pool) -> None:
    tag = f"t{new_id()}"
    tried, untried = new_id(), new_id()
    mailing = new_id()
    start = NOW - timedelta(minutes=5)
    end = NOW + timedelta(minutes=1)
    await apply_events(pool, [(client_created(tried, tag), 1), (client_created(untried, tag), 1)])
    await apply_events(pool, [(mailing_scheduled(mailing, tag, start, datetime_end=end), 1)])
    messages = await stored_messages(pool, mailing)
    failed = MessageAttemptsFailed(
        mailing_id=mailing, batch_id="b1",
        messages=[FailedAttempt(message_id=messages[tried]["message_id"], attempts=1,
                                error="HTTP 503", retry_at=NOW + timedelta(seconds=30))],
    )  # fmt: skip
    await apply_events(pool, [(failed, 1)])
    row = (await stored_messages(pool, mailing))[tried]
    assert (row["state"], row["attempts"], row["last_error"]) == ("scheduled", 1, "HTTP 503")
    assert row["due_at"] == NOW + timedelta(seconds=30)
    async with pool.acquire() as conn, appending(conn):
        await retime_missed(conn, end + timedelta(seconds=1), limit=100)
    final = await stored_messages(pool, mailing)
    assert final[tried]["state"] == "undelivered"
    assert final[untried]["state"] == "cancelled"
    undelivered = await stored_events(pool, mailing, "messages.undelivered")
    assert undelivered[0]["messages"][0]["error"] == "HTTP 503"  # type: ignore[index]


async def test_cancel_stops_unsent_messages_and_delivery_is_final(pool: asyncpg.Pool) -> None:
    tag = f"t{new_id()}"
    sent, unsent = new_id(), new_id()
    mailing = new_id()
    await apply_events(pool, [(client_created(sent, tag), 1), (client_created(unsent, tag), 1)])
    await apply_events(pool, [(mailing_scheduled(mailing, tag, NOW - timedelta(minutes=1)), 1)])
    ids = {c: r["message_id"] for c, r in (await stored_messages(pool, mailing)).items()}
    delivered = MessagesDelivered(
        mailing_id=mailing, batch_id="d1",
        messages=[DeliveredMessage(message_id=ids[sent], attempt=1, sent_at=NOW)],
    )  # fmt: skip
    await apply_events(
        pool, [(delivered, 1), (MailingCancelled(mailing_id=mailing, cancelled_at=NOW), 2)]
    )
    states = {c: r["state"] for c, r in (await stored_messages(pool, mailing)).items()}
    assert states == {sent: "delivered", unsent: "cancelled"}
    cancelled = await stored_events(pool, mailing, "messages.cancelled")
    assert cancelled[0]["message_ids"] == [ids[unsent]]


async def test_a_failed_attempt_of_a_cancelled_mailing_ends_cancelled(pool: asyncpg.Pool) -> None:
    tag = f"t{new_id()}"
    client, mailing = new_id(), new_id()
    await apply_events(pool, [(client_created(client, tag), 1)])
    await apply_events(pool, [(mailing_scheduled(mailing, tag, NOW - timedelta(minutes=1)), 1)])
    async with pool.acquire() as conn, appending(conn):
        await hand_over_due(conn, NOW, limit=10, max_in_flight=10**9)
    message_id = (await stored_messages(pool, mailing))[client]["message_id"]
    failed = MessageAttemptsFailed(
        mailing_id=mailing, batch_id="f1",
        messages=[FailedAttempt(message_id=message_id, attempts=1, error="timeout",
                                retry_at=NOW + timedelta(seconds=5))],
    )  # fmt: skip
    await apply_events(
        pool, [(MailingCancelled(mailing_id=mailing, cancelled_at=NOW), 2), (failed, 1)]
    )
    assert (await stored_messages(pool, mailing))[client]["state"] == "cancelled"
    cancelled = await stored_events(pool, mailing, "messages.cancelled")
    assert [e["message_ids"] for e in cancelled] == [[message_id]]


async def test_events_appended_for_an_event_carry_its_correlation_id_and_it_as_cause(
    pool: asyncpg.Pool,
) -> None:
    tag = f"t{new_id()}"
    client, mailing = new_id(), new_id()
    created = dataclasses.replace(
        envelope_for(client_created(client, tag)), correlationid="corr-import"
    )
    scheduled = dataclasses.replace(
        envelope_for(mailing_scheduled(mailing, tag, NOW - timedelta(minutes=1))),
        correlationid="corr-create",
    )
    async with pool.acquire() as conn:
        async with appending(conn):
            await handle_batch(conn, [created, scheduled], clock=lambda: NOW)
        # The timer resolves the audience later, under its own round's correlation id: the
        # events still carry the request's.
        with traced("corr-timer-round"):
            while True:
                async with appending(conn):
                    if not await resolve_next_chunk(conn, NOW, chunk=100):
                        break

    rows = await pool.fetch(
        "SELECT type, metadata FROM events WHERE (data->>'mailing_id')::bigint = $1", mailing
    )
    assert {r["type"] for r in rows} == {"messages.scheduled", "mailing.audience_resolved"}
    for r in rows:
        assert r["metadata"] == {"correlation_id": "corr-create", "causation_id": str(scheduled.id)}


async def test_an_edit_accepted_before_the_start_applies_even_when_seen_after_it(
    pool: asyncpg.Pool,
) -> None:
    tag, tag2 = f"t{new_id()}", f"u{new_id()}"
    a, b = new_id(), new_id()
    mailing = new_id()
    start = NOW + timedelta(minutes=1)
    await apply_events(pool, [(client_created(a, tag), 1), (client_created(b, tag2), 1)])
    await apply_events(pool, [(mailing_scheduled(mailing, tag, start), 1)])
    # Accepted a second before the start, handled a minute after it.
    edited = MailingUpdated(**mailing_scheduled(mailing, tag2, start).model_dump())
    late = start + timedelta(minutes=1)
    await apply_events(pool, [(edited, 2)], now=late, recorded_at=start - timedelta(seconds=1))
    messages = await stored_messages(pool, mailing)
    assert set(messages) == {b}
    assert messages[b]["due_at"] == late  # due now, not at the start that has passed


async def test_a_later_end_brings_in_clients_left_out_for_want_of_a_send_moment(
    pool: asyncpg.Pool,
) -> None:
    tag = f"t{new_id()}"
    here, far = new_id(), new_id()
    mailing = new_id()
    start = NOW - timedelta(minutes=5)
    # A 12:00-13:00 window: open now in UTC; in Vladivostok (UTC+10) it opens at 02:00 UTC.
    window = dict(send_interval_time_start=time(12, 0), send_interval_time_end=time(13, 0))
    end = NOW + timedelta(hours=2)
    await apply_events(
        pool, [(client_created(here, tag), 1), (client_created(far, tag, "Asia/Vladivostok"), 1)]
    )
    await apply_events(
        pool, [(mailing_scheduled(mailing, tag, start, datetime_end=end, **window), 1)]
    )
    assert set(await stored_messages(pool, mailing)) == {here}
    left_out = await pool.fetch(
        "SELECT client_id, reason FROM scheduler_left_out WHERE mailing_id = $1", mailing
    )
    assert [(r["client_id"], r["reason"]) for r in left_out] == [
        (far, "no send moment before the end")
    ]
    longer = MailingUpdated(
        **mailing_scheduled(
            mailing, tag, start, datetime_end=NOW + timedelta(days=1), **window
        ).model_dump()
    )
    await apply_events(pool, [(longer, 2)])
    messages = await stored_messages(pool, mailing)
    assert set(messages) == {here, far}
    assert messages[far]["due_at"] == datetime(2026, 6, 2, 2, 0, tzinfo=UTC)
    assert messages[here]["closes_at"] == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)


async def test_a_message_that_missed_its_slot_waits_for_the_next_window(
    pool: asyncpg.Pool,
) -> None:
    tag = f"t{new_id()}"
    client = new_id()
    mailing = new_id()
    window = dict(send_interval_time_start=time(12, 0), send_interval_time_end=time(12, 30))
    await apply_events(pool, [(client_created(client, tag), 1)])
    await apply_events(
        pool,
        [(mailing_scheduled(mailing, tag, NOW, datetime_end=NOW + timedelta(days=3), **window), 1)],
    )
    (row,) = (await stored_messages(pool, mailing)).values()
    assert (row["due_at"], row["closes_at"]) == (NOW, NOW + timedelta(minutes=30))
    # Handed over, then lost (its due event dead-lettered); recovered after the close.
    async with pool.acquire() as conn, appending(conn):
        await hand_over_due(conn, NOW, limit=10_000, max_in_flight=10**9)
    (row,) = (await stored_messages(pool, mailing)).values()
    assert row["state"] == "handed_over"
    later = NOW + timedelta(hours=2)
    async with pool.acquire() as conn, appending(conn):
        await recover_stale(conn, later, timedelta(minutes=10))
        await hand_over_due(conn, later, limit=10_000, max_in_flight=10**9)
    (row,) = (await stored_messages(pool, mailing)).values()
    assert row["state"] == "scheduled"  # its slot closed: not handed over again
    async with pool.acquire() as conn, appending(conn):
        await retime_missed(conn, later, limit=10_000)
    (row,) = (await stored_messages(pool, mailing)).values()
    assert row["state"] == "scheduled"
    assert (row["due_at"], row["closes_at"]) == (
        NOW + timedelta(days=1),
        NOW + timedelta(days=1, minutes=30),
    )
    rescheduled = await stored_events(pool, mailing, "messages.rescheduled")
    assert rescheduled[-1]["messages"][0]["due_at"].startswith("2026-06-02T12:00")  # type: ignore[index]


async def test_a_message_recovered_after_the_end_is_settled(pool: asyncpg.Pool) -> None:
    tag = f"t{new_id()}"
    client = new_id()
    mailing = new_id()
    end = NOW + timedelta(minutes=10)
    await apply_events(pool, [(client_created(client, tag), 1)])
    await apply_events(pool, [(mailing_scheduled(mailing, tag, NOW, datetime_end=end), 1)])
    async with pool.acquire() as conn, appending(conn):
        await hand_over_due(conn, NOW, limit=10_000, max_in_flight=10**9)
    after_end = end + timedelta(minutes=30)
    async with pool.acquire() as conn, appending(conn):
        await recover_stale(conn, after_end, timedelta(minutes=10))
        await retime_missed(conn, after_end, limit=10_000)
    (row,) = (await stored_messages(pool, mailing)).values()
    assert row["state"] == "cancelled"  # never tried: CA
    (cancelled,) = await stored_events(pool, mailing, "messages.cancelled")
    assert cancelled["reason"] == "no send moment before the end"


class _Killed(Exception):
    pass


async def test_a_resolution_cut_off_midway_resumes_with_one_message_per_recipient(
    pool: asyncpg.Pool,
) -> None:
    tag = f"t{new_id()}"
    clients = sorted(new_id() for _ in range(25))
    mailing = new_id()
    await apply_events(pool, [(client_created(c, tag), 1) for c in clients])
    await apply_events(
        pool, [(mailing_scheduled(mailing, tag, NOW - timedelta(minutes=1)), 1)], timer=False
    )
    async with pool.acquire() as conn:
        for _ in range(3):  # three chunks of four clients commit
            async with appending(conn):
                assert await resolve_next_chunk(conn, NOW, chunk=4)
        with contextlib.suppress(_Killed):  # the fourth dies with its transaction
            async with appending(conn):
                await resolve_next_chunk(conn, NOW, chunk=4)
                raise _Killed
        cursor = await conn.fetchval(
            "SELECT after_client FROM scheduler_resolutions WHERE mailing_id = $1", mailing
        )
        # Resumes after the last committed chunk (chunks count every client of the base, so
        # other tests' clients share them: only its being set is certain here).
        assert cursor is not None
        while True:
            async with appending(conn):
                if not await resolve_next_chunk(conn, NOW, chunk=4):
                    break
    messages = await stored_messages(pool, mailing)
    assert sorted(messages) == clients
    scheduled = await stored_events(pool, mailing, "messages.scheduled")
    assert sorted(m["client_id"] for e in scheduled for m in e["messages"]) == clients  # type: ignore[attr-defined]
    (resolved,) = await stored_events(pool, mailing, "mailing.audience_resolved")
    assert resolved["recipients"] == 25
