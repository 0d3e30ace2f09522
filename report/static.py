"""Draw a :class:`~report.charts.Chart` with matplotlib as base64 PNG (``--static`` pages).

Uses the non-interactive Agg canvas directly (no pyplot, no display, no global state), so
rendering works in worker processes and on headless machines. The layout rules are the
interactive page's: the legend above the panels, plain thousands-separated numbers.
"""
from __future__ import annotations

import base64
import io

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .charts import Chart, Panel, log_span

matplotlib.use("Agg")

DPI = 90
WIDTH_INCHES = 11.0
PX_PER_INCH = 96.0
MARKERS = {"circle": "o", "triangle-up": "^", "triangle-down": "v", "x": "x",
           "circle-open": "o"}


def chart_png(chart: Chart) -> str:
    """``chart`` as base64 PNG text."""
    panels = chart.panels
    height = max(2.6, chart.height / PX_PER_INCH)
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False,
                           gridspec_kw={"height_ratios": [panel.weight for panel in panels]})[:, 0]
    handles, labels = [], []
    for axis, panel in zip(axes, panels):
        _draw_panel(axis, chart, panel)
        for handle, label in zip(*axis.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if chart.x_kind == "leverage":
        if chart.x_log:
            axes[-1].set_xscale("log")
        grid = sorted({float(value) for panel in panels for trace in panel.traces
                       for value in np.asarray(trace.x, dtype=np.float64)})
        if grid:  # ticks at the grid's leverages, labelled '5x'
            axes[-1].set_xticks(grid)
        axes[-1].xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
        axes[-1].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[-1].set_xlabel(chart.x_label)
    # the page's heading names the chart; a title is kept only as the figure's alt text
    top = 1.0
    if handles:  # one legend above the panels: never over the data
        columns = min(len(labels), 6)
        rows = -(-len(labels) // columns)
        top = 1.0 - (0.08 + 0.22 * rows) / height
        figure.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.01, 0.995),
                      ncol=columns, fontsize=8, frameon=False)
    figure.align_ylabels(axes)
    figure.tight_layout(rect=(0, 0, 1, top))
    return _png_base64(figure)


def _png_base64(figure: Figure) -> str:
    """A matplotlib figure as base64 PNG text (for sections that draw their own figures)."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _draw_panel(axis, chart: Chart, panel: Panel) -> None:
    for trace in panel.traces:
        x = np.asarray(trace.x)
        if chart.x_kind == "time":
            x = x.astype("datetime64[ns]")
        y = np.asarray(trace.y, dtype=np.float64)
        marker = MARKERS.get(trace.marker, "o")
        face = "none" if trace.marker == "circle-open" else trace.color
        if trace.kind == "band":
            axis.fill_between(x, np.asarray(trace.base, dtype=np.float64), y, color=trace.color,
                              alpha=trace.opacity, lw=0,
                              label=trace.name if trace.legend else None)
        elif trace.kind == "area":
            axis.fill_between(x, y, 0, color=trace.color, alpha=0.35, lw=0, label=trace.name)
        elif trace.kind == "markers":
            axis.scatter(x, y, marker=marker, s=(0.7 * trace.size) ** 2, color=trace.color,
                         facecolors=face, zorder=3, label=trace.name if trace.legend else None)
        else:
            axis.plot(x, y, color=trace.color, lw=trace.width, ls="--" if trace.dash else "-",
                      marker=marker if trace.kind == "lines+markers" else None, markersize=4,
                      label=trace.name if trace.legend else None)
    for level in panel.lines:
        axis.axhline(level.y, color=level.color, lw=0.8, ls="--" if level.dash else "-",
                     label=level.label)
    if panel.scale == "log":
        axis.set_yscale("log")
        # labels at 1, 2 and 5 x 10^n, as on the page (a narrow range still gets numbers)
        subs = (1.0, 2.0, 5.0) if log_span(panel) >= 10 else tuple(float(d) for d in range(1, 10))
        axis.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=subs))
    elif panel.scale == "symlog":
        axis.set_yscale("symlog", linthresh=1.0)
    if panel.y_range is not None:
        axis.set_ylim(*panel.y_range)
    axis.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_formatter(panel.y_format)))
    axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_ylabel(panel.y_label)
    axis.grid(True, alpha=0.3)


def _formatter(kind: str):
    if kind == "percent":
        return lambda value, _: f"{value * 100:,.0f} %".replace(" ", "\u00a0")
    if kind in ("money", "price"):
        return lambda value, _: f"{value:,.0f}" if abs(value) >= 10 else f"{value:,.2f}"
    if kind == "count":
        return lambda value, _: f"{value:,.0f}"
    return lambda value, _: f"{value:,.2f}"
