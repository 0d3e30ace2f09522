"""The HTML risk report (rendering only): ``render_report(rows, series_bundle, ...) -> str``.

The page is built from sections (:mod:`report.sections`), charts are backend-neutral specs
(:mod:`report.charts`, built in :mod:`report.figures`) drawn by plotly
(:mod:`report.interactive`) or, with ``static=True``, matplotlib (:mod:`report.static`).
"""
from .format import COLUMNS, format_value
from .render import render_report, report_title

__all__ = ["render_report", "report_title", "format_value", "COLUMNS"]
