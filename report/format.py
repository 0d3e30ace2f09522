"""Table columns and cell texts of the report (and of the command line's summaries)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

SECONDS_PER_DAY = 86_400
SECONDS_PER_HOUR = 3_600

#: short forms of the metrics rows' n/a reasons, for table cells (the full one is the tooltip)
SHORT_REASONS = {"window shorter than 30 days": "< 30 days",
                 "fewer than 30 daily returns": "< 30 daily returns"}


@dataclass(frozen=True)
class Column:
    """A table column: record key, header and display format.

    ``kind``: percent | ratio | money | price | size | count | duration | leverage | bool |
    time | text. ``optional`` columns are shown only when some row has a value other than
    None or 0 (funding columns appear once funding is modelled, the error column once a
    setting failed).
    """

    key: str
    label: str
    kind: str
    optional: bool = False


RETURN_COLUMNS = (
    Column("leverage", "leverage", "leverage"),
    Column("final_value", "final equity", "money"),
    Column("total_return", "return", "percent"),
    Column("cagr", "CAGR", "percent"),
    Column("max_drawdown", "max drawdown", "percent"),
    Column("sharpe", "Sharpe", "ratio"),
    Column("sortino", "Sortino", "ratio"),
    Column("calmar", "Calmar", "ratio"),
    Column("var_95", "daily VaR 95", "percent"),
)
RISK_COLUMNS = (
    Column("leverage", "leverage", "leverage"),
    Column("liquidations", "liqui\u00addations", "count"),
    Column("time_to_first_liquidation", "first liquidation after", "duration"),
    Column("margin_lost", "margin lost (fees included)", "money"),
    Column("liquidation_fees", "of which fees", "money"),
    Column("deficit", "deficits", "money"),
    Column("worst_margin_ratio", "worst margin ratio", "percent"),
    Column("closest_distance", "closest to liquidation", "percent"),
    Column("margin_calls", "margin calls", "count"),
    Column("liquidations_by_feed", "liquidations by feed", "feeds", optional=True),
    Column("ruined", "ruined", "bool"),
)
ACTIVITY_COLUMNS = (
    Column("leverage", "leverage", "leverage"),
    Column("trades", "trades", "count"),
    Column("orders_rejected", "orders refused", "count"),
    Column("funding_paid", "funding paid", "money", optional=True),
    Column("funding_payments", "funding payments", "count", optional=True),
    Column("error", "error", "text", optional=True),
)
#: (table id, caption, columns) of the summary tables
COLUMN_GROUPS = (("returns", "Returns", RETURN_COLUMNS),
                 ("risk", "Liquidation risk", RISK_COLUMNS),
                 ("activity", "Trading and funding", ACTIVITY_COLUMNS))
#: every column of the summary tables, once
COLUMNS = tuple({column.key: column for group in COLUMN_GROUPS for column in group[2]}.values())

LIQUIDATION_COLUMNS = (
    Column("time", "time (UTC)", "time"),
    Column("feed", "feed", "text"),
    Column("side", "side", "text"),
    Column("size", "size", "size"),
    Column("entry_price", "entry", "price"),
    Column("liquidation_price", "liquidation price", "price"),
    Column("bankruptcy_price", "bankruptcy price", "price"),
    Column("fill_price", "fill", "price"),
    Column("margin_lost", "margin lost", "money"),
    Column("fee", "of which fee", "money"),
    Column("deficit", "deficit", "money"),
)
TRADE_COLUMNS = (
    Column("entry_time", "entry (UTC)", "time"),
    Column("feed", "feed", "text"),
    Column("side", "side", "text"),
    Column("size", "size", "size"),
    Column("entry_price", "entry price", "price"),
    Column("exit_time", "exit (UTC)", "time"),
    Column("exit_price", "exit price", "price"),
    Column("exit_reason", "exit", "text"),
    Column("pnl", "pnl", "money"),
    Column("fees", "fees", "money"),
    Column("net_pnl", "net pnl", "money"),
)


def format_value(value, kind: str) -> str:
    """Display text of one cell; None (undefined or failed) shows as an en dash.

    percent: fraction * 100 with 2 decimals and ' %' (the page keeps cells on one line, so
    the unit never wraps onto its own line); ratio: 2 decimals; money / price: thousands separators, 2
    decimals; size: up to 6 significant digits; count: integer; duration: seconds as
    'Dd Hh' (or 'Hh Mm' under a day); leverage: 'Nx'; bool: yes/no; time: ISO to
    'YYYY-MM-DD HH:MM'; feeds: JSON text {feed: count} as 'BTC: 2, ETH: 0'; text: as is.
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or value == "":
        return "–"
    if kind == "percent":
        return f"{value * 100:,.2f} %"
    if kind == "ratio":
        return f"{value:,.2f}"
    if kind in ("money", "price"):
        return f"{value:,.2f}"
    if kind == "size":
        return f"{value:,.6g}"
    if kind == "count":
        return f"{int(value):,}"
    if kind == "leverage":
        return f"{value:g}x"
    if kind == "bool":
        return "yes" if value else "no"
    if kind == "time":
        return str(value)[:16].replace("T", " ")
    if kind == "feeds":
        return ", ".join(f"{name}: {count}" for name, count in json_dict(value).items()) or "–"
    if kind == "duration":
        seconds = float(value)
        days, rest = divmod(seconds, SECONDS_PER_DAY)
        if days >= 1:
            return f"{int(days)}d {int(rest // SECONDS_PER_HOUR)}h"
        hours, rest = divmod(seconds, SECONDS_PER_HOUR)
        return f"{int(hours)}h {int(rest // 60)}m"
    return str(value)


def json_dict(text) -> dict:
    """A dict from a row's JSON-text field (``feed_leverage``, ``liquidations_by_feed``);
    {} when it is empty or not a JSON object."""
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def strategy_label(row: dict) -> str:
    """A registered name as is; a user's class as 'MyCross (my_strategies.py)'."""
    spec = str(row.get("strategy"))
    if ":" not in spec:
        return spec
    target, _, class_name = spec.rpartition(":")
    source = row.get("strategy_file")
    name = row.get("strategy_class") or class_name
    where = source.replace("\\", "/").rsplit("/", 1)[-1] if source else target
    return f"{name} ({where})"


def na_text(reason: str) -> str:
    """'n/a (ruined)', 'n/a (< 30 days)': the cell of an undefined ratio."""
    return f"n/a ({SHORT_REASONS.get(reason, reason)})"


def cell(record: dict, column: Column) -> dict:
    """``{"key", "text", "value", "css", "title"}`` of ``record``'s cell in ``column``.

    ``value`` is the raw value as JSON text ('' for None; text columns as is), for machine
    reading; a None with a ``<key>_reason`` beside it reads 'n/a (reason)'.
    """
    value = record.get(column.key)
    reason = record.get(f"{column.key}_reason") if value is None else None
    text = na_text(reason) if reason else format_value(value, column.kind)
    if column.key == "leverage" and record.get("all_orders_rejected"):
        text += " (never traded)"
    css = "text" if column.kind in ("text", "time") else ""
    if reason:
        css = "na"
    elif column.key == "leverage" and record.get("all_orders_rejected"):
        css = "marked"
    raw = "" if value is None else str(value) if column.kind in ("text", "time") \
        else json.dumps(value)
    return {"key": column.key, "text": text, "value": raw, "css": css, "title": reason or ""}
