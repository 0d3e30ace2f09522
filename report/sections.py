"""The sections of the report page, in order: one builder function per section.

A builder takes the page's :class:`ReportData` and returns a :class:`Section` (or a list of
them, or None to leave it out). A section is a title and a list of blocks, drawn by the
one template ``section.html.j2``:

* :class:`Paragraph` -- a line of text (``css``: 'headline', 'note', 'warning', 'error');
* :class:`Facts` -- label/value pairs;
* :class:`Table` -- columns and rows of already formatted cells;
* :class:`ChartBlock` -- a :class:`~report.charts.Chart` (plotly on the page, PNG with
  ``--static``).

Adding a section: write ``def my_section(report) -> Section | None`` here (its chart in
:mod:`report.figures`), and put it in :data:`SECTION_BUILDERS` where it belongs on the
page. A section that needs its own markup names a partial template instead of blocks
(``Section(..., template="my_part.html.j2", context={...})``, see ``margin_modes_section``).
Blocks that belong to each leverage go in :data:`SETTING_BLOCK_BUILDERS`
(``def my_blocks(report, index) -> list``). All text is autoescaped by the template.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .charts import Chart
from .figures import equity_overlay_chart, outcome_chart, setting_chart
from .funding import funding_section
from .format import (COLUMN_GROUPS, LIQUIDATION_COLUMNS, TRADE_COLUMNS, cell, format_value,
                     json_dict, na_text, strategy_label)

#: rows shown in a per-setting event table; the CSV files hold them all
MAX_TABLE_ROWS = 100
#: longer event tables start folded (click the caption to open)
OPEN_TABLE_ROWS = 12


@dataclass
class ReportData:
    """Everything a section may draw on (what the output folder holds)."""

    rows: list
    price: dict                      # {"time": int64 ns, "close": float, "feed_names": [...],
                                     #  "close_by_feed": float (feeds x bars)}
    per_row: list                    # per row: {"equity", "drawdown", ...} arrays or None
    bundle: dict                     # the whole series.npz, for sections with their own arrays
    summary: dict                    # summary.json
    liquidations: list               # liquidations.csv rows (dicts), every setting
    trades: list                     # trades.csv rows (dicts), every setting
    static: bool = False

    @property
    def identity(self) -> dict:
        return dict(self.rows[0]) if self.rows else {}

    @property
    def cash(self) -> float:
        return float(self.identity.get("cash") or 1.0)

    @property
    def is_sweep(self) -> bool:
        return len(self.rows) > 1

    @property
    def feed_names(self) -> list:
        return list(self.price.get("feed_names") or [""])

    @property
    def several_feeds(self) -> bool:
        return len(self.feed_names) > 1

    @property
    def several_modes(self) -> bool:
        return len({row.get("margin_mode") or "isolated" for row in self.rows}) > 1

    def label(self, index: int) -> str:
        """'5x', or '5x cross' when the rows mix margin modes."""
        row = self.rows[index]
        text = format_value(row.get("leverage"), "leverage")
        return f"{text} {row.get('margin_mode') or 'isolated'}" if self.several_modes else text

    def liquidations_of(self, index: int) -> list:
        return [event for event in self.liquidations if event.get("setting") == index]

    def trades_of(self, index: int) -> list:
        return [trade for trade in self.trades if trade.get("setting") == index]


@dataclass
class Paragraph:
    text: str
    css: str = ""
    kind: str = "paragraph"


@dataclass
class Facts:
    items: list                      # [(label, value text)]
    kind: str = "facts"


@dataclass
class Table:
    headers: list                    # [(key, label)]
    rows: list                       # [{"cells": [{"key", "text", "value", "css"}], "css", "attrs"}]
    caption: str = ""
    css: str = ""
    note: str = ""
    kind: str = "table"
    collapsed: bool = False          # drawn folded (<details>) with the caption as its summary


@dataclass
class ChartBlock:
    chart: Chart
    kind: str = "chart"
    rendered: str = ""           # set by the renderer: plotly div+script, or base64 PNG


@dataclass
class Section:
    """A titled part of the page: blocks for the generic partial, or its own ``template``
    (a file in report/, rendered with ``context`` and ``format_value``; it writes its own
    ``<section id=...>``)."""

    section_id: str
    title: str
    blocks: list = field(default_factory=list)
    css: str = ""
    attrs: dict = field(default_factory=dict)
    template: str | None = None
    context: dict = field(default_factory=dict)
    rendered: str = ""           # set by the renderer for sections with a template


# -- the sections ----------------------------------------------------------------------------
def headline_section(report: ReportData) -> Section:
    """The one-minute answer: safe leverage, best CAGR, where liquidations start."""
    blocks = [Paragraph(report.summary.get("headline") or "", css="headline")]
    for note in report.summary.get("notes") or []:
        blocks.append(Paragraph(note, css="note"))
    return Section("headline", "In one minute", blocks)


def summary_section(report: ReportData) -> Section:
    """The table by leverage, in two groups (returns; liquidation risk)."""
    blocks = []
    for group_id, caption, columns in COLUMN_GROUPS:
        present = [column for column in columns
                   if (not column.optional or any(row.get(column.key) not in (None, 0, 0.0)
                                                  for row in report.rows))
                   and (column.key != "liquidations_by_feed" or report.several_feeds)]
        rows = []
        for number, row in enumerate(report.rows):
            css = "failed" if row.get("error") else "rejected" if row.get("all_orders_rejected") \
                else "ruined" if row.get("ruined") else ""
            cells = [cell(row, column) for column in present]
            if report.several_modes:
                cells[0]["text"] = cells[0]["text"].replace(
                    format_value(row.get("leverage"), "leverage"), report.label(number), 1)
            rows.append({"cells": cells, "css": css, "attrs": {"data-row": str(number)}})
        blocks.append(Table(headers=[(column.key, column.label) for column in present],
                            rows=rows, caption=caption, css=f"metrics {group_id}"))
    blocks.append(Paragraph(
        "Returns and drawdowns in percent; CAGR, volatility and ratios on a 365-day year, "
        "risk-free rate 0; n/a gives the reason (ruined; window shorter than 30 days for "
        "CAGR and Calmar; fewer than 30 daily returns for Sharpe, Sortino and VaR). Money in "
        "quote currency. Margin lost is the isolated margin gone in liquidations, the "
        "clearance fee included (not added to it). Deficit = loss beyond the bankruptcy "
        "price. Worst margin ratio = maintenance margin / position equity at its highest "
        "(1 = liquidation); closest distance = how near the price came to the liquidation "
        "price. Grey rows never traded (every order refused) and are never 'best'.",
        css="note"))
    return Section("summary", "Summary by leverage", blocks)


def refusals_section(report: ReportData) -> Section | None:
    """Entries the risk sizer refused (stop at or beyond the liquidation price), per setting."""
    from ..sizers import row_refusal_summary

    lines = [(number, row_refusal_summary(row)) for number, row in enumerate(report.rows)]
    lines = [(number, text) for number, text in lines if text]
    if not lines:
        return None
    blocks = [Paragraph(f"{report.label(number)}: {text}" if report.several_modes else text,
                        css="warning") for number, text in lines]
    blocks.append(Paragraph(
        "sizer=risk gives an entry size 0 when its stop lies at or beyond the position's "
        "liquidation price: the exchange would liquidate before the stop could fill. A signal "
        "that lasts several bars counts once. Lower the leverage or tighten the stop.",
        css="note"))
    return Section("refusals", "Entries refused by the sizer", blocks)


def margin_modes_section(report: ReportData) -> Section | None:
    """Isolated vs cross per leverage (sweeps run with --margin-mode isolated,cross)."""
    from ..backtest.compare import mode_comparison

    entries = mode_comparison(report.rows)
    if not entries:
        return None
    entries = [dict(entry, leverage_text=format_value(entry["leverage"], "leverage"))
               for entry in entries]
    return Section("margin-modes", "Isolated vs cross margin", template="margin_modes.html.j2",
                   context={"margin_modes": entries})


def data_section(report: ReportData) -> Section:
    from ..backtest.exposure import exposure_note

    identity = report.identity
    margin = (f"tier table {identity.get('tiers')}" if identity.get("tiers")
              else f"{format_value(identity.get('maintenance_margin_rate'), 'percent')} of notional")
    fee_rate = identity.get("liquidation_fee_rate")
    items = [
        ("symbol", str(identity.get("symbol"))),
        ("source", f"{identity.get('source')} "
                   f"({'SYNTHETIC' if identity.get('synthetic') else 'real market data'})"),
        ("range (UTC)", f"{_day(identity.get('data_start'))} → {_day(identity.get('data_end'))} "
                        f"({identity.get('bars')} bars of {identity.get('interval')})"),
        ("strategy", f"{strategy_label(identity)} {_params(identity.get('strategy_params'))}"),
    ]
    if identity.get("strategy_class"):
        items.append(("strategy class", f"{identity.get('strategy_class')} in "
                                        f"{identity.get('strategy_file') or '?'}"))
    items.append(("exposure", exposure_note(report.rows)))
    if report.several_feeds:
        items.append(("feeds", _feed_leverages(identity, report.feed_names)))
    items += [
        ("starting cash", format_value(identity.get("cash"), "money")),
        ("taker fee", f"{format_value(identity.get('commission'), 'percent')} of notional"),
        ("maintenance margin", margin),
        ("liquidation fee", format_value(fee_rate, "percent") + " of notional"
         if fee_rate is not None else "exchange style (the remaining isolated margin)"),
        ("negative balance", str(identity.get("negative_balance"))),
        ("funding", str(identity.get("funding") or "funding not modelled")),
        ("liquidation trigger", str(identity.get("trigger_price") or "trade price")),
    ]
    return Section("data", "Data and settings", [Facts(items)])


def outcome_section(report: ReportData) -> Section | None:
    if not report.is_sweep:
        return None
    return Section("outcome", "Leverage vs outcome", [ChartBlock(outcome_chart(report))])


def equity_section(report: ReportData) -> Section | None:
    if not report.is_sweep or not any(series is not None for series in report.per_row):
        return None
    return Section("equity", "Equity of every leverage", [ChartBlock(equity_overlay_chart(report))])


def setting_sections(report: ReportData) -> list:
    sections = []
    for index, row in enumerate(report.rows):
        title = f"Leverage {report.label(index)}"
        section = Section(f"setting-{index}", title, css="setting",
                          attrs={"data-leverage": json.dumps(row.get("leverage"))})
        if row.get("error"):
            section.blocks.append(Paragraph(f"This setting failed: {row['error']}", css="error"))
        elif report.per_row[index] is None:
            section.blocks.append(Paragraph("No series stored for this setting.", css="error"))
        else:
            for builder in SETTING_BLOCK_BUILDERS:
                section.blocks.extend(builder(report, index))
        sections.append(section)
    return sections


# -- blocks of one setting ---------------------------------------------------------------------
def setting_status_blocks(report: ReportData, index: int) -> list:
    row = report.rows[index]
    if row.get("all_orders_rejected"):
        return [Paragraph(f"Never traded: every order was refused "
                          f"({_rejections(row)}). Not a safe leverage, just an untested one.",
                          css="warning")]
    return []


def setting_chart_blocks(report: ReportData, index: int) -> list:
    return [ChartBlock(setting_chart(report, index))]


def liquidation_table_blocks(report: ReportData, index: int) -> list:
    events = report.liquidations_of(index)
    if not events:
        return [Paragraph("No liquidation.", css="note")]
    return [_event_table(events, LIQUIDATION_COLUMNS, f"Liquidations ({len(events)})",
                         "liquidations", "liquidations.csv")]


def trade_table_blocks(report: ReportData, index: int) -> list:
    trades = report.trades_of(index)
    if not trades:
        return [Paragraph("No trade.", css="note")]
    return [_event_table(trades, TRADE_COLUMNS, f"Trades ({len(trades)})", "trades", "trades.csv")]


def _event_table(records, columns, caption, css, file_name) -> Table:
    shown = records[:MAX_TABLE_ROWS]
    rows = [{"cells": [cell(record, column) for column in columns], "css": "", "attrs": {}}
            for record in shown]
    note = (f"First {MAX_TABLE_ROWS} of {len(records)}; all of them are in {file_name}."
            if len(records) > MAX_TABLE_ROWS else "")
    return Table(headers=[(column.key, column.label) for column in columns], rows=rows,
                 caption=caption, css=f"events {css}", note=note,
                 collapsed=len(records) > OPEN_TABLE_ROWS)


#: per-setting blocks, in page order
SETTING_BLOCK_BUILDERS = [setting_status_blocks, setting_chart_blocks, liquidation_table_blocks,
                          trade_table_blocks]

#: the page's sections, in order
SECTION_BUILDERS = [headline_section, summary_section, refusals_section, margin_modes_section,
                    data_section, funding_section, outcome_section, equity_section,
                    setting_sections]


def build_sections(report: ReportData) -> list:
    """Every section of the page, in :data:`SECTION_BUILDERS` order."""
    sections = []
    for builder in SECTION_BUILDERS:
        made = builder(report)
        if made is None:
            continue
        sections.extend(made if isinstance(made, list) else [made])
    return sections


def _day(iso_text) -> str:
    return str(iso_text)[:16].replace("T", " ") if iso_text else "?"


def _feed_leverages(identity: dict, names: list) -> str:
    """'BTC (the swept leverage), ETH (leverage 3x)': each feed, in order, with its leverage."""
    overrides = json_dict(identity.get("feed_leverage"))
    return ", ".join(f"{name} (leverage {format_value(overrides[name], 'leverage')})"
                     if name in overrides else f"{name} (the swept leverage)" for name in names)


def _params(text) -> str:
    try:
        params = json.loads(text or "{}")
    except (TypeError, ValueError):
        return str(text)
    return ", ".join(f"{key}={value}" for key, value in params.items()) or "(default params)"


def _rejections(row) -> str:
    try:
        reasons = json.loads(row.get("rejections") or "{}")
    except (TypeError, ValueError):
        reasons = {}
    return ", ".join(f"{count} by {reason}" for reason, count in sorted(reasons.items())) \
        or f"{row.get('orders_rejected')} orders"


__all__ = ["ReportData", "Section", "Paragraph", "Facts", "Table", "ChartBlock",
           "SECTION_BUILDERS", "SETTING_BLOCK_BUILDERS", "build_sections", "na_text"]
