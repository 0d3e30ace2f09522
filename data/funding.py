"""Funding-rate history of perpetual contracts: CSV import and validation.

A funding series is a pandas Series of rates (fractions per funding
interval, 0.0001 = 0.01 %; positive = longs pay shorts) indexed by the UTC
settlement time, named ``rate``, with ``attrs``: ``source`` (file name or
``ccxt <exchange> <symbol>``), ``interval_hours`` (the venue's interval when
the data says it, else the median spacing), ``path`` for files.

CSV formats, detected from the header (any letter case):

================  ===========================================================
format            header
================  ===========================================================
binance           the exchange's bulk-download files:
                  ``calc_time,funding_interval_hours,last_funding_rate``
                  (``calc_time`` epoch milliseconds)
ccxt              ``fetchFundingRateHistory`` rows: ``timestamp,fundingRate``
                  (other columns such as ``datetime``, ``symbol`` ignored)
plain             ``timestamp,rate`` or ``time,rate`` (the shared data's
                  files), ISO-8601 or epoch numbers
================  ===========================================================

Settlement stamps are rounded to the second (Binance's carry 0–47 ms).
Validation: a NaN or non-number rate, unsorted or duplicate times, and a
rate beyond ±5 % per interval (almost surely percent given as a fraction)
are one :class:`DataError` naming the file and line. Nothing is sorted,
dropped or filled.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .csvfile import _read_head, _read_table, _timestamps, _fields
from .errors import DataError

FUNDING_FORMATS = ("binance", "ccxt", "plain")
#: |rate| above this per interval is refused (a percent/fraction unit error)
MAX_ABS_FUNDING_RATE = 0.05
_TIME_COLUMNS = ("calc_time", "timestamp", "time", "datetime", "date", "funding_time",
                 "fundingtime")


def detect_funding_format(header: list[str], source: str) -> str:
    """'binance', 'ccxt' or 'plain' from the lower-cased header fields."""
    if "last_funding_rate" in header and "calc_time" in header:
        return "binance"
    if "fundingrate" in header:
        return "ccxt"
    if "rate" in header and any(name in header for name in _TIME_COLUMNS):
        return "plain"
    raise DataError(f"{source} line 1: not a funding-rate CSV (header {','.join(header)!r}); "
                    "expected calc_time,funding_interval_hours,last_funding_rate (Binance bulk "
                    "files), timestamp,fundingRate (ccxt) or timestamp,rate")


def load_funding_csv(path, format: str | None = None) -> pd.Series:
    """Read a funding-rate CSV (see the module table) into a validated funding series.

    Raises DataError naming the file and the first offending line.
    """
    path = Path(path)
    source = path.name
    if not path.is_file():
        raise DataError(f"{path}: no such funding CSV file")
    head = _read_head(path, 1)
    if not head[0].strip():
        raise DataError(f"{source}: empty file (no header, no data rows)")
    header = _fields(head[0])
    if format is None:
        format = detect_funding_format(header, source)
    elif format not in FUNDING_FORMATS:
        raise DataError(f"{source}: unknown funding format {format!r}; use one of "
                        f"{', '.join(FUNDING_FORMATS)}")
    table = _read_table(path, source)
    if len(table) == 0:
        raise DataError(f"{source}: no data rows (empty data)")
    names = {str(column).strip().lower(): column for column in table.columns}
    time_name = next((name for name in _TIME_COLUMNS if name in names), None)
    rate_name = {"binance": "last_funding_rate", "ccxt": "fundingrate", "plain": "rate"}[format]
    if time_name is None or rate_name not in names:
        raise DataError(f"{source}: a {format} funding file needs a time column and "
                        f"'{rate_name}' (found: {', '.join(map(str, table.columns))})")
    first_line = 2
    stamps = _timestamps(table[names[time_name]], source, first_line, names[time_name])
    rates = _rates(table[names[rate_name]], source, first_line, names[rate_name])
    series = pd.Series(rates, index=pd.DatetimeIndex(stamps).round("s"), name="rate")
    interval_hours = None
    if format == "binance" and "funding_interval_hours" in names:
        hours = pd.to_numeric(table[names["funding_interval_hours"]], errors="coerce")
        if hours.notna().all() and hours.nunique() == 1:
            interval_hours = float(hours.iloc[0])
    return finish_funding(series, source, first_line=first_line,
                          interval_hours=interval_hours, path=str(path))


def _rates(text: pd.Series, source: str, first_line: int, column: str) -> np.ndarray:
    stripped = text.fillna("").astype(str).str.strip()
    values = pd.to_numeric(stripped.where(stripped != "", None), errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if bad.size:
        position = int(bad[0])
        shown = stripped.iloc[position] or "empty"
        raise DataError(f"{source} line {first_line + position} (row {position + 1}): "
                        f"column '{column}' rate {shown!r} is NaN or not a number "
                        "(drop or fix the row; nothing is filled)")
    return values.to_numpy(dtype=np.float64)


def finish_funding(series: pd.Series, source: str, *, first_line: int | None = None,
                   interval_hours: float | None = None, path: str | None = None) -> pd.Series:
    """Validate a funding series (UTC index, rates) and set its attrs; DataError on a bad row."""
    where = (lambda position: f"{source} line {first_line + position} (row {position + 1})"
             if first_line is not None else f"{source} (row {position + 1})")
    if len(series) == 0:
        raise DataError(f"{source}: no funding rates (empty data)")
    index = pd.DatetimeIndex(series.index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    nan = np.flatnonzero(~np.isfinite(values))
    if nan.size:
        raise DataError(f"{where(int(nan[0]))}: rate is NaN (drop or fix the row; nothing is filled)")
    too_large = np.flatnonzero(np.abs(values) > MAX_ABS_FUNDING_RATE)
    if too_large.size:
        position = int(too_large[0])
        raise DataError(f"{where(position)}: rate {float(values[position])!r} is beyond "
                        f"±{MAX_ABS_FUNDING_RATE:g} per interval: almost surely percent where a "
                        "fraction is expected (0.01 % is 0.0001)")
    steps = np.diff(index.asi8)
    back = np.flatnonzero(steps <= 0)
    if back.size:
        position = int(back[0]) + 1
        problem = "duplicate settlement time" if steps[back[0]] == 0 else \
            "settlement times not sorted"
        raise DataError(f"{where(position)}: {problem} {index[position]} "
                        f"(after {index[position - 1]}); nothing is re-sorted silently")
    if interval_hours is None and steps.size:
        interval_hours = float(np.median(np.diff(index.as_unit("s").asi8))) / 3600.0
    result = pd.Series(values, index=pd.DatetimeIndex(index, name="time"), name="rate")
    result.attrs = {"source": source, "interval_hours": interval_hours}
    if path is not None:
        result.attrs["path"] = path
    return result


def load_mark_csv(path, format: str | None = None, **kwargs) -> pd.DataFrame:
    """Mark-price klines (the exchange's kline layout, or any ``load_csv`` format) as OHLCV.

    Mark klines carry no volume (0 in Binance's files); the frame's attrs
    gain ``price = 'mark'``.
    """
    from .csvfile import load_csv
    frame = load_csv(path, format=format, **kwargs)
    frame.attrs["price"] = "mark"
    return frame


#: frame columns that carry the mark price beside the trade OHLCV
MARK_COLUMNS = ("mark_open", "mark_high", "mark_low", "mark_close")


def with_perpetual_data(frame: pd.DataFrame, *, mark: pd.DataFrame | None = None,
                        funding: pd.Series | None = None) -> pd.DataFrame:
    """A copy of an OHLCV frame that carries its perpetual's mark price and funding.

    ``mark``: mark-price OHLC frame; aligned on the frame's timestamps into the
    columns ``mark_open, mark_high, mark_low, mark_close`` (NaN where the mark
    has no bar: the broker then uses the trade price, with one warning).
    ``funding``: a funding series; the settlements from one day before the
    first bar to one day after the last are kept in ``attrs['funding']`` as
    plain data (``times`` in POSIX seconds, ``rates``, ``interval_hours``,
    ``label``), so the frame still pickles and compares cheaply.
    Labels: ``attrs['mark_label']``, ``attrs['funding'].label``.
    """
    result = frame.copy()
    if mark is not None:
        aligned = mark.reindex(result.index)
        for column, name in zip(("open", "high", "low", "close"), MARK_COLUMNS):
            result[name] = aligned[column].to_numpy(dtype=np.float64)
        missing = int(aligned["close"].isna().sum())
        result.attrs["mark_label"] = _label(mark.attrs, "mark price")
        result.attrs["mark_missing_bars"] = missing
    if funding is not None:
        day = pd.Timedelta(days=1)
        kept = funding[(funding.index >= result.index[0] - day) &
                       (funding.index <= result.index[-1] + day)]
        result.attrs["funding"] = {
            "label": _label(funding.attrs, "funding series"),
            "interval_hours": funding.attrs.get("interval_hours"),
            "times": tuple(int(t) for t in kept.index.as_unit("s").asi8),
            "rates": tuple(float(r) for r in kept.to_numpy()),
        }
    return result


def funding_series_from_attrs(attrs: dict) -> pd.Series | None:
    """The funding series ``with_perpetual_data`` stored in a frame's attrs, or None."""
    stored = attrs.get("funding")
    if not stored:
        return None
    index = pd.to_datetime(np.asarray(stored["times"], dtype=np.int64), unit="s", utc=True)
    series = pd.Series(np.asarray(stored["rates"], dtype=np.float64), index=index, name="rate")
    series.attrs = {"source": stored["label"], "interval_hours": stored["interval_hours"]}
    return series


def mark_frame_from_columns(frame: pd.DataFrame) -> pd.DataFrame | None:
    """The mark OHLC (open/high/low/close) from a frame's mark columns, without missing bars."""
    if not all(name in frame.columns for name in MARK_COLUMNS):
        return None
    mark = frame.loc[:, list(MARK_COLUMNS)].dropna()
    mark.columns = ["open", "high", "low", "close"]
    return mark


def _label(attrs: dict, default: str) -> str:
    """Short name of loaded data: the file name, or '<exchange> <symbol>' for ccxt."""
    if attrs.get("path"):
        return Path(attrs["path"]).name
    if attrs.get("exchange") and attrs.get("symbol"):
        return f"ccxt {attrs['exchange']} {attrs['symbol']}"
    return str(attrs.get("source") or default)
