"""Matplotlib figures of the risk report, returned as base64-encoded PNG text.

Uses the non-interactive Agg canvas directly (no pyplot, no display, no global state), so
rendering works in worker processes and on headless machines. Long series are reduced to
at most :data:`MAX_PLOT_POINTS` points per line by keeping each bucket's minimum and
maximum, so crashes and liquidation spikes survive the downsampling.
"""
from __future__ import annotations

import base64
import io
import warnings

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

matplotlib.use("Agg")

MAX_PLOT_POINTS = 4000
DPI = 90
WIDTH_INCHES = 11.0


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


def setting_figure(time, close, equity, drawdown, margin_ratio, liquidation_time,
                   liquidation_price, liquidation_side, *, cash: float, title: str) -> str:
    """Four stacked panels on one shared time axis, as base64 PNG.

    1. equity [quote currency]: log scale, or symmetric-log when any equity <= 0;
    2. drawdown [percent of the running peak];
    3. margin ratio (maintenance margin / position equity) with the liquidation line at 1;
    4. close price with liquidations marked at their fill price (v long, ^ short).
    """
    dates = np.asarray(time, dtype="datetime64[ns]")
    figure = Figure(figsize=(WIDTH_INCHES, 9.0), dpi=DPI)
    axes = figure.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.5, 1.5, 2.5]})
    equity_axis, drawdown_axis, margin_axis, price_axis = axes

    equity_axis.plot(*downsample(dates, np.asarray(equity, dtype=np.float64)), lw=0.9)
    equity_axis.axhline(cash, color="grey", lw=0.6, ls="--", label="starting cash")
    if np.nanmin(equity) > 0:
        equity_axis.set_yscale("log")
        equity_axis.set_ylabel("equity (log)")
    else:
        equity_axis.set_yscale("symlog", linthresh=max(cash * 0.01, 1e-9))
        equity_axis.axhline(0, color="black", lw=0.6)
        equity_axis.set_ylabel("equity (symlog)")
    equity_axis.legend(loc="upper left", fontsize=8)
    equity_axis.set_title(title, fontsize=10)

    drawdown_pct = -100.0 * np.asarray(drawdown, dtype=np.float64)
    drawdown_axis.fill_between(*downsample(dates, drawdown_pct), 0, color="tab:red", alpha=0.4,
                               lw=0)
    drawdown_axis.set_ylabel("drawdown %")

    ratio = np.asarray(margin_ratio, dtype=np.float64)
    # markers too: a position held for one bar is a single point between NaNs
    margin_axis.plot(*downsample(dates, ratio), color="tab:purple", lw=0.8, marker=".",
                     markersize=2.5)
    margin_axis.axhline(1.0, color="tab:red", lw=0.8, ls="--", label="liquidation (1.0)")
    margin_axis.set_ylim(0, max(1.1, float(np.nanmax(ratio)) * 1.05 if np.any(ratio > 0) else 1.1))
    margin_axis.set_ylabel("margin ratio")
    margin_axis.legend(loc="upper left", fontsize=8)

    price_axis.plot(*downsample(dates, np.asarray(close, dtype=np.float64)), color="black",
                    lw=0.7)
    events = np.asarray(liquidation_time, dtype="datetime64[ns]")
    sides = np.asarray(liquidation_side)
    prices = np.asarray(liquidation_price, dtype=np.float64)
    for side, marker, color, label in ((1, "v", "tab:red", "long liquidated"),
                                       (-1, "^", "tab:orange", "short liquidated")):
        chosen = sides == side
        if np.any(chosen):
            price_axis.scatter(events[chosen], prices[chosen], marker=marker, color=color,
                               s=40, zorder=3, label=f"{label} ({int(chosen.sum())})")
    price_axis.set_yscale("log")
    price_axis.set_ylabel("close (log)")
    if len(events):
        price_axis.legend(loc="upper left", fontsize=8)
    for axis in axes:
        axis.grid(True, alpha=0.3)
    figure.align_ylabels(axes)
    return _png_base64(figure)


def outcome_figure(leverage, final_value, max_drawdown, liquidations, *, cash: float) -> str:
    """Leverage vs outcome: final equity, max drawdown [%] and liquidation count, as base64 PNG.

    Failed settings (None values) are left out of each panel.
    """
    figure = Figure(figsize=(WIDTH_INCHES, 3.4), dpi=DPI)
    axes = figure.subplots(1, 3)
    panels = ((final_value, "final equity", 1.0), (max_drawdown, "max drawdown %", 100.0),
              (liquidations, "liquidations", 1.0))
    for axis, (values, label, scale) in zip(axes, panels):
        points = [(lev, value * scale) for lev, value in zip(leverage, values) if value is not None]
        if points:
            x, y = zip(*points)
            axis.plot(x, y, marker="o")
        if label == "liquidations":
            axis.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        positive = [lev for lev in leverage if lev]
        if positive and max(positive) / min(positive) >= 10:
            axis.set_xscale("log")
            axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_xlabel("leverage (x)")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    axes[0].axhline(cash, color="grey", lw=0.6, ls="--")
    figure.tight_layout()
    return _png_base64(figure)


def equity_overlay_figure(time, curves, *, cash: float) -> str:
    """Every setting's equity [quote currency] on one time axis, as base64 PNG.

    ``curves`` is a list of (label, equity array). Log scale, or symmetric-log when any
    equity is <= 0; an empty list gives an empty chart.
    """
    dates = np.asarray(time, dtype="datetime64[ns]")
    figure = Figure(figsize=(WIDTH_INCHES, 4.0), dpi=DPI)
    axis = figure.subplots()
    lowest = min((float(np.nanmin(equity)) for _, equity in curves), default=cash)
    for label, equity in curves:
        axis.plot(*downsample(dates, np.asarray(equity, dtype=np.float64)), lw=0.9, label=label)
    axis.axhline(cash, color="grey", lw=0.6, ls="--")
    if lowest > 0:
        axis.set_yscale("log")
    else:
        axis.set_yscale("symlog", linthresh=max(cash * 0.01, 1e-9))
        axis.axhline(0, color="black", lw=0.6)
    axis.set_ylabel("equity")
    axis.grid(True, alpha=0.3)
    if curves:
        axis.legend(loc="upper left", fontsize=8, ncol=min(len(curves), 6))
    figure.tight_layout()
    return _png_base64(figure)


def _png_base64(figure: Figure) -> str:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
