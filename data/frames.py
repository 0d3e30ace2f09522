"""Turning a parsed OHLCV frame into the package's standard result.

The standard frame: UTC ``DatetimeIndex`` named ``datetime``; float64 columns
exactly ``open, high, low, close, volume``; ``frame.attrs`` with

=============== ==========================================================
key             meaning
=============== ==========================================================
symbol          str, ticker or file stem (``BTC-USD``, ``binance_BTCUSDT_1h``)
source          ``'csv'``, ``'yfinance'``, ``'cache'`` or ``'synthetic'``
synthetic       bool, True only for generated demo data
interval        bar label (``'5m'``, ``'1h'``, ``'1d'``); inferred from the
                median spacing for CSV files
missing_bars    int, bars absent between the first and last bar
gap_count       int, number of gaps (steps longer than one interval)
largest_gap     float, seconds between the two bars around the longest gap
                (a 34 h step between hourly bars misses 33 bars); 0.0 without gaps
largest_gap_start  ISO-8601 str, the last bar before that gap, or None
path            str, the CSV file (CSV only) or the cache file when used
=============== ==========================================================
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataError
from .intervals import infer_interval_seconds, interval_seconds, normalize_interval, \
    seconds_to_interval
from .validate import OHLCV_COLUMNS, gap_report, validate_ohlcv, warn_about_gaps


def finalize_frame(frame: pd.DataFrame, *, symbol: str, source: str, label: str,
                   interval: str | None = None, synthetic: bool = False,
                   path: str | None = None, first_line: int | None = None,
                   warn_gaps: bool = True) -> pd.DataFrame:
    """Validate ``frame`` and return the standard frame with its attrs set.

    ``label`` names the data in messages (file name or ``yfinance BTC-USD 1h``);
    ``first_line`` is the file line of the first data row, for messages.
    ``interval`` None means: infer it from the median spacing of the index.
    Raises DataError on the first validation failure; warns once (DataGapWarning)
    when bars are missing.
    """
    validate_ohlcv(frame, label, first_line)
    result = frame.loc[:, list(OHLCV_COLUMNS)].astype("float64")
    result.columns = pd.Index(list(OHLCV_COLUMNS))  # drops names such as yfinance's 'Price'
    result.index = pd.DatetimeIndex(result.index, name="datetime")
    if interval is None:
        spacing = infer_interval_seconds(result.index)
        if spacing is None:
            raise DataError(f"{label}: cannot infer the bar interval from a single row; "
                            "give the interval explicitly (--csv-interval 1h on the command "
                            "line, interval='1h' in load_csv)")
        interval = seconds_to_interval(spacing)
    interval = normalize_interval(interval)
    report = gap_report(result.index, interval_seconds(interval))
    if warn_gaps:
        warn_about_gaps(report, label, interval)
    result.attrs = {
        "symbol": symbol,
        "source": source,
        "synthetic": bool(synthetic),
        "interval": interval,
        **report.as_attrs(),
    }
    if path is not None:
        result.attrs["path"] = str(path)
    return result


def select_range(frame: pd.DataFrame, start=None, end=None, *,
                 label: str | None = None) -> pd.DataFrame:
    """Bars with ``start <= time < end`` (UTC Timestamps or None), attrs kept.

    The gap figures in ``attrs`` (and the one DataGapWarning) are recomputed
    for the slice, so a 2022 window of a file is not reported for a 2018
    outage. ``label`` names the data in the warning.
    """
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= frame.index >= start
    if end is not None:
        keep &= frame.index < end
    result = frame[keep]
    attrs = dict(frame.attrs)
    interval = attrs.get("interval")
    report = gap_report(result.index, interval_seconds(interval) if interval else None)
    warn_about_gaps(report, label or attrs.get("symbol", "data"), interval)
    attrs.update(report.as_attrs())
    result.attrs = attrs
    return result
