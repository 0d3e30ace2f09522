"""The report page of a ruin run: probability vs leverage, and equity fans across paths.

Input is exactly what a ruin output folder holds (:func:`backtest.ruin.read_ruin`), so
``run_backtest.py report DIR`` rebuilds the same page. The page is the report's own
skeleton (``template.html.j2``, the generic section partial, plotly or ``static`` PNG
charts) with two sections: the data and settings, and :func:`ruin_section`.
"""
from __future__ import annotations

import json

import numpy as np

from .charts import Chart, HLine, Panel, Trace
from .figures import color_of
from .format import format_value
from .render import TEMPLATE, _draw, _environment, _plotly_js, report_title
from .sections import ChartBlock, Paragraph, ReportData, Section, Table, data_section

LIQUIDATION_COLOR, RUIN_COLOR = "#d62728", "#4e79a7"
#: (lower row, upper row, label, fill opacity) of the percentile array of ``RuinResult.fan``
FAN_BANDS = ((0, 4, "5–95 % of paths", 0.18), (1, 3, "25–75 % of paths", 0.35))
FAN_PANEL_PX = 190
TABLE_COLUMNS = (("leverage", "leverage"), ("paths", "paths"),
                 ("p_liquidation", "P(liquidation) [95 % CI]"), ("p_ruin", "P(ruin) [95 % CI]"),
                 ("final_p05", "final equity p05"), ("final_median", "final equity median"),
                 ("final_p95", "final equity p95"),
                 ("max_drawdown_median", "median max drawdown"))


def probability_chart(rows: list, *, ruin_level: float) -> Chart:
    """P(at least one liquidation) and P(ruin) against leverage, each with its Wilson band."""
    leverage = np.array([row["leverage"] for row in rows], dtype=np.float64)
    traces = []
    for key, label, color, dash in (
            ("p_liquidation", "P(at least one liquidation)", LIQUIDATION_COLOR, False),
            ("p_ruin", f"P(ruin: equity < {ruin_level:g} × start)", RUIN_COLOR, True)):
        band = np.array([row[f"{key}_ci"] for row in rows], dtype=np.float64).reshape(-1, 2)
        traces.append(Trace(f"{label}: Wilson 95 % interval", leverage, band[:, 1],
                            kind="band", base=band[:, 0], color=color, opacity=0.18))
        traces.append(Trace(label, leverage, np.array([row[key] for row in rows]),
                            kind="lines+markers", color=color, dash=dash,
                            marker="circle" if not dash else "x",
                            hover=[f"{row['leverage']:g}x: {_percent_band(row[key], row[f'{key}_ci'])}"
                                   for row in rows]))
    positive = leverage[leverage > 0]
    return Chart(chart_id="chart-ruin-probability", title="Probability vs leverage",
                 panels=[Panel("probability", traces, y_format="percent",
                               y_range=(-0.02, 1.02))],
                 x_kind="leverage", x_label="leverage",
                 x_log=bool(len(positive) and positive.max() / positive.min() >= 10),
                 height=380, description="probability of liquidation and of ruin against "
                 "leverage, with Wilson 95 % bands")


def fan_chart(result) -> Chart:
    """One panel per leverage: equity percentiles across paths over time (fan chart)."""
    dates = np.asarray(result.time, dtype="datetime64[ns]")
    cash = float(result.identity.get("cash") or 1.0)
    fans = result.fan()
    lowest = min((float(np.min(fan)) for fan in fans), default=cash)
    panels = []
    for number, (row, fan) in enumerate(zip(result.rows, fans)):
        color = color_of(number)
        first = number == 0
        traces = [Trace(label, dates, fan[high], kind="band", base=fan[low], color="#4e79a7",
                        opacity=opacity, legend=first)
                  for low, high, label, opacity in FAN_BANDS]
        traces.append(Trace("median", dates, fan[2], color=color, width=1.4, legend=False,
                            hover=[f"{row['leverage']:g}x median {value:,.0f}"
                                   for value in fan[2]]))
        panels.append(Panel(f"{row['leverage']:g}x", traces,
                            scale="log" if lowest > 0 else "linear", y_format="money",
                            lines=[HLine(cash, "starting cash")] if first else []))
    return Chart(chart_id="chart-ruin-fan", title="Equity across paths, per leverage",
                 panels=panels, height=max(300, FAN_PANEL_PX * len(panels)),
                 description="percentiles of equity across the bootstrapped paths over time, "
                 "one panel per leverage")


def ruin_section(result) -> Section:
    """The table, the probability chart and the fan chart of a :class:`RuinResult`."""
    settings = result.settings
    rows = result.rows
    note = (f"{settings['paths']} synthetic paths per leverage, the same paths for every "
            "leverage (common random numbers): a stationary block bootstrap of the data's bars "
            f"(mean block {settings['block_hours']:g} h = {settings['mean_block_bars']:.1f} "
            "bars; close-to-close log returns, each bar's open, high and low kept relative to "
            f"its close), starting at the first real close, seed {settings['seed']}. Ruin = "
            f"equity at a bar's close below {settings['ruin_level']:g} × the starting cash at "
            "any bar. Brackets: Wilson 95 % intervals. Final equity in quote currency.")
    table_rows = []
    for number, row in enumerate(rows):
        texts = {"leverage": format_value(row["leverage"], "leverage"),
                 "paths": str(row["paths"]),
                 "p_liquidation": _percent_band(row["p_liquidation"], row["p_liquidation_ci"]),
                 "p_ruin": _percent_band(row["p_ruin"], row["p_ruin_ci"]),
                 "max_drawdown_median": format_value(row["max_drawdown_median"], "percent")}
        for key in ("final_p05", "final_median", "final_p95"):
            texts[key] = format_value(row[key], "money")
        cells = [{"key": key, "text": texts[key], "value": json.dumps(row[key]), "css": "",
                  "title": ""} for key, _label in TABLE_COLUMNS]
        table_rows.append({"cells": cells, "css": "", "attrs": {"data-row": str(number)}})
    blocks = [Paragraph(note, css="note"),
              Table(headers=list(TABLE_COLUMNS), rows=table_rows, css="ruin"),
              ChartBlock(probability_chart(rows, ruin_level=settings["ruin_level"])),
              ChartBlock(fan_chart(result))]
    return Section("ruin", "Probability of ruin by leverage", blocks)


def render_ruin_report(result, *, static: bool = False) -> str:
    """HTML text of a ruin run's page; ``static``: PNG charts instead of plotly."""
    identity = dict(result.identity)
    if not isinstance(identity.get("strategy_params"), str):
        identity["strategy_params"] = json.dumps(identity.get("strategy_params") or {},
                                                 sort_keys=True)
    page = ReportData(rows=[identity], price={}, per_row=[], bundle={}, summary={},
                      liquidations=[], trades=[], static=static)
    sections = [data_section(page), ruin_section(result)]
    drawn = 0
    for section in sections:
        for block in section.blocks:
            if isinstance(block, ChartBlock) and not block.chart.empty:
                block.rendered = _draw(block.chart, static)
                drawn += 1
    return _environment().get_template(TEMPLATE).render(
        title="Probability of ruin: " + report_title([identity]), identity=identity,
        sections=sections, static=static,
        plotly_js=None if static or not drawn else _plotly_js())


def _percent_band(value, band) -> str:
    return (f"{format_value(value, 'percent')} [{format_value(band[0], 'percent')}, "
            f"{format_value(band[1], 'percent')}]")
