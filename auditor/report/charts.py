"""Inline SVG charts for the report: built as plain strings, the same bytes for the same input.

Both charts are meant to sit inside the HTML page (HTML and PDF alike), so they carry no XML declaration and
no namespace attribute, load no font or image, and every text they show goes through `markupsafe.escape`.
Each has `width`/`height` and a `viewBox`, so CSS can scale it down on a narrow screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from auditor.rules.catalog import SEVERITIES

# One colour per severity, the same in the charts and in reports/report.css.
COLOURS = {
    "critical": "#7f1d1d",
    "high": "#dc2626",
    "medium": "#ea580c",
    "low": "#a16207",
    "info": "#6b7280",
}
OTHER_COLOUR = "#9ca3af"  # a severity the catalog does not know
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"


def trend_svg(trend: Sequence[Mapping[str, Any]]) -> Markup:
    """Failing findings by severity over the snapshots of `trend` (oldest first), as stacked bars.

    Each point is a dict with `started_at` (datetime), `status` and `fails` (severity -> count). The x axis
    is labelled with the snapshot dates (MM-DD), the y axis with counts; the total is printed over each bar.
    """
    width, height = 560, 250
    left, right, top, bottom = 48, 12, 40, 206  # plot area
    points = list(trend)
    severities = _severities(p.get("fails") or {} for p in points)
    totals = [sum(_count(p.get("fails") or {}, s) for s in severities) for p in points]
    peak = max(totals, default=0)
    step, y_max = _axis(peak)

    latest = ""
    if points:
        fails = points[-1].get("fails") or {}
        parts = ", ".join(f"{s} {_count(fails, s)}" for s in severities)
        latest = f" Latest snapshot ({_date(points[-1].get('started_at'))}): {totals[-1]} failing ({parts})."
    out = [_open(width, height, "Failing findings by severity over the last snapshots",
                 f"{len(points)} snapshot(s).{latest}")]

    # Legend, on one row above the plot.
    x = left
    for severity in severities:
        out.append(f'<rect x="{x}" y="10" width="10" height="10" fill="{_colour(severity)}"/>'
                   f'<text x="{x + 14}" y="19" font-size="12" fill="{INK}">{escape(severity)}</text>')
        x += 14 + round(7.5 * len(severity)) + 18

    # Y axis: grid lines and counts.
    plot_h = bottom - top
    value = 0
    while value <= y_max:
        y = bottom - plot_h * value / y_max
        out.append(f'<line x1="{left}" y1="{_n(y)}" x2="{width - right}" y2="{_n(y)}" stroke="{GRID}"/>'
                   f'<text x="{left - 6}" y="{_n(y + 4)}" font-size="12" text-anchor="end" fill="{MUTED}">'
                   f'{value}</text>')
        value += step
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="{MUTED}"/>')

    if not points:
        out.append(f'<text x="{_n((left + width - right) / 2)}" y="{_n((top + bottom) / 2)}" font-size="13" '
                   f'text-anchor="middle" fill="{MUTED}">No evaluated snapshot yet</text>')
    plot_w = width - right - left
    slot = plot_w / max(len(points), 1)
    bar = min(56.0, slot * 0.6)
    partial = False
    for i, point in enumerate(points):
        fails = point.get("fails") or {}
        centre = left + slot * (i + 0.5)
        y = float(bottom)
        for severity in severities:
            count = _count(fails, severity)
            if count <= 0:
                continue
            h = plot_h * count / y_max
            y -= h
            out.append(f'<rect x="{_n(centre - bar / 2)}" y="{_n(y)}" width="{_n(bar)}" height="{_n(h)}" '
                       f'fill="{_colour(severity)}"><title>{escape(severity)}: {count}</title></rect>')
        out.append(f'<text x="{_n(centre)}" y="{_n(y - 4)}" font-size="12" text-anchor="middle" '
                   f'fill="{INK}">{totals[i]}</text>')
        mark = ""
        if point.get("status") not in (None, "complete"):
            mark, partial = "*", True
        out.append(f'<text x="{_n(centre)}" y="{bottom + 16}" font-size="12" text-anchor="middle" '
                   f'fill="{MUTED}">{escape(_date(point.get("started_at")))}{mark}</text>')
    if partial:
        out.append(f'<text x="{width - right}" y="{height - 8}" font-size="10" text-anchor="end" '
                   f'fill="{MUTED}">* partial or failed snapshot</text>')
    out.append(f'<text x="12" y="{_n((top + bottom) / 2)}" font-size="10" text-anchor="middle" fill="{MUTED}" '
               f'transform="rotate(-90 12 {_n((top + bottom) / 2)})">failing</text>')
    out.append("</svg>")
    return Markup("".join(out))


def severity_svg(fails: Mapping[str, Any]) -> Markup:
    """Failing findings per severity as horizontal bars, most severe on top, with the count after each bar."""
    severities = _severities([fails])
    row, label_w, bar_max = 26, 78, 250
    width, height = 380, 12 + row * len(severities)
    peak = max((_count(fails, s) for s in severities), default=0)
    parts = ", ".join(f"{s} {_count(fails, s)}" for s in severities)
    out = [_open(width, height, "Failing findings by severity", parts + ".")]
    for i, severity in enumerate(severities):
        count = _count(fails, severity)
        y = 6 + row * i
        length = bar_max * count / peak if peak else 0
        if count and length < 2:
            length = 2
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" font-size="12" text-anchor="end" fill="{INK}">'
                   f'{escape(severity)}</text>'
                   f'<rect x="{label_w}" y="{y + 3}" width="{bar_max}" height="16" fill="{GRID}" opacity="0.5"/>')
        if length:
            out.append(f'<rect x="{label_w}" y="{y + 3}" width="{_n(length)}" height="16" '
                       f'fill="{_colour(severity)}"/>')
        out.append(f'<text x="{_n(label_w + length + 6)}" y="{y + 15}" font-size="12" fill="{INK}">'
                   f'{count}</text>')
    out.append("</svg>")
    return Markup("".join(out))


# -- helpers ---------------------------------------------------------------------------------------------------
def _open(width: int, height: int, title: str, desc: str) -> str:
    return (f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="{FONT}" preserveAspectRatio="xMinYMin meet">'
            f'<title>{escape(title)}</title><desc>{escape(desc)}</desc>')


def _severities(dicts: Iterable[Mapping[str, Any]]) -> list[str]:
    """The catalog's severities in order, then any other key found (sorted), so nothing is dropped silently."""
    extra = sorted({str(k) for d in dicts for k in d if k not in SEVERITIES})
    return [*SEVERITIES, *extra]


def _count(fails: Mapping[str, Any], severity: str) -> int:
    try:
        return max(int(fails.get(severity) or 0), 0)
    except (TypeError, ValueError):
        return 0


def _colour(severity: str) -> str:
    return COLOURS.get(severity, OTHER_COLOUR)


def _axis(peak: int) -> tuple[int, int]:
    """A step of 1, 2 or 5 times a power of ten giving at most 5 intervals, and the top of the axis."""
    if peak <= 0:
        return 1, 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor * 5 >= peak:
                s = step * factor
                return s, s * -(-peak // s)
        step *= 10


def _date(value: Any) -> str:
    return value.strftime("%m-%d") if hasattr(value, "strftime") else ""


def _n(value: float) -> str:
    """A coordinate with at most one decimal, without a trailing `.0` (stable text for stable bytes)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text
