"""The daily statistics email: a background task that sends each local day's report once,
and the command ``python -m reporter.daily_report --date 2026-11-27 [--print] [--force]``
(``sms-daily-report``).

Which days. The report of day D (a date in REPORT_TZ) is due at REPORT_TIME on D + 1. Each
minute the task lists the due days from the first day with any activity up to the latest due
one, but no further back than REPORT_CATCH_UP_DAYS days: after an outage the missed days are
sent on recovery, oldest first, and a reporter first given an SMTP server after months of
running does not send months of reports. A day older than that window that still was not
sent is left alone (its figures remain available with ``--print``).

One email per day, with any number of replicas and restarts. ``reporter_daily_reports`` has
a row per day; sending starts with claiming it in one statement (INSERT ... ON CONFLICT DO
UPDATE ... WHERE not sent and no live lease), which at most one replica wins. The winner
sends with a deterministic Message-ID and records "sent" right after the server's 250. A
failure (server down, 4xx/5xx, timeout) is logged, recorded with a backoff (claimed_until),
and retried by whichever replica claims the day next; later days wait, so the order holds.

What cannot be made atomic is the SMTP transaction and the database update. The remaining
window is a crash (or a database outage longer than the lease) after the server accepted the
message and before the row says so: the lease then expires and the day is sent again. The
window is kept small (the row is updated immediately after the 250, retried while the lease
lasts, and a send can never outlive the lease: it is cut off at half of it) and the
duplicate is recognisable: it carries the same Message-ID, which mail clients and servers
that collapse duplicates use, and the log shows both sends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from email.message import EmailMessage
from enum import Enum
from uuid import uuid4
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from reporter import mailer
from reporter.config import Settings
from reporter.mailer import Sent, SmtpConfig, build_message
from reporter.metrics import DAILY_REPORTS
from reporter.report import day_bounds, due_days, message_id, render_text
from reporter.report_adapters import (
    Claim,
    claim,
    first_activity,
    load_report,
    mark_failed,
    mark_sent,
    report_row,
    sent_days,
)
from sms_events.db import create_pool
from sms_events.logs import configure_logging
from sms_events.retrying import OUTAGES, RetryPolicy
from sms_events.tracing import traced

__all__ = ["DailyReporter", "Delivery", "Outcome", "ReportConfig", "deliver", "main"]

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
Sender = Callable[[SmtpConfig, EmailMessage, Sequence[str]], Awaitable[Sent]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_owner(role: str = "task") -> str:
    """Who holds a claim, as shown in reporter_daily_reports.claimed_by."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}:{uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class ReportConfig:
    tz: str
    at: time
    catch_up_days: int
    recipients: list[str]
    smtp: SmtpConfig
    lease_s: float = 600.0
    retry_base_s: float = 30.0
    retry_cap_s: float = 1800.0
    # Marking a sent day in the database: a blip waited out while the lease protects the day.
    record_retry: RetryPolicy = OUTAGES

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportConfig:
        return cls(
            tz=settings.report_tz,
            at=settings.report_time,
            catch_up_days=settings.report_catch_up_days,
            recipients=settings.report_to,
            smtp=SmtpConfig.from_settings(settings),
            record_retry=settings.outage_retry(),
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def retry_in(self, attempt: int) -> float:
        return min(self.retry_cap_s, self.retry_base_s * 2.0 ** min(attempt - 1, 30))


class Outcome(Enum):
    SENT = "sent"
    NOT_CLAIMED = "not_claimed"  # sent already, being sent, or waiting out a backoff
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    outcome: Outcome
    message_id: str | None = None
    error: str | None = None


async def deliver(
    pool: asyncpg.Pool,
    config: ReportConfig,
    day: date,
    *,
    owner: str,
    now: datetime,
    by_hand: bool = False,
    force: bool = False,
    send: Sender = mailer.send,
) -> Delivery:
    """Claim ``day``, send its report, record the outcome. Never raises for an SMTP or
    rendering failure (recorded and retried later); a database error while claiming does."""
    claimed = await claim(pool, day, owner, config.lease_s, by_hand=by_hand, force=force)
    if claimed is None:
        return Delivery(Outcome.NOT_CLAIMED)
    mid = message_id(day, config.tz, config.smtp.sender, claimed.resend)
    try:
        report = await load_report(pool, day, config.tz, now)
        message = build_message(report, config.smtp.sender, config.recipients, mid)
        async with asyncio.timeout(config.lease_s / 2):
            sent = await send(config.smtp, message, config.recipients)
    except Exception as exc:  # whatever it was, the task carries on and retries later
        error = _describe(exc)
        delay = config.retry_in(claimed.attempt)
        DAILY_REPORTS.labels("failed").inc()
        log.warning(
            "daily_report_failed", day=day.isoformat(), attempt=claimed.attempt, error=error,
            retry_in_s=delay,
        )  # fmt: skip
        with contextlib.suppress(Exception):
            await mark_failed(pool, claimed, error, delay)
        return Delivery(Outcome.FAILED, mid, error)
    recorded = await _record_sent(pool, claimed, mid, config.lease_s / 2, config.record_retry)
    DAILY_REPORTS.labels("sent").inc()
    log.info(
        "daily_report_sent", day=day.isoformat(), attempt=claimed.attempt, message_id=mid,
        recipients=len(config.recipients), refused=sent.refused, resend=claimed.resend,
        recorded=recorded,
    )  # fmt: skip
    if sent.refused:
        log.warning("daily_report_recipients_refused", day=day.isoformat(), refused=sent.refused)
    return Delivery(Outcome.SENT, mid)


async def _record_sent(
    pool: asyncpg.Pool, claimed: Claim, mid: str, within_s: float, retry: RetryPolicy
) -> bool:
    """Mark the day sent, retrying a database blip while the lease still protects the day."""
    try:
        async for attempt in retry.retrying(
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            event="daily_report_not_recorded_yet",
            within_s=within_s,
            day=claimed.day.isoformat(),
        ):
            with attempt:
                if await mark_sent(pool, claimed, mid):
                    return True
                log.error("daily_report_claim_lost", day=claimed.day.isoformat(), message_id=mid)
                return False
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.error(
            "daily_report_not_recorded", day=claimed.day.isoformat(), message_id=mid,
            error=_describe(exc),
        )  # fmt: skip
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}"[:500] if text else name


class DailyReporter:
    """The background task: wakes every ``tick_s`` and sends whatever days are due."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: ReportConfig,
        *,
        now: Clock = _utcnow,
        tick_s: float = 60.0,
        owner: str | None = None,
        send: Sender = mailer.send,
    ) -> None:
        self._pool = pool
        self._config = config
        self._now = now
        self._tick_s = tick_s
        self._owner = owner or new_owner()
        self._send = send

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "daily_report_started", tz=self._config.tz, at=self._config.at.isoformat(),
            recipients=len(self._config.recipients), catch_up_days=self._config.catch_up_days,
        )  # fmt: skip
        while not stop.is_set():
            try:
                with traced(None):  # a fresh correlation id for each round's lines
                    await self.tick()
            except Exception as exc:  # a database outage: try again at the next tick
                log.warning("daily_report_tick_failed", error=_describe(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._tick_s)

    async def tick(self) -> list[date]:
        """Send the due days not sent yet, oldest first; returns the days this call sent.
        Stops at the first day it cannot send (failed, or another replica has it), so that
        the days go out in order."""
        now = self._now()
        zone = self._config.zone
        first = await first_activity(self._pool)
        days = due_days(
            now,
            zone,
            self._config.at,
            first.astimezone(zone).date() if first is not None else None,
            self._config.catch_up_days,
        )
        if not days:
            return []
        done = await sent_days(self._pool, days[0], days[-1])
        sent: list[date] = []
        for day in days:
            if day in done:
                continue
            result = await deliver(
                self._pool, self._config, day, owner=self._owner, now=now, send=self._send
            )
            if result.outcome is not Outcome.SENT:
                break
            sent.append(day)
        return sent


# --- the command -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sms-daily-report",
        description="Send (or print) the daily statistics email of one local day (REPORT_TZ).",
    )
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument(
        "--print", action="store_true", dest="print_only",
        help="write the text version to stdout; send and record nothing",
    )  # fmt: skip
    parser.add_argument(
        "--force", action="store_true",
        help="send even if that day was sent already (with its own Message-ID) or is not over",
    )  # fmt: skip
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging("reporter-daily-report", settings.log_level, settings.log_format)
    raise SystemExit(asyncio.run(_command(settings, args.date, args.print_only, args.force)))


async def _command(settings: Settings, day: date, print_only: bool, force: bool) -> int:
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        now = _utcnow()
        if print_only:
            sys.stdout.write(render_text(await load_report(pool, day, settings.report_tz, now)))
            return 0
        if not settings.daily_report_enabled:
            _say("EMAIL_HOST and a recipient (REPORT_RECIPIENTS, RECIPIENT_EMAIL_n) are needed")
            return 2
        if now < day_bounds(day, settings.report_zone)[1] and not force:
            _say(f"{day} is not over yet in {settings.report_tz}: --print it, or --force")
            return 1
        config = ReportConfig.from_settings(settings)
        result = await deliver(
            pool, config, day, owner=new_owner("command"), now=now, by_hand=True, force=force
        )
        if result.outcome is Outcome.SENT:
            print(f"sent the report of {day} to {len(config.recipients)} recipient(s)"
                  f" ({result.message_id})")  # fmt: skip
            return 0
        if result.outcome is Outcome.FAILED:
            _say(f"sending failed: {result.error} (the reporter retries it later)")
            return 1
        row = await report_row(pool, day)
        if row is not None and row["state"] == "sent":
            _say(f"the report of {day} was sent at {row['sent_at']:%Y-%m-%d %H:%M:%S%z}"
                 f" ({row['message_id']}): --force sends it again")  # fmt: skip
        else:
            _say(f"the report of {day} is being sent right now (by {row and row['claimed_by']})")
        return 1
    finally:
        await pool.close()


def _say(text: str) -> None:
    print(text, file=sys.stderr)


if __name__ == "__main__":
    main()
