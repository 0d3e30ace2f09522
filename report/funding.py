"""The report's funding section: what perpetual funding cost at each leverage.

A table (net funding paid, payments, funding as a share of the starting cash) and, when
the output folder holds the per-bar cumulative funding (``series.npz`` key
``<setting>/funding``), a chart of it over time, one line per leverage. With funding off it
says so ("funding not modelled") instead of showing zeros.
"""
from __future__ import annotations

import numpy as np

from .charts import Chart, HLine, Panel, line

FUNDING_OFF = "funding not modelled"


def funding_section(report):
    """Section 'Funding by leverage' (see the module docstring)."""
    from .figures import color_of
    from .format import format_value
    from .sections import ChartBlock, Facts, Paragraph, Section, Table

    identity = report.identity
    funding = identity.get("funding") or FUNDING_OFF
    blocks = [Facts([("funding", funding),
                     ("liquidation trigger", identity.get("trigger_price") or "trade price")])]
    if funding == FUNDING_OFF:
        blocks.append(Paragraph("Funding was not modelled in this run: a perpetual position "
                                "that pays funding every 8 h would have cost more (run with "
                                "--funding-rate 0.0001 or --funding-csv FILE).", css="note"))
        return Section("funding", "Funding by leverage", blocks)
    headers = [("leverage", "leverage"), ("funding_paid", "funding paid (net)"),
               ("funding_payments", "payments"), ("share_of_cash", "of starting cash")]
    rows = []
    for index, row in enumerate(report.rows):
        paid, cash = row.get("funding_paid"), row.get("cash") or report.cash
        cells = [report.label(index), format_value(paid, "money"),
                 format_value(row.get("funding_payments"), "count"),
                 format_value(paid / cash if paid is not None and cash else None, "percent")]
        rows.append({"cells": [{"key": key, "text": text, "value": "", "css": "", "title": ""}
                               for (key, _label), text in zip(headers, cells)],
                     "css": "", "attrs": {}})
    blocks.append(Table(headers=headers, rows=rows, caption="Funding paid per leverage "
                        "(positive = paid, negative = received; quote currency)",
                        css="metrics funding"))
    dates = np.asarray(report.price["time"], dtype="datetime64[ns]")
    traces = []
    for index, row in enumerate(report.rows):
        cumulative = report.bundle.get(f"{index}/funding")
        if cumulative is None or row.get("error"):
            continue
        traces.append(line(report.label(index), dates, np.asarray(cumulative, dtype=np.float64),
                           color=color_of(index)))
    if traces:
        panel = Panel("funding paid", traces, y_format="money", lines=[HLine(0.0, "zero (no funding)")])
        blocks.append(ChartBlock(Chart(chart_id="chart-funding",
                                       title="Cumulative funding paid per leverage",
                                       panels=[panel], height=360,
                                       description="cumulative funding paid over time, one "
                                       "line per leverage")))
    return Section("funding", "Funding by leverage", blocks)
