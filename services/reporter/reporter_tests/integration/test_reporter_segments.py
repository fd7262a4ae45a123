"""SMS segments sent, per mailing and per day: each mailing's segments per message (from its
text, the newest mailing event winning) times its deliveries, read from the aggregates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg

from reporter import queries
from reporter.report import render_text
from reporter.report_adapters import load_report
from sms_events.contracts import MailingDeleted, MailingScheduled, MailingUpdated

from .reporter_support import delivered_at, handle, ids, new_id, scheduled

DAY = datetime(2033, 5, 10, tzinfo=UTC)
LONG_GSM = "a" * 200  # 2 segments
CYRILLIC = "ж" * 140  # UCS-2: 3 segments


def mailing(mailing_id: int, text: str, updated_at: datetime = DAY - timedelta(days=2)) -> object:
    return MailingScheduled(
        mailing_id=mailing_id,
        text=text,
        datetime_start=DAY,
        datetime_end=DAY + timedelta(days=2),
        updated_at=updated_at,
    )


async def test_segments_sent_per_mailing_and_per_day(pool: asyncpg.Pool) -> None:
    first, second, gone = new_id(), new_id(), new_id()
    a, b, c = ids(3), ids(2), ids(4)
    # The newest text wins whatever the order: the update arrives before the creation.
    await handle(
        pool,
        MailingUpdated(
            mailing_id=first,
            text=CYRILLIC,
            datetime_start=DAY,
            datetime_end=DAY + timedelta(days=2),
            updated_at=DAY - timedelta(days=1),
        ),
    )
    await handle(pool, mailing(first, LONG_GSM), mailing(second, LONG_GSM), mailing(gone, "hi"))
    await handle(pool, scheduled(first, a, DAY), scheduled(second, b, DAY), scheduled(gone, c, DAY))
    noon, next_day = DAY + timedelta(hours=12), DAY + timedelta(days=1, hours=1)
    await handle(
        pool,
        delivered_at(first, {a[0]: noon, a[1]: noon, a[2]: next_day}),
        delivered_at(second, {b[0]: noon}),
        delivered_at(gone, dict.fromkeys(c, noon)),
    )
    await handle(pool, MailingDeleted(mailing_id=gone, deleted_at=next_day))

    stats = await queries.mailing_stats(pool, first)
    assert stats is not None
    assert (stats["segments_per_message"], stats["segments_sent"]) == (3, 9)
    stats = await queries.mailing_stats(pool, second)
    assert stats is not None
    assert (stats["segments_per_message"], stats["segments_sent"]) == (2, 2)

    async with pool.acquire() as conn:
        days = await queries.segments_per_day(conn, DAY, DAY + timedelta(days=3))
    # Other tests' mailings do not deliver on these days (2033-05-10 is this test's).
    assert days == {DAY: 3 * 2 + 2, DAY + timedelta(days=1): 3}

    report = await load_report(pool, date(2033, 5, 10), "UTC", now=DAY + timedelta(days=3))
    assert report.totals.segments == 8
    assert {m.mailing_id: m.figures.segments for m in report.mailings} == {first: 6, second: 2}
    text = render_text(report)
    assert "SMS segments sent:   8" in text
    # In New York (UTC-4) the late delivery, 21:00 local, falls on the 10th too.
    local = await load_report(pool, date(2033, 5, 10), "America/New_York", DAY + timedelta(days=3))
    assert local.totals.segments == 3 + 3 * 2 + 2
