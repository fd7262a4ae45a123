"""The daily statistics email's rules: which local days are due, a day's bounds in UTC, and
the report rendered as text and HTML. No I/O, no clock: ``now`` is passed in."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from reporter.stats import delivery_rate

__all__ = [
    "MAX_TABLE_ROWS",
    "DailyReport",
    "Figures",
    "MailingLine",
    "day_bounds",
    "due_days",
    "message_id",
    "render_html",
    "render_text",
    "send_time",
    "subject",
]

MAX_TABLE_ROWS = 500  # mailings listed in one email; the rest are counted in a closing line


@dataclass(frozen=True, slots=True)
class Figures:
    delivered: int = 0
    undelivered: int = 0  # final failures (ND)
    cancelled: int = 0
    attempts: int = 0
    segments: int = 0  # SMS segments of the delivered messages

    @property
    def delivery_rate(self) -> float | None:
        return delivery_rate(self.delivered, self.undelivered)


@dataclass(frozen=True, slots=True)
class MailingLine:
    mailing_id: int
    state: str
    datetime_start: datetime | None
    datetime_end: datetime | None
    figures: Figures


@dataclass(frozen=True, slots=True)
class DailyReport:
    day: date
    tz: str
    start: datetime  # the local day's bounds, in UTC
    end: datetime
    generated_at: datetime
    totals: Figures
    mailings: list[MailingLine] = field(default_factory=list)
    more_mailings: int = 0  # active that day but left out of the table (MAX_TABLE_ROWS)


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants the local ``day`` starts and ends at. A midnight that a DST change
    skips maps to the moment of the change, and consecutive days always tile exactly."""
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def send_time(day: date, zone: ZoneInfo, at: time) -> datetime:
    """When the report of ``day`` is due: ``at`` on the following local day."""
    return datetime.combine(day + timedelta(days=1), at, tzinfo=zone).astimezone(UTC)


def due_days(
    now: datetime, zone: ZoneInfo, at: time, first_day: date | None, catch_up: int
) -> list[date]:
    """The days whose report should have gone out by ``now``, oldest first: from the first
    day with data (None: nothing ever happened, nothing to report), but no more than the
    ``catch_up`` latest ones."""
    if first_day is None:
        return []
    last = now.astimezone(zone).date() - timedelta(days=1)
    if now < send_time(last, zone, at):
        last -= timedelta(days=1)
    first = max(first_day, last - timedelta(days=catch_up - 1))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def message_id(day: date, tz: str, sender: str, resend: int = 0) -> str:
    """The same Message-ID for every send of one day's report, so that a duplicate (a crash
    between the server's 250 and recording it) can be recognised, and mail clients that
    collapse duplicates do; a forced resend gets its own."""
    domain = sender.rpartition("@")[2].strip("<> ") or "localhost"
    zone = tz.replace("/", ".").lower()
    suffix = f".resend{resend}" if resend else ""
    return f"<daily-report.{day.isoformat()}.{zone}{suffix}@{domain}>"


def subject(report: DailyReport) -> str:
    return f"SMS platform statistics for {report.day.isoformat()} ({report.tz})"


def _rate(figures: Figures) -> str:
    rate = figures.delivery_rate
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def _when(t: datetime | None, zone: ZoneInfo) -> str:
    return "-" if t is None else t.astimezone(zone).strftime("%Y-%m-%d %H:%M")


_COLUMNS: tuple[str, ...] = (
    "Mailing", "State", "Start", "End", "Delivered", "Segments", "Undelivered", "Cancelled",
    "Attempts", "Delivery rate",
)  # fmt: skip


def _row(line: MailingLine, zone: ZoneInfo) -> tuple[str, ...]:
    f = line.figures
    return (
        str(line.mailing_id),
        line.state,
        _when(line.datetime_start, zone),
        _when(line.datetime_end, zone),
        str(f.delivered),
        str(f.segments),
        str(f.undelivered),
        str(f.cancelled),
        str(f.attempts),
        _rate(f),
    )


def _totals(report: DailyReport) -> list[tuple[str, str]]:
    t = report.totals
    return [
        ("Delivered", str(t.delivered)),
        ("SMS segments sent", str(t.segments)),
        ("Undelivered (final)", str(t.undelivered)),
        ("Cancelled", str(t.cancelled)),
        ("Attempts", str(t.attempts)),
        ("Delivery rate", _rate(t)),
    ]


def render_text(report: DailyReport) -> str:
    zone = ZoneInfo(report.tz)
    lines = [
        subject(report),
        f"Day: {_when(report.start, zone)} to {_when(report.end, zone)} {report.tz}",
        "",
        "Totals",
    ]
    lines += [f"  {name + ':':<21}{value}" for name, value in _totals(report)]
    lines.append("")
    if not report.mailings:
        lines.append("No mailing sent, failed or cancelled a message that day.")
    else:
        rows = [_COLUMNS, *(_row(m, zone) for m in report.mailings)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
        lines.append(f"Mailings active that day ({len(report.mailings) + report.more_mailings})")
        for r in rows:
            lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        if report.more_mailings:
            lines.append(f"  ... and {report.more_mailings} more mailings")
    lines += ["", f"Generated {_when(report.generated_at, zone)} {report.tz}."]
    return "\n".join(lines) + "\n"


_CELL = 'style="padding:4px 8px;border:1px solid #ccc;text-align:{align}"'


def _cells(tag: str, values: tuple[str, ...]) -> str:
    out = []
    for i, value in enumerate(values):
        style = _CELL.format(align="left" if i < 4 else "right")
        out.append(f"<{tag} {style}>{html.escape(value)}</{tag}>")
    return "<tr>" + "".join(out) + "</tr>"


def render_html(report: DailyReport) -> str:
    zone = ZoneInfo(report.tz)
    e = html.escape
    totals = "".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0">{e(name)}</th>'
        f'<td style="text-align:right">{e(value)}</td></tr>'
        for name, value in _totals(report)
    )
    parts = [
        '<!DOCTYPE html><html><body style="font-family:sans-serif">',
        f"<h2>{e(subject(report))}</h2>",
        f"<p>{e(_when(report.start, zone))} to {e(_when(report.end, zone))} {e(report.tz)}</p>",
        f"<h3>Totals</h3><table>{totals}</table>",
    ]
    if not report.mailings:
        parts.append("<p>No mailing sent, failed or cancelled a message that day.</p>")
    else:
        count = len(report.mailings) + report.more_mailings
        parts.append(f"<h3>Mailings active that day ({count})</h3>")
        parts.append('<table style="border-collapse:collapse">')
        parts.append(_cells("th", _COLUMNS))
        parts.extend(_cells("td", _row(m, zone)) for m in report.mailings)
        parts.append("</table>")
        if report.more_mailings:
            parts.append(f"<p>... and {report.more_mailings} more mailings</p>")
    parts.append(
        f'<p style="color:#666">Generated {e(_when(report.generated_at, zone))} '
        f"{e(report.tz)}.</p></body></html>"
    )
    return "\n".join(parts) + "\n"
