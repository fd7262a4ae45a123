"""Charts as inline SVG, drawn on the server from plain values (no JavaScript, no CDN).

Colours come from the stylesheet through class names (``c-delivered``, ``c-failed``, ...), so
the markup carries no inline styles and passes a strict Content-Security-Policy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Final

from markupsafe import Markup, escape

from sms_events.reporter_contract import HourlySends, MinuteSends

__all__ = [
    "Bucket",
    "Part",
    "buckets",
    "donut",
    "fill_gaps",
    "nice_max",
    "progress_bar",
    "stacked_bars",
]

MAX_BARS: Final = 120
MAX_BAR_WIDTH: Final = 36.0


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bar: the sends finished in one hour or minute."""

    at: datetime
    delivered: int
    failed: int


def buckets(sends: Iterable[HourlySends | MinuteSends]) -> list[Bucket]:
    """The reporter's sends per hour or per minute as bars, oldest first."""
    bars = [
        Bucket(s.hour if isinstance(s, HourlySends) else s.minute, s.delivered, s.failed)
        for s in sends
    ]
    return sorted(bars, key=lambda b: b.at)


@dataclass(frozen=True, slots=True)
class Part:
    label: str
    value: int
    css: str


def nice_max(value: int) -> int:
    """A round upper bound for an axis: 1, 2, 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1
    power: int = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def fill_gaps(buckets: Sequence[Bucket], step: timedelta, limit: int = MAX_BARS) -> list[Bucket]:
    """Every step between the first and the last bucket (zeros where nothing happened),
    keeping the last ``limit``."""
    if not buckets:
        return []
    by_time = {b.at: b for b in buckets}
    start = max(buckets[0].at, buckets[-1].at - step * (limit - 1))
    out = []
    at = start
    while at <= buckets[-1].at:
        out.append(by_time.get(at, Bucket(at, 0, 0)))
        at += step
    return out


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def stacked_bars(
    buckets: Sequence[Bucket],
    *,
    label: str,
    time_format: str,
    zone: tzinfo,
    width: int = 720,
    height: int = 200,
) -> Markup:
    """Delivered (bottom) and failed (top) per bucket, with a y axis and a few time labels."""
    if not buckets:
        return Markup('<p class="muted">No sends yet.</p>')
    left, bottom, top = 44, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = nice_max(max(b.delivered + b.failed for b in buckets))
    slot = plot_w / len(buckets)
    bar = min(MAX_BAR_WIDTH, max(1.0, slot * 0.8))
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(label)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        out.append(
            f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{_n(y)}" y2="{_n(y)}"/>'
            f'<text class="axis" x="{left - 6}" y="{_n(y + 4)}" text-anchor="end">'
            f"{_n(peak * fraction)}</text>"
        )
    every = max(1, math.ceil(len(buckets) / 6))
    for i, b in enumerate(buckets):
        x = left + i * slot + (slot - bar) / 2
        when = b.at.astimezone(zone).strftime(time_format)
        tip = f"{when}: {b.delivered} delivered, {b.failed} failed"
        h_ok = plot_h * b.delivered / peak
        h_bad = plot_h * b.failed / peak
        y_ok = top + plot_h - h_ok
        out.append(f"<g><title>{escape(tip)}</title>")
        if h_ok:
            out.append(
                f'<rect class="c-delivered" x="{_n(x)}" y="{_n(y_ok)}" '
                f'width="{_n(bar)}" height="{_n(h_ok)}"/>'
            )
        if h_bad:
            out.append(
                f'<rect class="c-failed" x="{_n(x)}" y="{_n(y_ok - h_bad)}" '
                f'width="{_n(bar)}" height="{_n(h_bad)}"/>'
            )
        out.append("</g>")
        if i % every == 0:
            out.append(
                f'<text class="axis" x="{_n(x + bar / 2)}" y="{height - 6}" '
                f'text-anchor="middle">{escape(when)}</text>'
            )
    out.append("</svg>")
    return Markup("".join(out))


def donut(parts: Sequence[Part], *, label: str, size: int = 160) -> Markup:
    """A ring of the parts' shares, the total in the middle."""
    total = sum(p.value for p in parts)
    r, stroke = size / 2 - 14, 22
    c = size / 2
    out = [
        f'<svg class="donut" viewBox="0 0 {size} {size}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        f'<circle class="ring" cx="{c}" cy="{c}" r="{_n(r)}" stroke-width="{stroke}" fill="none"/>',
    ]
    circumference = 2 * math.pi * r
    offset = 0.0
    for part in parts:
        if not total or not part.value:
            continue
        length = circumference * part.value / total
        # A circle's stroke starts at 3 o'clock; rotate it to start at 12.
        out.append(
            f'<circle class="{escape(part.css)}" cx="{c}" cy="{c}" r="{_n(r)}" fill="none" '
            f'stroke-width="{stroke}" stroke-dasharray="{_n(length)} {_n(circumference)}" '
            f'stroke-dashoffset="{_n(-offset)}" transform="rotate(-90 {c} {c})">'
            f"<title>{escape(part.label)}: {part.value}</title></circle>"
        )
        offset += length
    shown = f"{total:,}".replace(",", "\u202f")
    size_class = "donut-total long" if len(shown) > 6 else "donut-total"
    out.append(
        f'<text class="{size_class}" x="{c}" y="{_n(c + 6)}" text-anchor="middle">{shown}</text>'
    )
    out.append("</svg>")
    return Markup("".join(out))


def progress_bar(parts: Sequence[Part], total: int, *, label: str) -> Markup:
    """One horizontal bar: each part's share of ``total`` in its colour, the rest empty."""
    out = [
        f'<svg class="progress" viewBox="0 0 100 6" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>',
        '<rect class="track" x="0" y="0" width="100" height="6"/>',
    ]
    x = 0.0
    for part in parts:
        if not total or not part.value:
            continue
        w = 100 * part.value / total
        out.append(
            f'<rect class="{escape(part.css)}" x="{_n(x)}" y="0" width="{_n(w)}" height="6"/>'
        )
        x += w
    out.append("</svg>")
    return Markup("".join(out))
