"""The daily statistics email against a real SMTP server (aiosmtpd, started by the tests) and
the real PostgreSQL: content, recipients, one email per day with two reporters racing,
catch-up after downtime, SMTP failures, and the command. Time is an injected clock."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import structlog.testing
from pydantic import SecretStr

from reporter.config import Settings
from reporter.daily_report import DailyReporter, Outcome, ReportConfig, deliver
from reporter.mailer import SmtpConfig
from reporter.projection import PROJECTION
from reporter.report import day_bounds
from sms_events.contracts import (
    MailingScheduled,
    MessagesCancelled,
)
from sms_events.db import create_pool
from sms_events.replay import replay
from sms_events.settings import ServiceSettings
from sms_events.testing.environment import TestEnvironment
from sms_events.testing.restore import restore_events

from .reporter_support import (
    delivered_at,
    envelope,
    eventually,
    failed,
    final_failures,
    handle,
    ids,
    new_id,
    scheduled,
)
from .smtp_support import Received, SmtpSink

_today = itertools.count()


def fresh_today() -> date:
    """A "today" with 60 days of room before it that no other test of this run uses."""
    return date(2101, 1, 1) + timedelta(days=60 * next(_today))


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


def config_for(smtp: SmtpSink, tz: str = "UTC", **kw: object) -> ReportConfig:
    cfg = ReportConfig(
        tz=tz,
        at=time(0, 1),
        catch_up_days=3,
        recipients=["ops@example.com", "boss@example.com"],
        smtp=SmtpConfig(
            host="127.0.0.1",
            port=smtp.port,
            user=None,
            password=None,
            starttls=False,
            ssl=False,
            sender="sms-platform@example.com",
            timeout_s=5.0,
        ),
        retry_base_s=0.05,
        retry_cap_s=0.2,
    )
    return replace(cfg, **kw)  # type: ignore[arg-type]


class Clock:
    """Real time shifted to a chosen moment: leases and backoffs still run in real time."""

    def __init__(self, at: datetime) -> None:
        self.set(at)

    def set(self, at: datetime) -> None:
        self._offset = at - datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self._offset


def at_local(day: date, tz: str, hh: int = 0, mm: int = 5) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=ZoneInfo(tz)).astimezone(UTC)


async def some_activity(pool: asyncpg.Pool, day: date, tz: str = "UTC") -> int:
    """One delivery at noon of the local ``day``; returns the mailing."""
    mailing: int = new_id()
    msgs = ids(1)
    await handle(pool, scheduled(mailing, msgs))
    await handle(pool, delivered_at(mailing, {msgs[0]: at_local(day, tz, 12, 0)}))
    return mailing


def days_of(received: list[Received]) -> list[str]:
    return [r.subject.split(" for ")[1].split(" ")[0] for r in received]


async def test_the_report_of_a_local_day_with_totals_and_a_table(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    tz = "Asia/Kolkata"  # +05:30: the day runs from 18:30 to 18:30 UTC
    day = fresh_today()
    start, end = day_bounds(day, ZoneInfo(tz))
    assert start.time() == time(18, 30)
    one, two = new_id(), new_id()
    m1, m2 = ids(6), ids(3)
    await handle(
        pool,
        MailingScheduled(
            mailing_id=one,
            text="hi",
            datetime_start=start - timedelta(hours=1),
            datetime_end=end + timedelta(days=30),
            updated_at=start - timedelta(days=1),
        ),
    )
    await handle(pool, scheduled(one, m1), scheduled(two, m2))
    await handle(
        pool,
        delivered_at(one, {m1[0]: start - timedelta(minutes=1)}),  # the day before
        delivered_at(one, {m1[1]: start, m1[2]: end - timedelta(minutes=1)}),
        delivered_at(one, {m1[3]: end}),  # the day after
        final_failures(one, {m1[4]: (start + timedelta(hours=3), "HTTP 400: invalid phone")}, 2),
        envelope(failed(two, m2[:2], attempts=1, error="timeout"), at=start + timedelta(hours=1)),
        envelope(
            MessagesCancelled(
                mailing_id=two, batch_id="c", message_ids=[m2[2]], reason="mailing cancelled"
            ),
            at=start + timedelta(hours=2),
        ),
    )
    cfg = config_for(smtp, tz=tz)
    now = at_local(day + timedelta(days=1), tz)
    result = await deliver(pool, cfg, day, owner="test", now=now)
    assert result.outcome is Outcome.SENT
    (mail,) = smtp.messages()
    assert mail.subject == f"SMS platform statistics for {day.isoformat()} (Asia/Kolkata)"
    assert mail.message["Message-ID"] == (
        f"<daily-report.{day.isoformat()}.asia.kolkata@example.com>"
    )
    assert mail.message.get_content_type() == "multipart/alternative"
    text, page = mail.part("plain"), mail.part("html")
    assert "Delivered:           2" in text
    assert "Undelivered (final): 1" in text
    assert "Cancelled:           1" in text
    assert "Attempts:            6" in text  # 2 deliveries, 2 before the final failure, 2 failed
    assert "Delivery rate:       66.7%" in text
    assert "Mailings active that day (2)" in text
    row_one = next(line for line in text.splitlines() if line.strip().startswith(str(one)))
    assert row_one.split() == [str(one), "running", *_dates(start, end, tz), "2", "2", "1", "0",
                               "4", "66.7%"]  # fmt: skip
    row_two = next(line for line in text.splitlines() if line.strip().startswith(str(two)))
    assert row_two.split() == [str(two), "running", "-", "-", "0", "0", "0", "1", "2", "n/a"]
    assert "SMS segments sent:   2" in text  # "hi": one segment each
    assert "<table" in page and "<td" in page and str(one) in page and "66.7%" in page
    assert page.count("<tr>") == 6 + 1 + 2  # totals (segments among them), header, two mailings


def _dates(start: datetime, end: datetime, tz: str) -> list[str]:
    zone = ZoneInfo(tz)
    s = (start - timedelta(hours=1)).astimezone(zone)
    e = (end + timedelta(days=30)).astimezone(zone)
    return [
        s.strftime("%Y-%m-%d"),
        s.strftime("%H:%M"),
        e.strftime("%Y-%m-%d"),
        e.strftime("%H:%M"),
    ]


async def test_recipients_from_both_settings_once_each(
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    settings: ServiceSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REPORT_RECIPIENTS", "ops@example.com, Boss@Example.com")
    monkeypatch.setenv("RECIPIENT_EMAIL_1", "boss@example.com")
    monkeypatch.setenv("RECIPIENT_EMAIL_2", "audit@example.com")
    monkeypatch.setenv("RECIPIENT_EMAIL_10", "ops@example.com")
    monkeypatch.setenv("EMAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("EMAIL_PORT", str(smtp.port))
    monkeypatch.setenv("EMAIL_FROM", "Reports <reports@example.org>")
    s = Settings(_env_file=None, database_url=settings.database_url)
    assert s.daily_report_enabled
    cfg = ReportConfig.from_settings(s)
    day = fresh_today()
    result = await deliver(
        pool, cfg, day, owner="test", now=at_local(day + timedelta(days=1), "UTC")
    )
    assert result.outcome is Outcome.SENT
    (mail,) = smtp.messages()
    expected = ["ops@example.com", "Boss@Example.com", "audit@example.com"]
    assert mail.rcpt_tos == expected
    assert mail.mail_from == "reports@example.org"
    assert str(mail.message["From"]) == "Reports <reports@example.org>"
    assert str(mail.message["To"]) == ", ".join(expected)
    assert "No mailing sent, failed or cancelled a message that day." in mail.part("plain")


async def test_two_reporters_racing_send_each_day_once(
    pool: asyncpg.Pool, smtp: SmtpSink, settings: ServiceSettings
) -> None:
    today = fresh_today()
    await some_activity(pool, today - timedelta(days=5))
    smtp.delay_s = 0.2  # a slow server widens the window in which both could try
    clock = Clock(at_local(today, "UTC"))
    pools = [await create_pool(settings.database_url, min_size=1, max_size=3) for _ in range(2)]
    stop = asyncio.Event()
    reporters = [
        DailyReporter(p, config_for(smtp), now=clock, tick_s=0.01, owner=f"replica-{i}")
        for i, p in enumerate(pools)
    ]
    tasks = [asyncio.create_task(r.run(stop)) for r in reporters]
    try:
        expected = [(today - timedelta(days=d)).isoformat() for d in (3, 2, 1)]
        await eventually(lambda: _count(smtp, 3), within=10, what="three reports")
        await asyncio.sleep(0.5)  # both keep ticking: nothing more may go out
        assert days_of(smtp.messages()) == expected
        rows = await pool.fetch(
            "SELECT day, state, attempts, claimed_by FROM reporter_daily_reports"
            " WHERE day BETWEEN $1 AND $2 ORDER BY day",
            today - timedelta(days=10),
            today,
        )
        assert [(r["state"], r["attempts"]) for r in rows] == [("sent", 1)] * 3
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for p in pools:
            await p.close()


async def _count(smtp: SmtpSink, n: int) -> bool:
    return len(smtp.messages()) >= n


async def test_missed_days_are_sent_once_each_in_order_after_downtime(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    tz = "Europe/Berlin"
    today = fresh_today()
    await some_activity(pool, today - timedelta(days=20), tz)  # data long before the window
    await some_activity(pool, today - timedelta(days=1), tz)
    clock = Clock(at_local(today, tz, 0, 0))  # before REPORT_TIME (00:01)
    cfg = config_for(smtp, tz=tz, catch_up_days=7)
    first = DailyReporter(pool, cfg, now=clock, owner="before")
    # Yesterday is not due yet; the 7 days before it are (quiet days get a report too).
    assert await first.tick() == [today - timedelta(days=d) for d in range(8, 1, -1)]
    clock.set(at_local(today, tz, 0, 2))
    assert await first.tick() == [today - timedelta(days=1)]
    assert await first.tick() == []
    # Down for four days; a new process comes up at 09:00 on the fifth.
    clock.set(at_local(today + timedelta(days=4), tz, 9, 0))
    second = DailyReporter(pool, cfg, now=clock, owner="after")
    assert await second.tick() == [today + timedelta(days=d) for d in range(4)]
    assert await second.tick() == []
    assert await DailyReporter(pool, cfg, now=clock, owner="again").tick() == []
    expected = [(today + timedelta(days=d)).isoformat() for d in range(-8, 4)]
    assert days_of(smtp.messages()) == expected


async def test_catch_up_is_bounded(pool: asyncpg.Pool, smtp: SmtpSink) -> None:
    today = fresh_today()
    await some_activity(pool, today - timedelta(days=30))
    cfg = config_for(smtp, catch_up_days=2)
    reporter = DailyReporter(pool, cfg, now=Clock(at_local(today, "UTC", 6, 0)))
    assert await reporter.tick() == [today - timedelta(days=2), today - timedelta(days=1)]


async def test_a_failing_smtp_server_is_retried_and_the_task_survives(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    today = fresh_today()
    await some_activity(pool, today - timedelta(days=1))
    smtp.stop()  # down: connection refused
    clock = Clock(at_local(today, "UTC"))
    reporter = DailyReporter(pool, config_for(smtp, catch_up_days=1), now=clock, tick_s=0.02)
    stop = asyncio.Event()
    logs = structlog.testing.capture_logs()
    captured = logs.__enter__()
    task = asyncio.create_task(reporter.run(stop))
    yesterday = today - timedelta(days=1)
    try:

        async def failed_twice() -> bool:
            row = await pool.fetchrow(
                "SELECT * FROM reporter_daily_reports WHERE day = $1", yesterday
            )
            return bool(row is not None and row["attempts"] >= 2 and row["state"] == "failed")

        await eventually(failed_twice, within=10, what="two failed attempts")
        row = await pool.fetchrow("SELECT * FROM reporter_daily_reports WHERE day = $1", yesterday)
        assert row is not None
        assert row["last_error"] and row["sent_at"] is None
        assert not task.done()
        # Up again, but answering 451 to the next two tries.
        smtp.refuse_next = 2
        smtp.start()
        await eventually(lambda: _count(smtp, 1), within=10, what="the report")
        await asyncio.sleep(0.3)
        assert len(smtp.messages()) == 1 and smtp.refused == 2
        row = await pool.fetchrow("SELECT * FROM reporter_daily_reports WHERE day = $1", yesterday)
        assert row is not None
        assert row["state"] == "sent" and row["attempts"] >= 5 and row["last_error"] is None
        assert row["message_id"] == smtp.messages()[0].message["Message-ID"]
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        logs.__exit__(None, None, None)
    failures = [e for e in captured if e["event"] == "daily_report_failed"]
    assert len(failures) >= 4 and all(e["log_level"] == "warning" for e in failures)
    assert {"day", "attempt", "error", "retry_in_s"} <= set(failures[0])
    assert any("451" in e["error"] for e in failures)
    # The sent line is checked by the sending tests; here, after a late start of the capture
    # in a long suite, it was sometimes missing although the row said sent: the row is the
    # proof, and no line may name a recipient.
    assert all("ops@example.com" not in str(e) for e in captured)


async def test_the_smtp_login_is_used_and_a_wrong_one_is_a_retried_failure(
    pool: asyncpg.Pool,
) -> None:
    smtp = SmtpSink(login=("reporter", "correct horse"))
    smtp.start()
    try:
        day = fresh_today()
        now = at_local(day + timedelta(days=1), "UTC")
        base = config_for(smtp)
        wrong = replace(
            base, smtp=replace(base.smtp, user="reporter", password=SecretStr("battery staple"))
        )
        with structlog.testing.capture_logs() as captured:
            result = await deliver(pool, wrong, day, owner="a", now=now)
        assert result.outcome is Outcome.FAILED and "SMTPAuthenticationError" in str(result.error)
        assert "battery" not in str(captured) and "battery" not in str(result.error)
        right = replace(
            base, smtp=replace(base.smtp, user="reporter", password=SecretStr("correct horse"))
        )
        await asyncio.sleep(0.1)  # the backoff after the failure
        assert (await deliver(pool, right, day, owner="b", now=now)).outcome is Outcome.SENT
        assert smtp.logins == ["reporter"] and len(smtp.messages()) == 1
    finally:
        smtp.stop()


# --- the command -----------------------------------------------------------------------------


async def run_command(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reporter.daily_report", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def command_env(test_env: TestEnvironment, smtp: SmtpSink) -> Callable[..., dict[str, str]]:
    def make(**extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "REPORT_"))}
        env.update(test_env.env_vars())
        env.update(LOG_FORMAT="json", REPORT_TZ="UTC")
        env.update(extra)
        return env

    return make


async def test_the_command_prints_sends_once_and_resends_when_forced(
    pool: asyncpg.Pool, smtp: SmtpSink, command_env: Callable[..., dict[str, str]]
) -> None:
    day = date(1999, 1, 1) + (fresh_today() - date(2101, 1, 1))  # over: the command's clock is real
    await some_activity(pool, day)
    code, out, _ = await run_command(command_env(), "--date", day.isoformat(), "--print")
    assert code == 0
    assert f"SMS platform statistics for {day.isoformat()} (UTC)" in out
    assert "Delivered:           1" in out
    assert (
        await pool.fetchval("SELECT count(*) FROM reporter_daily_reports WHERE day = $1", day) == 0
    )
    code, _, err = await run_command(command_env(), "--date", day.isoformat())
    assert code == 2 and "EMAIL_HOST" in err  # not configured: refuses
    env = command_env(
        EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(smtp.port), REPORT_RECIPIENTS="ops@example.com"
    )
    code, out, _ = await run_command(env, "--date", day.isoformat())
    assert code == 0 and "sent the report" in out
    code, _, err = await run_command(env, "--date", day.isoformat())
    assert code == 1 and "--force" in err
    assert len(smtp.messages()) == 1
    code, out, _ = await run_command(env, "--date", day.isoformat(), "--force")
    assert code == 0
    first, again = smtp.messages()
    assert first.message["Message-ID"] != again.message["Message-ID"]
    assert ".resend" in str(again.message["Message-ID"])
    row = await pool.fetchrow("SELECT * FROM reporter_daily_reports WHERE day = $1", day)
    assert row is not None
    assert row["state"] == "sent" and row["message_id"] == again.message["Message-ID"]
    # The scheduled path leaves a day the command sent alone.
    cfg = config_for(smtp, catch_up_days=1)
    now = at_local(day + timedelta(days=1), "UTC")
    assert (await deliver(pool, cfg, day, owner="task", now=now)).outcome is Outcome.NOT_CLAIMED
    # A day that is not over yet is only sent when forced.
    today = datetime.now(UTC).date()
    code, _, err = await run_command(env, "--date", today.isoformat())
    assert code == 1 and "not over yet" in err


async def test_of_many_simultaneous_claims_exactly_one_wins(pool: asyncpg.Pool) -> None:
    from reporter.report_adapters import claim

    day = fresh_today()
    results = await asyncio.gather(*(claim(pool, day, f"r{i}", 60.0) for i in range(20)))
    assert len([r for r in results if r is not None]) == 1


async def test_a_replica_that_died_while_sending_is_taken_over_after_its_lease(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    today = fresh_today()
    await some_activity(pool, today - timedelta(days=1))
    yesterday = today - timedelta(days=1)
    await pool.execute(
        "INSERT INTO reporter_daily_reports (day, state, attempts, claimed_by, claimed_until)"
        " VALUES ($1, 'sending', 1, 'dead', now() + interval '0.5 seconds')",
        yesterday,
    )
    reporter = DailyReporter(
        pool, config_for(smtp, catch_up_days=1), now=Clock(at_local(today, "UTC"))
    )
    assert await reporter.tick() == []  # the lease still holds
    await asyncio.sleep(0.6)
    assert await reporter.tick() == [yesterday]
    row = await pool.fetchrow("SELECT * FROM reporter_daily_reports WHERE day = $1", yesterday)
    assert row is not None
    assert (row["state"], row["attempts"]) == ("sent", 2)
    # The same Message-ID the dead replica used, had it got as far as the server.
    assert row["message_id"] == f"<daily-report.{yesterday.isoformat()}.utc@example.com>"


async def test_a_day_sent_before_a_restore_is_not_sent_again_after_it(
    pool: asyncpg.Pool, smtp: SmtpSink, settings: ServiceSettings
) -> None:
    today = fresh_today()
    yesterday = today - timedelta(days=1)
    await some_activity(pool, yesterday)
    clock = Clock(at_local(today, "UTC", 6, 0))
    cfg = config_for(smtp, catch_up_days=1)
    assert await DailyReporter(pool, cfg, now=clock, owner="before").tick() == [yesterday]
    sent = len(smtp.received)

    restored = TestEnvironment.create(["reporter"])  # migrated, empty
    try:
        await asyncio.to_thread(restore_events, settings.database_url, restored.database_url)
        other = await create_pool(restored.database_url, min_size=2, max_size=2)
        try:
            await replay(other, PROJECTION)
            row = await other.fetchrow(
                "SELECT state, attempts FROM reporter_daily_reports WHERE day = $1", yesterday
            )
            assert (row["state"], row["attempts"]) == ("sent", 1)
            again = DailyReporter(other, cfg, now=clock, owner="after-restore")
            assert await again.tick() == []
            assert len(smtp.received) == sent
        finally:
            await other.close()
    finally:
        restored.destroy()
