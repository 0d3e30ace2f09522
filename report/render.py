"""Render the risk report: metrics rows + per-bar series -> one self-contained HTML text.

Nothing here runs a backtest or touches the file system besides reading the template:
the input is exactly what ``metrics.json`` and ``series.npz`` hold (see
:mod:`backtest.results`), so ``run_backtest.py report DIR`` rebuilds the same page.
Figures are embedded as base64 PNG; the page loads nothing from the network. The Jinja2
environment autoescapes, because symbols, file names and strategy params come from users.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from .figures import equity_overlay_figure, outcome_figure, setting_figure

TEMPLATE = "template.html.j2"
SECONDS_PER_DAY = 86_400
SECONDS_PER_HOUR = 3_600


@dataclass(frozen=True)
class Column:
    """A column of the summary table: metrics-row key, header and display format."""

    key: str
    label: str
    kind: str  # percent | ratio | money | count | duration | leverage | text


COLUMNS = (
    Column("leverage", "leverage", "leverage"),
    Column("final_value", "final equity", "money"),
    Column("total_return", "return", "percent"),
    Column("cagr", "CAGR", "percent"),
    Column("max_drawdown", "max drawdown", "percent"),
    Column("sharpe", "Sharpe", "ratio"),
    Column("sortino", "Sortino", "ratio"),
    Column("calmar", "Calmar", "ratio"),
    Column("liquidations", "liquidations", "count"),
    Column("margin_lost", "margin lost", "money"),
    Column("deficit", "deficits", "money"),
    Column("time_to_first_liquidation", "time to first liquidation", "duration"),
    Column("error", "error", "text"),
)


def format_value(value, kind: str) -> str:
    """Display text of one table cell; None (undefined or failed) shows as an en dash.

    percent: fraction * 100 with 2 decimals and ' %'; ratio: 2 decimals; money: thousands
    separators, 2 decimals; count: integer; duration: seconds as 'Dd Hh' (or 'Hh Mm' under
    a day); leverage: 'Nx'; text: as is.
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "percent":
        return f"{value * 100:.2f} %"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "count":
        return str(int(value))
    if kind == "leverage":
        return f"{value:g}x"
    if kind == "duration":
        seconds = float(value)
        days, rest = divmod(seconds, SECONDS_PER_DAY)
        if days >= 1:
            return f"{int(days)}d {int(rest // SECONDS_PER_HOUR)}h"
        hours, rest = divmod(seconds, SECONDS_PER_HOUR)
        return f"{int(hours)}h {int(rest // 60)}m"
    return str(value)


def report_title(rows: list) -> str:
    """'<strategy> on <symbol> <interval> · <source>, SYNTHETIC|real data · <start> → <end>'."""
    identity = rows[0] if rows else {}
    kind = "SYNTHETIC data" if identity.get("synthetic") else "real data"
    start, end = _day(identity.get("data_start")), _day(identity.get("data_end"))
    return (f"{identity.get('strategy')} on {identity.get('symbol')} {identity.get('interval')}"
            f" · {identity.get('source')}, {kind} · {start} → {end}")


def render_report(rows: list, bundle: dict) -> str:
    """HTML text of the report for metrics ``rows`` and the ``series.npz`` arrays ``bundle``."""
    from ..backtest.results import split_bundle

    from ..backtest.compare import mode_comparison

    price, per_row = split_bundle(bundle, rows)
    several_modes = len({row.get("margin_mode") for row in rows}) > 1
    identity = dict(rows[0]) if rows else {}
    cash = float(identity.get("cash") or 1.0)
    settings = []
    for row, series in zip(rows, per_row):
        leverage_text = format_value(row.get("leverage"), "leverage")
        if several_modes:
            leverage_text += f" {row.get('margin_mode')}"
        setting = {"leverage": row.get("leverage"), "leverage_text": leverage_text,
                   "error": row.get("error"), "image": None}
        if series is None and not row.get("error"):
            setting["error"] = "no series stored for this setting"
        elif series is not None:
            setting["image"] = setting_figure(
                price["time"], price["close"], series["equity"], series["drawdown"],
                series["margin_ratio"], series["liquidation_time"],
                series["liquidation_price"], series["liquidation_side"], cash=cash,
                title=f"leverage {leverage_text}: equity, drawdown, margin ratio, price")
        settings.append(setting)
    outcome = outcome_figure([row.get("leverage") for row in rows],
                             [row.get("final_value") for row in rows],
                             [row.get("max_drawdown") for row in rows],
                             [row.get("liquidations") for row in rows], cash=cash)
    overlay = equity_overlay_figure(
        price["time"], [(setting["leverage_text"], series["equity"])
                        for setting, series in zip(settings, per_row) if series is not None],
        cash=cash)
    template = _environment().get_template(TEMPLATE)
    return template.render(title=report_title(rows), identity=identity, columns=COLUMNS,
                           table=[_table_row(row) for row in rows], outcome_image=outcome,
                           overlay_image=overlay, settings=settings,
                           margin_modes=_margin_modes(mode_comparison(rows)),
                           format_value=format_value)


def _margin_modes(entries: list) -> list:
    """The isolated-vs-cross entries with their leverage as display text."""
    return [dict(entry, leverage_text=format_value(entry["leverage"], "leverage"))
            for entry in entries]


def _table_row(row: dict) -> dict:
    cells = []
    for column in COLUMNS:
        value = row.get(column.key)
        cells.append({"key": column.key, "text": format_value(value, column.kind),
                      "value": "" if value is None else json.dumps(value) if column.kind != "text"
                      else str(value), "text_cell": column.kind == "text"})
    return {"cells": cells, "failed": bool(row.get("error"))}


def _environment() -> Environment:
    return Environment(loader=PackageLoader(__package__, "."), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _day(iso_text) -> str:
    return str(iso_text)[:16].replace("T", " ") if iso_text else "?"
