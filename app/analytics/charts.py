"""SVG charts drawn by treu: line charts, bar charts and heat maps. Pure: numbers in, markup out.

No script and no inline style (the pages' CSP forbids both): shapes carry classes that
static/css/dashboard.css colours, plus SVG presentation attributes. Charts scale with their
viewBox (sized for a phone: one unit is about one CSS pixel there), and every chart
has a <title> and <desc>; the page shows the same numbers as a table next to it.

A value of None is hidden (about fewer than k cards): lines break there and the spot is hatched.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 340
# About how wide a character of a tick label is (12 px system font), to keep labels apart.
LABEL_CHAR_WIDTH = 7
Format = Callable[[float], str]
HATCH = (
    '<defs><pattern id="{id}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-bg"/>'
    '<line x1="0" y1="0" x2="0" y2="6" class="hatch-line"/></pattern></defs>'
)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    css: str  # "current" or "previous"


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least top (1, 2, 2.5 or 5 times a power of ten)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if step < 1 and top >= 1:
        step = 1.0
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _open(chart_id: str, title: str, desc: str, height: int, css: str) -> list[str]:
    return [
        f'<svg class="chart {css}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
        HATCH.format(id=chart_id),
    ]


def line_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Format,
    hidden_label: str,
    height: int = 210,
) -> Markup:
    """Lines over the same x steps (e.g. this period and the previous one, step by step)."""
    left, right, top, bottom = 46, 24, 12, 30
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    n = max(len(labels), 1)
    known = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(max(known, default=0))
    y_max = ticks[-1] or 1

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / y_max

    out = _open(chart_id, title, desc, height, "line-chart")
    out += _y_axis(ticks, y, left, WIDTH - right, fmt)
    # Steps hidden in the current period are hatched from top to bottom.
    current = series[0].values if series else []
    half = plot_w / (2 * (n - 1)) if n > 1 else plot_w / 2
    for i, value in enumerate(current):
        if value is None:
            x0, x1 = max(x(i) - half, left), min(x(i) + half, left + plot_w)
            out.append(
                f'<rect class="hidden-step" x="{_num(x0)}" y="{top}" width="{_num(x1 - x0)}" '
                f'height="{plot_h}" fill="url(#{chart_id}-hatch)">'
                f"<title>{escape(labels[i])}: {escape(hidden_label)}</title></rect>"
            )
    for s in reversed(series):  # the current period is drawn last, on top
        for run in _runs(s.values):
            points = " ".join(f"{_num(x(i))},{_num(y(v))}" for i, v in run)
            if len(run) > 1:
                out.append(f'<polyline class="line {s.css}" points="{points}"/>')
            for i, v in run if len(run) == 1 or n <= 31 else []:
                out.append(
                    f'<circle class="dot {s.css}" cx="{_num(x(i))}" cy="{_num(y(v))}" r="2.5">'
                    f"<title>{escape(s.name)}, {escape(labels[i])}: {escape(fmt(v))}</title>"
                    "</circle>"
                )
    out += _x_labels(labels, x, height - 10)
    out.append("</svg>")
    return Markup("".join(out))


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((i, v))
    return [r for r in runs if r]


def _y_axis(
    ticks: Sequence[float], y: Callable[[float], float], x0: float, x1: float, fmt: Format
) -> list[str]:
    out = []
    for t in ticks:
        out.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{_num(y(t))}" y2="{_num(y(t))}"/>')
        out.append(
            f'<text class="tick" x="{x0 - 6}" y="{_num(y(t) + 4)}" text-anchor="end">'
            f"{escape(fmt(t))}</text>"
        )
    return out


def _x_labels(labels: Sequence[str], x: Callable[[int], float], baseline: float) -> list[str]:
    """As many labels as fit side by side, evenly spread, always the first and the last."""
    n = len(labels)
    if n == 0:
        return []
    room = x(n - 1) - x(0) if n > 1 else WIDTH
    widest = max(len(label) for label in labels) * LABEL_CHAR_WIDTH + 10
    fits = min(n, max(2, int(room // widest) + 1))
    shown = sorted({round(i * (n - 1) / (fits - 1)) for i in range(fits)}) if n > 1 else [0]
    out = []
    for i in shown:
        out.append(
            f'<text class="tick" x="{_num(x(i))}" y="{baseline}" text-anchor="middle">'
            f"{escape(labels[i])}</text>"
        )
    return out


def bar_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    fmt: Format,
    hidden_label: str,
    height: int = 190,
) -> Markup:
    """Vertical bars with their value above; the tallest bar is highlighted."""
    left, right, top, bottom = 8, 8, 20, 26
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    n = max(len(values), 1)
    slot = plot_w / n
    peak = max((v for v in values if v is not None), default=0) or 1
    out = _open(chart_id, title, desc, height, "bar-chart")
    base = top + plot_h
    out.append(f'<line class="axis" x1="{left}" x2="{WIDTH - right}" y1="{base}" y2="{base}"/>')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        cx = left + slot * (i + 0.5)
        w = slot * 0.64
        if value is None:
            out.append(
                f'<rect class="hidden-bar" x="{_num(cx - w / 2)}" y="{top}" width="{_num(w)}" '
                f'height="{plot_h}" fill="url(#{chart_id}-hatch)">'
                f"<title>{escape(label)}: {escape(hidden_label)}</title></rect>"
            )
        else:
            h = plot_h * value / peak
            css = "bar peak" if value == peak else "bar"
            out.append(
                f'<rect class="{css}" x="{_num(cx - w / 2)}" y="{_num(base - h)}" '
                f'width="{_num(w)}" height="{_num(h)}" rx="3">'
                f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
            )
            out.append(
                f'<text class="value" x="{_num(cx)}" y="{_num(base - h - 5)}" '
                f'text-anchor="middle">{escape(fmt(value))}</text>'
            )
        out.append(
            f'<text class="tick" x="{_num(cx)}" y="{height - 8}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    out.append("</svg>")
    return Markup("".join(out))


def heat_map(
    *,
    chart_id: str,
    title: str,
    desc: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    fmt: Format,
    hidden_label: str,
    cell_text: Format | None = None,
    top_label: str = "",
    relative: bool = False,
) -> Markup:
    """A grid of cells shaded in five steps up to the largest value (from the smallest, when
    relative: small differences between similar values then show), zero left pale.

    cell_text, when given, writes each value into its cell (e.g. a share as "78").
    Cells without a value yet (a month still to come) are given as NaN and left empty.
    """
    left, top = 62, 24 if top_label else 18
    n_cols = max(len(columns), 1)
    cell_w = (WIDTH - left - 4) / n_cols
    cell_h = min(26.0, max(cell_w, 16.0))
    height = math.ceil(top + cell_h * len(rows) + 4)
    known = [v for row in values for v in row if v is not None and not math.isnan(v)]
    peak = max(known, default=0)
    low = min((v for v in known if v > 0), default=0) if relative else 0
    out = _open(chart_id, title, desc, height, "heat-map")
    if top_label:
        out.append(f'<text class="tick" x="{left}" y="10">{escape(top_label)}</text>')
    for j, col in enumerate(columns):
        if len(columns) <= 14 or j % 2 == 0:
            out.append(
                f'<text class="tick" x="{_num(left + cell_w * (j + 0.5))}" y="{top - 5}" '
                f'text-anchor="middle">{escape(col)}</text>'
            )
    for i, (row_label, row) in enumerate(zip(rows, values, strict=True)):
        y0 = top + cell_h * i
        out.append(
            f'<text class="tick" x="{left - 6}" y="{_num(y0 + cell_h / 2 + 4)}" '
            f'text-anchor="end">{escape(row_label)}</text>'
        )
        for j, value in enumerate(row):
            x0 = left + cell_w * j
            geometry = (
                f'x="{_num(x0 + 1)}" y="{_num(y0 + 1)}" width="{_num(cell_w - 2)}" '
                f'height="{_num(cell_h - 2)}" rx="2"'
            )
            where = f"{row_label}, {columns[j]}"
            if value is None:
                out.append(
                    f'<rect class="cell hidden-cell" {geometry} fill="url(#{chart_id}-hatch)">'
                    f"<title>{escape(where)}: {escape(hidden_label)}</title></rect>"
                )
                continue
            if math.isnan(value):
                continue
            level = _level(value, low, peak)
            out.append(
                f'<rect class="cell heat-{level}" {geometry}>'
                f"<title>{escape(where)}: {escape(fmt(value))}</title></rect>"
            )
            if cell_text is not None:
                dark = " on-dark" if level >= 4 else ""
                out.append(
                    f'<text class="cell-text{dark}" x="{_num(x0 + cell_w / 2)}" '
                    f'y="{_num(y0 + cell_h / 2 + 3.5)}" text-anchor="middle">'
                    f"{escape(cell_text(value))}</text>"
                )
    out.append("</svg>")
    return Markup("".join(out))


def _level(value: float, low: float, peak: float) -> int:
    """Shade 0 (nothing) or 1 to 5 between low and peak."""
    if value <= 0 or peak <= 0:
        return 0
    if peak <= low:
        return 5
    return 1 + min(4, math.floor(5 * (value - low) / (peak - low)))


def hbar_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    fmt: Format,
    hidden_label: str,
    previous: Sequence[float | None] | None = None,
    hidden_short: str = "",
) -> Markup:
    """Horizontal bars, one row per label: long labels (and German ones) stay readable.
    With `previous`, a thin grey bar under each shows the value one period earlier."""
    label_w = min(130, max((len(label) for label in labels), default=4) * LABEL_CHAR_WIDTH + 8)
    row_h, top, value_w = 30, 4, 62
    height = top + row_h * len(labels) + 4
    plot_w = WIDTH - label_w - value_w
    earlier = list(previous) if previous is not None else [None] * len(values)
    peak = max((v for v in [*values, *earlier] if v is not None), default=0) or 1
    out = _open(chart_id, title, desc, height, "hbar-chart")
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y0 = top + row_h * i
        mid = y0 + row_h / 2
        out.append(
            f'<text class="tick" x="{label_w - 8}" y="{_num(mid + 4)}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        if value is None:
            stub = plot_w / 4
            out.append(
                f'<rect class="hidden-bar" x="{label_w}" y="{_num(y0 + 5)}" '
                f'width="{_num(stub)}" height="{row_h - 10}" fill="url(#{chart_id}-hatch)">'
                f"<title>{escape(label)}: {escape(hidden_label)}</title></rect>"
            )
            out.append(
                f'<text class="value hidden-value" x="{_num(label_w + stub + 5)}" '
                f'y="{_num(mid + 4)}">{escape(hidden_short or hidden_label)}</text>'
            )
            continue
        w = max(plot_w * value / peak, 1.5 if value else 0)
        main_h = row_h - 10 if previous is None else row_h - 16
        out.append(
            f'<rect class="bar peak" x="{label_w}" y="{_num(y0 + 5)}" width="{_num(w)}" '
            f'height="{main_h}" rx="3"><title>{escape(label)}: {escape(fmt(value))}</title>'
            "</rect>"
        )
        before = earlier[i]
        if before is not None and before > 0:
            out.append(
                f'<rect class="bar previous" x="{label_w}" y="{_num(y0 + 6 + main_h)}" '
                f'width="{_num(max(plot_w * before / peak, 1.5))}" height="4" rx="1">'
                f"<title>{escape(label)}: {escape(fmt(before))}</title></rect>"
            )
        out.append(
            f'<text class="value" x="{_num(label_w + w + 5)}" y="{_num(mid + 2)}">'
            f"{escape(fmt(value))}</text>"
        )
    out.append("</svg>")
    return Markup("".join(out))
