"""The ruin section of the report: probability vs leverage and equity fan charts.

Input is exactly what a ruin output folder holds (:func:`backtest.ruin.read_ruin`), so
``run_backtest.py report DIR`` rebuilds the same page. Figures are base64 PNG from the
Agg canvas (see :mod:`report.figures`); the section is its own template,
``ruin_section.html.j2``, included by the stand-alone page ``ruin.html.j2``.
"""
from __future__ import annotations

import json
import math

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from .figures import DPI, WIDTH_INCHES, _png_base64
from .render import _environment, format_value, report_title

RUIN_TEMPLATE = "ruin.html.j2"
FAN_BANDS = ((0, 4, "5–95 %", 0.18), (1, 3, "25–75 %", 0.35))   # rows of the percentile array
FAN_COLUMNS = 3


def probability_figure(leverage, p_liquidation, liquidation_ci, p_ruin, ruin_ci, *,
                       ruin_level: float) -> str:
    """P(liquidation) and P(ruin) [percent] against leverage with Wilson 95 % bands, as PNG."""
    figure = Figure(figsize=(WIDTH_INCHES, 3.8), dpi=DPI)
    axis = figure.subplots()
    leverage = np.asarray(leverage, dtype=np.float64)
    for values, bands, label, color, style in (
            (p_liquidation, liquidation_ci, "P(at least one liquidation)", "tab:red", "-"),
            (p_ruin, ruin_ci, f"P(ruin: equity < {ruin_level:g} × start)", "tab:blue", "--")):
        values = 100.0 * np.asarray(values, dtype=np.float64)
        bands = 100.0 * np.asarray(bands, dtype=np.float64).reshape(-1, 2)
        axis.fill_between(leverage, bands[:, 0], bands[:, 1], color=color, alpha=0.18, lw=0,
                          label=f"{label}: Wilson 95 % interval")
        axis.plot(leverage, values, marker="o" if style == "-" else "s", ls=style,
                  color=color, label=label, markersize=5 if style == "-" else 3.5)
    _leverage_axis(axis, leverage)
    axis.set_ylim(-2, 102)
    axis.set_ylabel("probability %")
    axis.grid(True, alpha=0.3)
    axis.legend(loc="upper left", fontsize=8, framealpha=0.9)
    figure.tight_layout()
    return _png_base64(figure)


def fan_figure(time, fans, labels, *, cash: float) -> str:
    """One panel per leverage: equity percentiles over time across paths, as PNG.

    ``fans[i]`` is an array (5, checkpoints) of the 5th, 25th, 50th, 75th and 95th
    percentile of closing equity [quote currency] at ``time`` (int64 ns UTC). Log scale,
    or symmetric-log when a percentile reaches 0 or below.
    """
    dates = np.asarray(time, dtype="datetime64[ns]")
    count = max(1, len(fans))
    columns = min(FAN_COLUMNS, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(WIDTH_INCHES, 2.9 * rows), dpi=DPI)
    axes = np.atleast_1d(figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
                         ).ravel()
    lowest = min((float(np.min(fan)) for fan in fans), default=cash)
    for axis, fan, label in zip(axes, fans, labels):
        for low, high, band_label, alpha in FAN_BANDS:
            axis.fill_between(dates, fan[low], fan[high], color="tab:blue", alpha=alpha, lw=0,
                              label=band_label)
        axis.plot(dates, fan[2], color="tab:blue", lw=1.0, label="median")
        axis.axhline(cash, color="grey", lw=0.6, ls="--")
        axis.set_title(label, fontsize=9)
        axis.grid(True, alpha=0.3)
    for axis in axes[len(fans):]:
        axis.set_visible(False)
    for axis in axes[:len(fans)]:
        if lowest > 0:
            axis.set_yscale("log")
        else:
            axis.set_yscale("symlog", linthresh=max(cash * 0.01, 1e-9))
        axis.tick_params(axis="x", labelsize=7, labelrotation=30, labelbottom=True)
    axes[0].legend(loc="upper left", fontsize=7)
    axes[0].set_ylabel("equity")
    figure.tight_layout()
    return _png_base64(figure)


def ruin_section(result) -> dict:
    """Context of ``ruin_section.html.j2`` for a :class:`backtest.ruin.RuinResult`."""
    rows = result.rows
    settings = result.settings
    cash = float(result.identity.get("cash") or 1.0)
    labels = [f"{format_value(row['leverage'], 'leverage')}" for row in rows]
    table = []
    for row, label in zip(rows, labels):
        table.append({
            "leverage": row["leverage"], "leverage_text": label, "paths": row["paths"],
            "p_liquidation": _percent_with_band(row["p_liquidation"], row["p_liquidation_ci"]),
            "p_ruin": _percent_with_band(row["p_ruin"], row["p_ruin_ci"]),
            "final_p05": format_value(row["final_p05"], "money"),
            "final_median": format_value(row["final_median"], "money"),
            "final_p95": format_value(row["final_p95"], "money"),
            "max_drawdown_median": format_value(row["max_drawdown_median"], "percent"),
            "json": json.dumps(row, sort_keys=True),
        })
    return {
        "settings": settings,
        "table": table,
        "probability_image": probability_figure(
            [row["leverage"] for row in rows], [row["p_liquidation"] for row in rows],
            [row["p_liquidation_ci"] for row in rows], [row["p_ruin"] for row in rows],
            [row["p_ruin_ci"] for row in rows], ruin_level=settings["ruin_level"]),
        "fan_image": fan_figure(result.time, result.fan(), labels, cash=cash),
    }


def render_ruin_report(result) -> str:
    """Stand-alone HTML page of a ruin run (data identity and the ruin section)."""
    identity = dict(result.identity)
    identity["strategy_params"] = json.dumps(identity.get("strategy_params") or {},
                                             sort_keys=True)
    title = "Probability of ruin: " + report_title([identity])
    template = _environment().get_template(RUIN_TEMPLATE)
    return template.render(title=title, identity=identity, ruin=ruin_section(result))


def _percent_with_band(value, band) -> str:
    return (f"{format_value(value, 'percent')} [{format_value(band[0], 'percent')}, "
            f"{format_value(band[1], 'percent')}]")


def _leverage_axis(axis, leverage) -> None:
    positive = [value for value in leverage if value > 0]
    if positive and max(positive) / min(positive) >= 10:
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xticks(positive)
    axis.set_xlabel("leverage (x)")
