"""The HTML risk report (rendering only): ``render_report(rows, series_bundle) -> str``."""
from .render import COLUMNS, format_value, render_report, report_title

__all__ = ["render_report", "report_title", "format_value", "COLUMNS"]
