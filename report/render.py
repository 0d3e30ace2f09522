"""Render the risk report: an output folder's contents -> one self-contained HTML text.

Nothing here runs a backtest or touches the file system besides reading the templates:
the input is exactly what the output folder holds (``metrics.json``, ``series.npz``,
``summary.json``, ``liquidations.csv``, ``trades.csv``; see :mod:`backtest.results`), so
``run_backtest.py report DIR`` rebuilds the same page. The page loads nothing from the
network: plotly.js is embedded once in its head (or, with ``static=True``, the charts are
base64 PNG and the page has no script at all). The Jinja2 environment autoescapes,
because symbols, file names and strategy params come from users.

The page is a list of sections (:mod:`report.sections`), each drawn by the generic partial
template ``section.html.j2`` or by its own (``Section.template``, rendered with
``Section.context`` and ``format_value``).
"""
from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined

from .format import COLUMNS, Column, format_value, strategy_label  # noqa: F401  (public names)
from .sections import ChartBlock, ReportData, build_sections

TEMPLATE = "template.html.j2"


def report_title(rows: list) -> str:
    """'<strategy> on <symbol> <interval> · <source>, real data · <start> → <end>'.

    Synthetic data reads 'SYNTHETIC data' alone (its source is 'synthetic' already).
    """
    identity = rows[0] if rows else {}
    kind = "SYNTHETIC data" if identity.get("synthetic") else f"{identity.get('source')}, real data"
    start, end = _day(identity.get("data_start")), _day(identity.get("data_end"))
    return (f"{strategy_label(identity)} on {identity.get('symbol')} "
            f"{identity.get('interval')} · {kind} · {start} → {end}")


def render_report(rows: list, bundle: dict, summary: dict | None = None,
                  liquidations: list | None = None, trades: list | None = None, *,
                  static: bool = False) -> str:
    """HTML text of the report.

    ``rows``: metrics rows; ``bundle``: the ``series.npz`` arrays; ``summary``: the
    ``summary.json`` dict (None: computed from the rows, without bisection);
    ``liquidations`` / ``trades``: the rows of ``liquidations.csv`` / ``trades.csv``
    (dicts with a ``setting`` index); ``static``: PNG charts instead of plotly.
    """
    from ..backtest.results import split_bundle
    from ..backtest.safe_leverage import safe_leverage_summary

    price, per_row = split_bundle(bundle, rows)
    report = ReportData(rows=rows, price=price, per_row=per_row, bundle=bundle,
                        summary=summary if summary is not None else safe_leverage_summary(rows),
                        liquidations=list(liquidations or []), trades=list(trades or []),
                        static=static)
    sections = build_sections(report)
    drawn = 0
    environment = _environment()
    for section in sections:
        if section.template:               # a section with its own partial template
            section.rendered = environment.get_template(section.template).render(
                format_value=format_value, **section.context)
        for block in section.blocks:
            if isinstance(block, ChartBlock) and not block.chart.empty:
                block.rendered = _draw(block.chart, static)
                drawn += 1
    template = environment.get_template(TEMPLATE)
    return template.render(title=report_title(rows), identity=report.identity,
                           sections=sections, static=static,
                           plotly_js=None if static or not drawn else _plotly_js())


def _draw(chart, static: bool) -> str:
    if static:
        from .static import chart_png
        return chart_png(chart)
    from .interactive import chart_html
    return chart_html(chart)


def _plotly_js() -> str:
    from .interactive import plotly_js
    return plotly_js()


def _environment() -> Environment:
    return Environment(loader=PackageLoader(__package__, "."), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _day(iso_text) -> str:
    return str(iso_text)[:16].replace("T", " ") if iso_text else "?"
