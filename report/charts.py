"""Chart specifications: what a chart shows, independent of how it is drawn.

A report section describes its chart as a :class:`Chart` of stacked :class:`Panel` s, each
holding :class:`Trace` s; :mod:`report.interactive` draws it with plotly (the page) and
:mod:`report.static` with matplotlib (``--static``, PNG). So a new chart is written once
and both outputs share its layout rules: legends above the plot area (never over data),
plain thousands-separated numbers on the axes (no scientific notation), one shared time
axis per chart.

Long series are reduced before they reach a backend (:func:`downsample`): each of at most
``max_points / 2`` equal buckets keeps its minimum and its maximum, so wicks, crashes and
liquidation spikes survive.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

#: points per line on the page: a minimum and a maximum per pixel of a ~1000 px plot area
MAX_PLOT_POINTS = 2000

#: y-axis number formats (both backends): money/price = thousands separators
AXIS_FORMATS = ("money", "price", "percent", "ratio", "count", "leverage")


@dataclass
class Trace:
    """One drawn series.

    ``x``: datetime64 values (time charts) or numbers (leverage charts); ``y``: numbers,
    NaN = gap. ``kind``: 'line', 'markers', 'lines+markers', 'area' (filled to 0) or
    'band' (filled between ``base`` below and ``y`` above: an interval or percentile range).
    ``marker``: 'circle', 'triangle-up', 'triangle-down', 'x', 'circle-open'.
    ``hover``: one text per point (plain text, shown on hover), or None.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    kind: str = "line"
    color: str | None = None
    marker: str = "circle"
    size: float = 7.0
    width: float = 1.2
    dash: bool = False
    hover: list | None = None
    legend: bool = True
    base: np.ndarray | None = None   # lower edge of a 'band'
    opacity: float = 0.25            # fill opacity of a 'band' or 'area'


@dataclass
class HLine:
    """A horizontal reference line across a panel (e.g. the liquidation level 1.0)."""

    y: float
    label: str
    color: str = "grey"
    dash: bool = True


@dataclass
class Panel:
    """One plot area: its traces, y label, scale ('linear', 'log', 'symlog') and format."""

    y_label: str
    traces: list = field(default_factory=list)
    scale: str = "linear"
    y_format: str = "ratio"
    lines: list = field(default_factory=list)
    weight: float = 1.0          # relative height
    y_range: tuple | None = None


@dataclass
class Chart:
    """Stacked panels sharing one x axis ('time' or 'leverage')."""

    chart_id: str
    title: str
    panels: list
    x_kind: str = "time"
    x_label: str = ""
    x_log: bool = False
    height: int = 420            # CSS pixels on the page
    description: str = ""        # alt text of the static image

    @property
    def empty(self) -> bool:
        return not any(panel.traces for panel in self.panels)


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = MAX_PLOT_POINTS):
    """Min/max envelope of ``y`` over equal buckets of ``x``: at most ``max_points`` points.

    Keeps the first and last point; NaNs stay NaN (gaps in the line). Returns (x, y) as is
    when they are already short enough.
    """
    length = len(y)
    if length <= max_points:
        return x, y
    buckets = max_points // 2
    edges = np.linspace(0, length, buckets + 1).astype(np.int64)
    keep = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for start, stop in zip(edges[:-1], edges[1:]):
            chunk = y[start:stop]
            if np.all(np.isnan(chunk)):
                keep.append(start)
                continue
            low, high = start + int(np.nanargmin(chunk)), start + int(np.nanargmax(chunk))
            keep.extend(sorted({low, high}))
    index = np.unique(np.concatenate([[0], keep, [length - 1]]))
    return x[index], y[index]


def line(name, x, y, *, max_points: int = MAX_PLOT_POINTS, **style) -> Trace:
    """A line trace of a long series, downsampled by :func:`downsample`."""
    small_x, small_y = downsample(np.asarray(x), np.asarray(y, dtype=np.float64), max_points)
    return Trace(name=name, x=small_x, y=small_y, **style)


def log_span(panel: Panel) -> float:
    """max / min of a log panel's positive values (1.0 when it has none): with less than a
    decade, both backends label every digit (1-9 x 10^n), else only 1, 2 and 5 x 10^n."""
    values = [np.asarray(trace.y, dtype=np.float64) for trace in panel.traces if len(trace.y)]
    positive = np.concatenate(values) if values else np.empty(0)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    return float(positive.max() / positive.min()) if positive.size else 1.0
