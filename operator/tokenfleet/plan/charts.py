"""Small inline-SVG charts for the HTML reports of ``plan`` and ``demo`` (no plotting library)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")
WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 60


@dataclass(frozen=True)
class Series:
    """One named series: bar values per category, or (x, y) points for lines."""

    name: str
    values: tuple
    color: str | None = None
    step: bool = False  # lines: hold each value until the next point


def nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * power * (1 + 1e-9):
            return factor * power
    return 10 * power


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _frame(y_max: float, y_label: str, ticks: int = 5) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for i in range(ticks + 1):
        v = y_max * i / ticks
        y = TOP + plot_h - plot_h * i / ticks
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{_fmt(v)}</text>')
    parts.append(f'<text x="14" y="{TOP + plot_h / 2:.1f}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">{escape(y_label)}</text>')
    return parts


def _legend(series: list[Series]) -> list[str]:
    parts, x = [], LEFT
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{HEIGHT - 18}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{x + 14}" y="{HEIGHT - 9}" font-size="11">{escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    return parts


def _svg(parts: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" role="img" aria-label="{escape(title)}" font-family="sans-serif">'
            f'<title>{escape(title)}</title>' + "".join(parts) + "</svg>")


def bar_chart(categories: list[str], series: list[Series], title: str, y_label: str, stacked: bool = True) -> str:
    """Bars per category: stacked series (or side by side), totals written above each stack."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = [sum(max(0.0, s.values[i]) for s in series) if stacked else max(s.values[i] for s in series)
              for i in range(len(categories))]
    y_max = nice_max(max(totals, default=1.0))
    parts = _frame(y_max, y_label)
    slot = plot_w / max(len(categories), 1)
    width = slot * 0.6 / (1 if stacked else len(series))
    for i, cat in enumerate(categories):
        x0, base = LEFT + slot * i + slot * 0.2, 0.0
        for j, s in enumerate(series):
            v = max(0.0, s.values[i])
            h = plot_h * v / y_max
            x = x0 if stacked else x0 + j * width
            y = TOP + plot_h - plot_h * (base if stacked else 0.0) / y_max - h
            color = s.color or PALETTE[j % len(PALETTE)]
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}" fill="{color}">'
                         f'<title>{escape(cat)}: {escape(s.name)} {_fmt(v)}</title></rect>')
            base += v if stacked else 0.0
        top = TOP + plot_h - plot_h * totals[i] / y_max
        parts.append(f'<text x="{x0 + slot * 0.3:.1f}" y="{top - 4:.1f}" text-anchor="middle" '
                     f'font-size="11">{_fmt(totals[i])}</text>')
        parts.append(f'<text x="{LEFT + slot * (i + 0.5):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                     f'font-size="11">{escape(cat)}</text>')
    return _svg(parts + _legend(series), title)


def _log_axis(values: list[float]) -> tuple[float, float, list[tuple[float, str]]]:
    """(low, high) in log10 units rounded out to decades, and a tick at each decade."""
    positive = [v for v in values if v > 0] or [1.0]
    lo, hi = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    hi = hi if hi > lo else lo + 1
    return float(lo), float(hi), [(float(k), _fmt(10.0 ** k)) for k in range(lo, hi + 1)]


def _grid(parts: list[str], ticks: list[tuple[float, str]], lo: float, hi: float, vertical: bool) -> None:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    for value, label in ticks:
        share = (value - lo) / (hi - lo)
        if vertical:  # x ticks; the last one ends at the plot's edge so that it is not cut off
            x = LEFT + plot_w * share
            anchor = "end" if share >= 0.999 else "middle"
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}" font-size="11">'
                         f'{label}</text>')
        else:
            y = TOP + plot_h - plot_h * share
            parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
            parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{label}</text>')


def line_chart(series: list[Series], title: str, x_label: str, y_label: str, log: bool = False,
               counts: bool = False) -> str:
    """Lines (or steps) of (x, y) points on shared axes; ``log``: both axes in decades.

    ``counts``: whole-number y ticks, and each series drawn a little higher than the one before,
    so that series with equal values (three tiers at one replica) stay visible.
    """
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    points = [p for s in series for p in s.values] or [(0.0, 0.0), (1.0, 1.0)]
    f = (lambda v: math.log10(max(v, 1e-12))) if log else (lambda v: v)
    if log:
        x_lo, x_hi, x_ticks = _log_axis([p[0] for p in points])
        y_lo, y_hi, y_ticks = _log_axis([p[1] for p in points])
    else:
        x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
        x_hi = x_hi if x_hi > x_lo else x_lo + 1.0
        x_ticks = [(x_lo + (x_hi - x_lo) * i / 4, _fmt(round(x_lo + (x_hi - x_lo) * i / 4, 1))) for i in range(5)]
        y_lo, y_hi = 0.0, nice_max(max(p[1] for p in points))
        if counts:
            y_hi = float(max(1, math.ceil(max(p[1] for p in points) + 0.5)))
        steps = int(y_hi) if counts else 5
        y_ticks = [(y_hi * i / steps, _fmt(y_hi * i / steps)) for i in range(steps + 1)]
    parts = [f'<text x="14" y="{TOP + plot_h / 2:.1f}" font-size="12" text-anchor="middle" '
             f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">{escape(y_label)}</text>',
             f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - BOTTOM + 32}" text-anchor="middle" '
             f'font-size="12">{escape(x_label)}</text>']
    _grid(parts, y_ticks, y_lo, y_hi, vertical=False)
    _grid(parts, x_ticks, x_lo, x_hi, vertical=True)
    for j, s in enumerate(series):
        lift = 0.02 * j * (y_hi - y_lo) if counts else 0.0
        coords = []
        for k, (x, y) in enumerate(s.values):
            if s.step and k:
                coords.append(_point(x, s.values[k - 1][1], lift, f, (x_lo, x_hi, y_lo, y_hi)))
            coords.append(_point(x, y, lift, f, (x_lo, x_hi, y_lo, y_hi)))
        color = s.color or PALETTE[j % len(PALETTE)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(coords)}">'
                     f'<title>{escape(s.name)}</title></polyline>')
    return _svg(parts + _legend(series), title)


def _point(x: float, y: float, lift: float, f, box: tuple[float, float, float, float]) -> str:
    x_lo, x_hi, y_lo, y_hi = box
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    px = LEFT + plot_w * (f(x) - x_lo) / (x_hi - x_lo)
    py = TOP + plot_h - plot_h * ((f(y) - y_lo) / (y_hi - y_lo)) - plot_h * lift / (y_hi - y_lo)
    return f"{px:.1f},{py:.1f}"
