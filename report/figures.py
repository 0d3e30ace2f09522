"""The report's charts, one function per chart, each returning a :class:`~report.charts.Chart`.

Every function takes the :class:`~report.sections.ReportData` of the page (rows, series,
event tables) and builds a backend-neutral chart spec; :mod:`report.interactive` (plotly,
the default page) or :mod:`report.static` (matplotlib PNG, ``--static``) draws it.
"""
from __future__ import annotations

import numpy as np

from .charts import MAX_PLOT_POINTS, Chart, HLine, Panel, Trace, downsample, line  # noqa: F401
from .static import DPI, WIDTH_INCHES, _png_base64  # noqa: F401  (matplotlib-drawn sections)

#: colour per setting, in row order (colour-blind-safe Tableau 10)
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")
LONG_LIQUIDATED, SHORT_LIQUIDATED = "#d62728", "#ff7f0e"
ENTRY_COLOR, EXIT_COLOR = "#2ca02c", "#111111"
REJECTED_COLOR = "#9e9e9e"
#: more trade markers than this on one chart are drawn small
CROWDED_MARKERS = 300


def color_of(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def setting_chart(report, index: int) -> Chart:
    """Panels of one setting on one time axis.

    1. equity [quote currency]: log scale, linear once it reaches 0 or below;
    2. drawdown [percent of the running peak, drawn below 0];
    then for each feed (one pair with a single feed):
    3. its margin ratio (maintenance margin / position equity), liquidation line at 1;
    4. its close price with its liquidations (at their fill) and trade entries and exits.
    """
    row, series = report.rows[index], report.per_row[index]
    times = report.price["time"]
    dates = np.asarray(times, dtype="datetime64[ns]")
    equity = np.asarray(series["equity"], dtype=np.float64)
    lowest = float(np.nanmin(equity)) if equity.size else 1.0
    equity_panel = Panel("equity", [line("equity", dates, equity, color=color_of(index))],
                         scale="log" if lowest > 0 else "linear", y_format="money", weight=3,
                         lines=[HLine(report.cash, "starting cash")])
    if lowest <= 0:
        equity_panel.lines.append(HLine(0.0, "zero", color="#000", dash=False))
    drawdown = -np.asarray(series["drawdown"], dtype=np.float64)
    drawdown_panel = Panel("drawdown", [line("drawdown", dates, drawdown, kind="area",
                                             color="#d62728", legend=False)],
                           y_format="percent", weight=1.4)
    panels = [equity_panel, drawdown_panel]
    names = report.feed_names
    several = len(names) > 1
    for number, name in enumerate(names):
        suffix = f" {name}" if several else ""
        ratio = np.asarray(series["margin_ratio_by_feed"][number], dtype=np.float64)
        close = np.asarray(report.price["close_by_feed"][number], dtype=np.float64)
        top = float(np.nanmax(ratio)) if np.any(np.isfinite(ratio)) else 0.0
        panels.append(Panel(f"margin ratio{suffix}",
                            [line(f"margin ratio{suffix}", dates, ratio, color="#7b3fa0",
                                  legend=False)],
                            y_format="ratio", weight=1.4, y_range=(0, max(1.1, top * 1.05)),
                            lines=[HLine(1.0, "liquidation (margin ratio 1)", color="#d62728")]))
        price_panel = Panel(f"price{suffix}", [line(f"close{suffix}", dates, close,
                                                    color="#555555", width=1.0)],
                            scale="log", y_format="price", weight=2.6)
        mine = (lambda record: True) if not several else \
            (lambda record, name=name: record.get("feed") == name)
        price_panel.traces.extend(trade_markers(
            [trade for trade in report.trades_of(index) if mine(trade)]))
        price_panel.traces.extend(liquidation_markers(
            [event for event in report.liquidations_of(index) if mine(event)]))
        panels.append(price_panel)
    leverage = report.label(index)
    prices = "prices of every feed" if several else "price"
    return Chart(chart_id=f"chart-setting-{index}", height=720 + 400 * (len(names) - 1),
                 title=f"{leverage}: equity, drawdown, margin ratio and {prices}",
                 panels=panels,
                 description=f"equity, drawdown, margin ratio and {prices} with liquidations "
                             f"and trades at leverage {leverage}")


def liquidation_markers(events: list) -> list:
    """Marker traces of liquidations at their fill price: long ▼ red, short ▲ orange."""
    traces = []
    for side, marker, color in (("long", "triangle-down", LONG_LIQUIDATED),
                                ("short", "triangle-up", SHORT_LIQUIDATED)):
        chosen = [event for event in events if event.get("side") == side]
        if not chosen:
            continue
        traces.append(Trace(
            name=f"{side} liquidated ({len(chosen)})", kind="markers", marker=marker,
            color=color, size=11,
            x=np.array([_time(event["time"]) for event in chosen], dtype="datetime64[ns]"),
            y=np.array([event["fill_price"] for event in chosen], dtype=np.float64),
            hover=[_liquidation_hover(event) for event in chosen]))
    return traces


def trade_markers(trades: list) -> list:
    """Entry (▲ long / ▼ short, green) and exit (× black) markers of the trade list.

    A reversal's exit is the next trade's entry at the same fill: it is drawn once, as the
    entry. Past :data:`CROWDED_MARKERS` markers they are drawn small.
    """
    if not trades:
        return []
    entries = [trade for trade in trades if trade.get("entry_time")]
    # an exit at the very fill of the next entry (a reversal) is drawn once, as that entry;
    # a liquidation exit is the liquidation marker
    reopened = {(trade.get("feed"), trade["entry_time"]) for trade in entries}
    exits = [trade for trade in trades if trade.get("exit_time")
             and trade.get("exit_reason") != "liquidation"
             and (trade.get("feed"), trade["exit_time"]) not in reopened]
    crowded = len(entries) + len(exits) > CROWDED_MARKERS      # small markers over a dense run
    traces = []
    for side, marker in (("long", "triangle-up"), ("short", "triangle-down")):
        chosen = [trade for trade in entries if trade.get("side") == side]
        if chosen:
            traces.append(Trace(
                name=f"{side} entry ({len(chosen)})", kind="markers", marker=marker,
                color=ENTRY_COLOR, size=5 if crowded else 8,
                x=np.array([_time(trade["entry_time"]) for trade in chosen], dtype="datetime64[ns]"),
                y=np.array([trade["entry_price"] for trade in chosen], dtype=np.float64),
                hover=[_entry_hover(trade) for trade in chosen]))
    if exits:
        traces.append(Trace(
            name=f"exit ({len(exits)})", kind="markers", marker="x", color=EXIT_COLOR,
            size=4 if crowded else 7,
            x=np.array([_time(trade["exit_time"]) for trade in exits], dtype="datetime64[ns]"),
            y=np.array([trade["exit_price"] for trade in exits], dtype=np.float64),
            hover=[_exit_hover(trade) for trade in exits]))
    return traces


def outcome_chart(report) -> Chart:
    """Leverage vs final equity, max drawdown and liquidation count (sweeps only).

    Settings whose every order was refused are grey crosses 'never traded' on the
    baseline, not points of the curve; failed settings are left out.
    """
    traded = [row for row in report.rows if row.get("error") is None
              and not row.get("all_orders_rejected")]
    refused = [row for row in report.rows if row.get("error") is None
               and row.get("all_orders_rejected")]
    panels = []
    for key, label, y_format in (("final_value", "final equity", "money"),
                                 ("max_drawdown", "max drawdown", "percent"),
                                 ("liquidations", "liquidations", "count")):
        points = [(row["leverage"], row[key]) for row in traded if row.get(key) is not None]
        panel = Panel(label, y_format=y_format)
        if points:
            x, y = (np.array(values, dtype=np.float64) for values in zip(*points))
            panel.traces.append(Trace(name=label, x=x, y=y, kind="lines+markers",
                                      color="#4e79a7", legend=False,
                                      hover=[f"{x_:g}x: {_plain(y_, y_format)}"
                                             for x_, y_ in points]))
        if refused:
            panel.traces.append(Trace(
                name="never traded (every order refused)", kind="markers", marker="x",
                color=REJECTED_COLOR, size=10, legend=key == "final_value",
                x=np.array([row["leverage"] for row in refused], dtype=np.float64),
                y=np.zeros(len(refused)) if key != "final_value" else
                np.array([row["cash"] for row in refused], dtype=np.float64),
                hover=[f"{row['leverage']:g}x: never traded, every order refused"
                       for row in refused]))
        if key == "final_value":
            panel.lines.append(HLine(report.cash, "starting cash"))
        panels.append(panel)
    leverages = [row["leverage"] for row in report.rows if row.get("leverage")]
    log_x = bool(leverages) and max(leverages) / min(leverages) >= 10
    return Chart(chart_id="chart-outcome", title="Leverage vs outcome", panels=panels,
                 x_kind="leverage", x_label="leverage", x_log=log_x, height=620,
                 description="final equity, max drawdown and liquidations against leverage")


def equity_overlay_chart(report) -> Chart:
    """Every traded setting's equity on one time axis (sweeps only)."""
    dates = np.asarray(report.price["time"], dtype="datetime64[ns]")
    traces, lowest = [], report.cash
    for index, (row, series) in enumerate(zip(report.rows, report.per_row)):
        if series is None or row.get("all_orders_rejected"):
            continue
        equity = np.asarray(series["equity"], dtype=np.float64)
        lowest = min(lowest, float(np.nanmin(equity)))
        traces.append(line(report.label(index), dates, equity, color=color_of(index)))
    panel = Panel("equity", traces, scale="log" if lowest > 0 else "linear", y_format="money",
                  lines=[HLine(report.cash, "starting cash")])
    return Chart(chart_id="chart-equity", title="Equity of every leverage", panels=[panel],
                 height=440, description="equity of every leverage setting over time")


# -- hover texts -----------------------------------------------------------------------------
def _liquidation_hover(event) -> str:
    return (f"{_day(event['time'])} {event.get('feed', '')} {event['side']} liquidated<br>"
            f"size {event['size']:g} entry {event['entry_price']:,.2f}<br>"
            f"liquidation price {event['liquidation_price']:,.2f}, fill {event['fill_price']:,.2f}"
            f"<br>margin lost {event['margin_lost']:,.2f} (fee {event['fee']:,.2f} of it), "
            f"deficit {event['deficit']:,.2f}")


def _entry_hover(trade) -> str:
    return f"{_day(trade['entry_time'])} {trade['side']} {trade['size']:g} @ {trade['entry_price']:,.2f}"


def _exit_hover(trade) -> str:
    return (f"{_day(trade['exit_time'])} exit ({trade['exit_reason']}) "
            f"@ {trade['exit_price']:,.2f}, pnl {trade['pnl']:,.0f}")


def _plain(value, kind) -> str:
    if kind == "percent":
        return f"{value * 100:,.2f} %"
    if kind == "count":
        return f"{int(value)}"
    return f"{value:,.2f}"


def _leverage(row) -> str:
    return f"{row['leverage']:g}x"


def _time(iso_text) -> np.datetime64:
    return np.datetime64(str(iso_text).replace("Z", "")[:19], "ns")


def _day(iso_text) -> str:
    return str(iso_text)[:16].replace("T", " ")
