"""Validation of OHLCV frames at the boundary, and the missing-bar report.

A frame is valid when it has a UTC ``DatetimeIndex`` that is strictly
increasing, float columns ``open high low close volume`` with no NaN and no
infinity, prices > 0 and at most ``MAX_PRICE`` (beyond, margin arithmetic
overflows to inf), volume >= 0, ``high >= max(open, close)`` and
``low <= min(open, close)``.
The first violation raises one :class:`DataError` naming the source (file
name or ``yfinance BTC-USD 1h``), the file line when known, the data row
(1-based) and its timestamp.  Nothing is sorted, dropped or filled.

Crypto trades 24/7, so a gap between bars is missing data: it is counted and
reported (one warning and ``frame.attrs``), never filled.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import DataError, DataGapWarning
from .intervals import _index_unit_to_ns

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
# Quote per base. No traded asset comes near it (BTC in Indonesian rupiah is ~1e9);
# notional × leverage × a few bars of a 1e308 price overflows a float64 to inf.
MAX_PRICE = 1e15


def describe_row(frame: pd.DataFrame, position: int, source: str,
                 first_line: int | None = None) -> str:
    """Where a data row is: ``'file.csv line 7 (row 5, 2020-01-01 04:00:00+00:00)'``.

    ``position`` is the 0-based row position in ``frame``; ``first_line`` is
    the 1-based file line of the first data row (None when not from a file).
    """
    where = source
    if first_line is not None:
        where += f" line {first_line + position}"
    stamp = frame.index[position] if isinstance(frame.index, pd.DatetimeIndex) else None
    stamp_text = f", {stamp}" if stamp is not None and not pd.isna(stamp) else ""
    return f"{where} (row {position + 1}{stamp_text})"


def _first_true(mask: np.ndarray) -> int | None:
    """Position of the first True in a boolean array, or None."""
    positions = np.flatnonzero(mask)
    return int(positions[0]) if positions.size else None


def check_columns(columns, source: str) -> None:
    """Raise DataError naming the first missing OHLCV column."""
    present = [str(column) for column in columns]
    for column in OHLCV_COLUMNS:
        if column not in present:
            raise DataError(f"{source}: missing column '{column}' "
                            f"(found: {', '.join(present) or 'none'}); "
                            f"need {', '.join(OHLCV_COLUMNS)}")


def validate_ohlcv(frame: pd.DataFrame, source: str, first_line: int | None = None) -> None:
    """Check every rule in the module docstring; raise DataError on the first failure.

    Parameters
    ----------
    frame : DataFrame with a DatetimeIndex and columns open, high, low, close, volume
        (prices in quote currency, volume in base units).
    source : name used in messages (file name, or e.g. ``yfinance BTC-USD 1h``).
    first_line : 1-based file line of the first data row, to name lines in messages.
    """
    check_columns(frame.columns, source)
    if len(frame) == 0:
        raise DataError(f"{source}: no data rows (empty data)")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DataError(f"{source}: index is not a DatetimeIndex ({type(frame.index).__name__})")
    if frame.index.tz is None or str(frame.index.tz) != "UTC":
        raise DataError(f"{source}: index must be tz-aware UTC, got tz={frame.index.tz}")

    not_a_time = _first_true(np.asarray(frame.index.isna()))
    if not_a_time is not None:
        raise DataError(f"{describe_row(frame, not_a_time, source, first_line)}: missing timestamp")

    values = {column: frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
              for column in OHLCV_COLUMNS}
    _check_nan(frame, values, source, first_line)
    _check_finite(frame, values, source, first_line)
    _check_signs(frame, values, source, first_line)
    _check_high_low(frame, values, source, first_line)
    _check_order(frame, source, first_line)


def _check_nan(frame, values, source, first_line) -> None:
    """First row with a NaN in any OHLCV column."""
    first = None
    for column in OHLCV_COLUMNS:
        position = _first_true(np.isnan(values[column]))
        if position is not None and (first is None or position < first[0]):
            first = (position, column)
    if first is not None:
        position, column = first
        raise DataError(f"{describe_row(frame, position, source, first_line)}: "
                        f"NaN in column '{column}' (drop or fix the row; nothing is filled)")


def _first_offence(values, columns, is_bad):
    """(row position, column) of the earliest row where ``is_bad(column, array)``, or None."""
    first = None
    for column in columns:
        position = _first_true(is_bad(column, values[column]))
        if position is not None and (first is None or position < first[0]):
            first = (position, column)
    return first


def _check_finite(frame, values, source, first_line) -> None:
    """No +inf or -inf in any OHLCV column."""
    first = _first_offence(values, OHLCV_COLUMNS, lambda column, array: np.isinf(array))
    if first is not None:
        position, column = first
        raise DataError(f"{describe_row(frame, position, source, first_line)}: "
                        f"{column} is {float(values[column][position])!r} (not a finite number; "
                        "drop or fix the row)")


def _check_signs(frame, values, source, first_line) -> None:
    """Prices must be in (0, MAX_PRICE] and volume >= 0; report the earliest offending row."""
    first = _first_offence(
        values, PRICE_COLUMNS + ("volume",),
        lambda column, array: array < 0 if column == "volume" else
        (array <= 0) | (array > MAX_PRICE))
    if first is not None:
        position, column = first
        value = float(values[column][position])
        rule = ("volume must be >= 0" if column == "volume" else
                "prices must be > 0" if value <= 0 else
                f"prices must be at most {MAX_PRICE:g} quote per base; check the file's units")
        raise DataError(f"{describe_row(frame, position, source, first_line)}: "
                        f"{column} is {value!r} ({rule})")


def _check_high_low(frame, values, source, first_line) -> None:
    """high >= max(open, close) and low <= min(open, close) on every row."""
    body_top = np.maximum(values["open"], values["close"])
    body_bottom = np.minimum(values["open"], values["close"])
    high_below = _first_true(values["high"] < body_top)
    low_above = _first_true(values["low"] > body_bottom)
    if high_below is not None and (low_above is None or high_below <= low_above):
        raise DataError(f"{describe_row(frame, high_below, source, first_line)}: "
                        f"high {float(values['high'][high_below])!r} < max(open, close) "
                        f"{float(body_top[high_below])!r}")
    if low_above is not None:
        raise DataError(f"{describe_row(frame, low_above, source, first_line)}: "
                        f"low {float(values['low'][low_above])!r} > min(open, close) "
                        f"{float(body_bottom[low_above])!r}")


def _check_order(frame, source, first_line) -> None:
    """Timestamps strictly increasing: report the first duplicate or step back."""
    stamps = frame.index.asi8
    steps = np.diff(stamps)
    position = _first_true(steps <= 0)
    if position is None:
        return
    row = position + 1
    previous, current = frame.index[position], frame.index[row]
    if steps[position] == 0:
        raise DataError(f"{describe_row(frame, row, source, first_line)}: duplicate timestamp "
                        f"{current} (same as the row before)")
    raise DataError(f"{describe_row(frame, row, source, first_line)}: timestamps not sorted "
                    f"({current} comes after {previous}); nothing is re-sorted silently")


@dataclass(frozen=True)
class GapReport:
    """Missing bars of a 24/7 series.

    missing_bars : number of absent bars (a step of k intervals misses k - 1 bars).
    gap_count : number of steps longer than one interval.
    largest_gap_seconds : longest step between two consecutive bar timestamps, in
        seconds, counted only when it misses at least one bar (0.0 without gaps).
        A 34 h step between hourly bars misses 33 bars.
    largest_gap_start : timestamp of the last bar before that step, or None.
    """
    missing_bars: int
    gap_count: int
    largest_gap_seconds: float
    largest_gap_start: pd.Timestamp | None

    def as_attrs(self) -> dict:
        """The gap figures as the frame.attrs keys of ``data.frames`` (JSON-ready)."""
        return {
            "missing_bars": self.missing_bars,
            "gap_count": self.gap_count,
            "largest_gap": self.largest_gap_seconds,
            "largest_gap_start": (self.largest_gap_start.isoformat()
                                  if self.largest_gap_start is not None else None),
        }


def gap_report(index: pd.DatetimeIndex, interval_seconds: float | None) -> GapReport:
    """Count missing bars between consecutive timestamps of a sorted index.

    A step of ``d`` seconds between bars with interval ``i`` misses
    ``round(d / i) - 1`` bars.  Calendar intervals (``interval_seconds`` None)
    are not checked and report no gaps.
    """
    if interval_seconds is None or len(index) < 2:
        return GapReport(0, 0, 0.0, None)
    steps_seconds = np.diff(index.asi8).astype(np.float64) * _index_unit_to_ns(index) / 1e9
    missing_per_step = np.maximum(np.rint(steps_seconds / interval_seconds) - 1, 0)
    gap_positions = np.flatnonzero(missing_per_step > 0)
    if gap_positions.size == 0:
        return GapReport(0, 0, 0.0, None)
    largest = int(gap_positions[np.argmax(steps_seconds[gap_positions])])
    return GapReport(
        missing_bars=int(missing_per_step.sum()),
        gap_count=int(gap_positions.size),
        largest_gap_seconds=float(steps_seconds[largest]),
        largest_gap_start=index[largest],
    )


def warn_about_gaps(report: GapReport, source: str, interval: str) -> None:
    """One warning line when bars are missing (nothing is filled)."""
    if report.missing_bars == 0:
        return
    hours = report.largest_gap_seconds / 3600
    warnings.warn(
        f"{source}: {report.missing_bars} missing {interval} bars in {report.gap_count} gaps, "
        f"largest {hours:g} h after the bar at {report.largest_gap_start} "
        "(not filled; see frame.attrs)",
        DataGapWarning, stacklevel=3)
