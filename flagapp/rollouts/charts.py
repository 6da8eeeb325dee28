"""Server-side SVG charts for the admin: no JavaScript, no CDN, no external requests.

Why SVG strings built by hand: the admin must render the charts on an air-gapped install and
inside a strict Content-Security-Policy; an inline ``<svg>`` is just markup. Every piece of
text is XML-escaped, so flag keys and variant names cannot inject markup.

- ``rollout_timeline_svg``: the served percentage over time (a step line) with one
  guardrail metric and its threshold on a second axis, and markers for transitions.
- ``experiment_svg``: per variant, the difference in conversion rate against control with its
  confidence interval (a forest plot); significant results are drawn solid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape

__all__ = ["ExperimentRow", "Marker", "TimelinePoint", "experiment_svg", "rollout_timeline_svg"]

_FONT = 'font-family="system-ui, sans-serif" font-size="11"'
_TREATMENT = "#2563eb"
_METRIC = "#d97706"
_BAD = "#dc2626"
# Text and grid follow the admin's theme (its CSS variables; light values as fall-back),
# set as style properties: SVG presentation attributes do not resolve var().
_GRID = "var(--hairline-color, #e5e7eb)"
_TEXT = "var(--body-fg, #374151)"
_TEXT_FILL = f'style="fill: {_TEXT}"'
_GRID_STROKE = f'style="stroke: {_GRID}"'


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One point in time. ``status`` (metric points only): ``ok``, ``breach`` (drawn red) or
    ``insufficient`` (drawn hollow: measured, but below the minimum sample, so not judged);
    None colours by the threshold alone."""

    at: datetime
    value: float
    status: str | None = None


@dataclass(frozen=True, slots=True)
class Marker:
    at: datetime
    label: str
    bad: bool = False


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def _nice_max(value: float) -> float:
    """Round an axis maximum up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        candidate = m * 10**exp
        if candidate >= value:
            return float(candidate)
    return float(10 ** (exp + 1))


def rollout_timeline_svg(
    percentage: Sequence[TimelinePoint],
    *,
    metric: Sequence[TimelinePoint] = (),
    metric_label: str = "",
    threshold: float | None = None,
    metric_is_rate: bool = True,
    markers: Sequence[Marker] = (),
    end: datetime | None = None,
    width: int = 720,
    height: int = 260,
    title: str = "Rollout timeline",
) -> str:
    """Percentage (0..100, left axis) as a step line; the metric (right axis) as a line with
    dots and its threshold dashed. Times are datetimes; the x axis spans all of them."""
    left, right, top, bottom = 48, 60, 40, 34
    pw, ph = width - left - right, height - top - bottom
    times = [p.at for p in percentage] + [p.at for p in metric] + [m.at for m in markers]
    if end is not None:
        times.append(end)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" class="flagapp-chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" {_FONT} font-weight="bold" {_TEXT_FILL}>{escape(title)}</text>',
    ]
    if not times:
        out.append(f'<text x="{left}" y="{top + ph / 2}" {_FONT} {_TEXT_FILL}>no data yet</text>')
        out.append("</svg>")
        return "\n".join(out)
    t0, t1 = min(times), max(times)
    span = max((t1 - t0).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return left + pw * (at - t0).total_seconds() / span

    def y_pct(v: float) -> float:
        return top + ph * (1 - v / 100.0)

    metric_values = [p.value for p in metric]
    m_max = _nice_max(max([*metric_values, threshold or 0.0, 0.0]) * 1.1)

    def y_metric(v: float) -> float:
        return top + ph * (1 - v / m_max)

    def fmt_metric(v: float) -> str:
        return f"{v * 100:.1f}%" if metric_is_rate else f"{v:.0f}"

    # Grid and axes.
    for pct in (0, 25, 50, 75, 100):
        yy = y_pct(pct)
        out.append(
            f'<line x1="{left}" y1="{yy:.1f}" x2="{left + pw}" y2="{yy:.1f}" {_GRID_STROKE}/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{yy + 4:.1f}" {_FONT} text-anchor="end" '
            f'fill="{_TREATMENT}">{pct}%</text>'
        )
    if metric:
        for frac in (0.0, 0.5, 1.0):
            out.append(
                f'<text x="{left + pw + 6}" y="{y_metric(m_max * frac) + 4:.1f}" {_FONT} '
                f'fill="{_METRIC}">{fmt_metric(m_max * frac)}</text>'
            )
    out.append(
        f'<text x="{left}" y="{height - 8}" {_FONT} {_TEXT_FILL}>'
        f"{escape(t0.strftime('%Y-%m-%d %H:%M'))}</text>"
    )
    out.append(
        f'<text x="{left + pw}" y="{height - 8}" {_FONT} text-anchor="end" {_TEXT_FILL}>'
        f"{escape(t1.strftime('%Y-%m-%d %H:%M'))}</text>"
    )
    # Percentage step line.
    if percentage:
        pts: list[str] = []
        ordered = sorted(percentage, key=lambda p: p.at)
        for i, p in enumerate(ordered):
            if i:
                pts.append(f"{x(p.at):.1f},{y_pct(ordered[i - 1].value):.1f}")
            pts.append(f"{x(p.at):.1f},{y_pct(p.value):.1f}")
        pts.append(f"{x(end or t1):.1f},{y_pct(ordered[-1].value):.1f}")
        out.append(
            f'<polyline class="percentage" fill="none" stroke="{_TREATMENT}" stroke-width="2" '
            f'points="{" ".join(pts)}"/>'
        )
    # Threshold and metric.
    if threshold is not None and metric:
        ty = y_metric(threshold)
        out.append(
            f'<line class="threshold" x1="{left}" y1="{ty:.1f}" x2="{left + pw}" y2="{ty:.1f}" '
            f'stroke="{_BAD}" stroke-dasharray="5,4"/>'
        )
        out.append(
            f'<text x="{left + pw - 4}" y="{ty - 4:.1f}" {_FONT} text-anchor="end" '
            f'fill="{_BAD}">threshold {fmt_metric(threshold)}</text>'
        )
    if metric:
        ordered_m = sorted(metric, key=lambda p: p.at)
        line = " ".join(f"{x(p.at):.1f},{y_metric(p.value):.1f}" for p in ordered_m)
        out.append(
            f'<polyline class="metric" fill="none" stroke="{_METRIC}" stroke-width="1.5" '
            f'points="{line}"/>'
        )
        for p in ordered_m:
            if p.status is not None:
                breach = p.status == "breach"
            else:
                breach = threshold is not None and p.value > threshold
            colour = _BAD if breach else _METRIC
            fill = "#ffffff" if p.status == "insufficient" else colour
            note = " (below the minimum sample)" if p.status == "insufficient" else ""
            out.append(
                f'<circle cx="{x(p.at):.1f}" cy="{y_metric(p.value):.1f}" r="3" '
                f'fill="{fill}" stroke="{colour}" stroke-width="1.5">'
                f"<title>{escape(metric_label)} {fmt_metric(p.value)} at "
                f"{escape(p.at.strftime('%H:%M:%S'))}{note}</title></circle>"
            )
    for m in markers:
        mx = x(m.at)
        colour = _BAD if m.bad else _TEXT
        out.append(
            f'<line class="marker" x1="{mx:.1f}" y1="{top}" x2="{mx:.1f}" y2="{top + ph}" '
            f'stroke="{colour}" stroke-dasharray="2,3"><title>{escape(m.label)}</title></line>'
        )
    # Legend, on its own line under the title.
    out.append(f'<text x="{left}" y="31" {_FONT} fill="{_TREATMENT}">— served %</text>')
    if metric:
        out.append(
            f'<text x="{left + 90}" y="31" {_FONT} fill="{_METRIC}">'
            f"— {escape(metric_label)} (treatment; hollow = below the minimum sample)</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class ExperimentRow:
    """One variant: its conversion rate, and (for non-control variants) the difference from
    control with its interval. ``significant`` colours the row."""

    variant: str
    rate: float
    n: int
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    significant: bool = False
    control: bool = False
    p_value: float | None = None


def experiment_svg(
    rows: Sequence[ExperimentRow],
    *,
    confidence: float = 0.95,
    width: int = 720,
    title: str = "Conversion difference vs control",
) -> str:
    """A forest plot: each variant's difference from control (percentage points) with its
    confidence interval, a zero line, and the raw rate and sample on the right."""
    row_h = 30
    left, right, top = 150, 190, 40
    height = top + row_h * max(len(rows), 1) + 30
    pw = width - left - right
    bounds = [abs(v) for r in rows for v in (r.ci_low, r.ci_high, r.diff) if v is not None]
    lim = _nice_max(max([*bounds, 0.001]) * 1.1)

    def x(v: float) -> float:
        return left + pw * (v + lim) / (2 * lim)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" class="flagapp-chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="8" y="16" {_FONT} font-weight="bold" {_TEXT_FILL}>{escape(title)} '
        f"({confidence:.0%} CI)</text>",
        f'<line x1="{x(0):.1f}" y1="{top - 10}" x2="{x(0):.1f}" y2="{height - 24}" '
        f'stroke="{_TEXT}"/>',
    ]
    for tick in (-lim, -lim / 2, lim / 2, lim):
        out.append(
            f'<text x="{x(tick):.1f}" y="{height - 8}" {_FONT} text-anchor="middle" '
            f"{_TEXT_FILL}>{tick * 100:+.1f}pp</text>"
        )
        out.append(
            f'<line x1="{x(tick):.1f}" y1="{top - 10}" x2="{x(tick):.1f}" y2="{height - 24}" '
            f"{_GRID_STROKE}/>"
        )
    for i, r in enumerate(rows):
        cy = top + i * row_h + row_h / 2
        name = f"{r.variant} (control)" if r.control else r.variant
        out.append(
            f'<text x="{left - 10}" y="{cy + 4:.1f}" {_FONT} text-anchor="end" '
            f"{_TEXT_FILL}>{escape(name)}</text>"
        )
        out.append(
            f'<text x="{left + pw + 10}" y="{cy + 4:.1f}" {_FONT} {_TEXT_FILL}>'
            f"{r.rate * 100:.2f}% of {r.n:,}"
            f"{f'  p={r.p_value:.3g}' if r.p_value is not None else ''}</text>"
        )
        if r.diff is None or r.ci_low is None or r.ci_high is None:
            continue
        colour = _TREATMENT if r.significant else "#9ca3af"
        out.append(
            f'<g class="ci"><title>{escape(r.variant)}: {r.diff * 100:+.2f}pp '
            f"[{r.ci_low * 100:+.2f}, {r.ci_high * 100:+.2f}]</title>"
            f'<line x1="{x(max(r.ci_low, -lim)):.1f}" y1="{cy:.1f}" '
            f'x2="{x(min(r.ci_high, lim)):.1f}" y2="{cy:.1f}" stroke="{colour}" '
            f'stroke-width="2"/>'
            f'<rect x="{x(r.diff) - 4:.1f}" y="{cy - 4:.1f}" width="8" height="8" '
            f'fill="{colour}"/></g>'
        )
    out.append("</svg>")
    return "\n".join(out)
