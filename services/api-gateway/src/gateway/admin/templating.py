"""The admin's templates: the Jinja environment and its filters (dates in the admin's zone,
numbers, percentages, durations)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

__all__ = ["environment"]


def _when(value: Any, zone: tzinfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None or value == "":
        return "—"
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime(fmt)


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        return "—"
    return f"{value:,}".replace(",", "\u202f")


def _pct(value: Any) -> str:
    if value is None:
        return "—"
    return f"{100 * float(value):.1f} %"


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "—"
    total = round(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _seconds(seconds: Any) -> str:
    """A latency: three significant digits under a minute (they start at 0.1 s), else as a
    duration."""
    if seconds is None:
        return "—"
    if float(seconds) < 60:
        return f"{float(seconds):.3g} s"
    return _duration(seconds)


def environment(folder: Path, zone: tzinfo) -> Environment:
    """The admin's Jinja environment: autoescaped, strict, with its filters in ``zone``."""
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda value, fmt="%Y-%m-%d %H:%M": _when(value, zone, fmt)
    env.filters["num"] = _num
    env.filters["pct"] = _pct
    env.filters["duration"] = _duration
    env.filters["seconds"] = _seconds
    env.globals["zone_name"] = str(zone)
    return env
