"""Bar intervals: parsing labels, inferring them from timestamps, and mapping
them to backtrader timeframes.

Interval labels follow yfinance where it has one (``1m 2m 5m 15m 30m 60m 90m
1h 1d 5d 1wk 1mo 3mo``) and also accept ``s`` (seconds), ``h`` (hours),
``w`` (weeks) multiples such as ``4h`` or ``30s``.  Fixed intervals have a
length in seconds; months have none (calendar months vary).
"""
from __future__ import annotations

import re

import backtrader as bt
import numpy as np
import pandas as pd

from .errors import DataError

SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86400
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY

_INTERVAL_PATTERN = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d|w|wk|mo)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {
    "s": 1, "m": SECONDS_PER_MINUTE, "min": SECONDS_PER_MINUTE, "h": SECONDS_PER_HOUR,
    "d": SECONDS_PER_DAY, "w": SECONDS_PER_WEEK, "wk": SECONDS_PER_WEEK,
}


def _parse(interval: str) -> tuple[int, str]:
    """Split an interval label into (count, unit) with unit lower-cased."""
    match = _INTERVAL_PATTERN.match(str(interval))
    if not match or int(match.group(1)) <= 0:
        raise DataError(f"unknown bar interval {interval!r}: use e.g. 1m, 5m, 15m, 1h, 4h, 1d, 1wk, 1mo")
    return int(match.group(1)), match.group(2).lower()


def interval_seconds(interval: str) -> float | None:
    """Length of one bar in seconds, or None for calendar months (``1mo``, ``3mo``)."""
    count, unit = _parse(interval)
    if unit == "mo":
        return None
    return float(count * _UNIT_SECONDS[unit])


def normalize_interval(interval: str) -> str:
    """Canonical label: ``60m`` -> ``1h``, ``1w``/``1wk`` -> ``1wk``, ``1440m`` -> ``1d``.

    Used for cache file names and ``frame.attrs['interval']``.
    """
    count, unit = _parse(interval)
    if unit == "mo":
        return f"{count}mo"
    return seconds_to_interval(count * _UNIT_SECONDS[unit])


def seconds_to_interval(seconds: float) -> str:
    """Label for a bar length in seconds, using the largest whole unit (3600 -> ``1h``)."""
    seconds = int(round(seconds))
    if seconds <= 0:
        raise DataError(f"bar length must be positive, got {seconds} s")
    if seconds % SECONDS_PER_WEEK == 0:
        return f"{seconds // SECONDS_PER_WEEK}wk"
    for unit_seconds, suffix in ((SECONDS_PER_DAY, "d"), (SECONDS_PER_HOUR, "h"),
                                 (SECONDS_PER_MINUTE, "m"), (1, "s")):
        if seconds % unit_seconds == 0:
            return f"{seconds // unit_seconds}{suffix}"
    raise AssertionError("unreachable: 1 divides every integer")


def infer_interval_seconds(index: pd.DatetimeIndex) -> float | None:
    """Median spacing of consecutive timestamps in seconds (None with < 2 bars).

    The median ignores gaps (missing bars) as long as fewer than half the
    spacings are gaps.
    """
    if len(index) < 2:
        return None
    nanoseconds = np.diff(index.asi8).astype(np.float64) * _index_unit_to_ns(index)
    return float(np.median(nanoseconds)) / 1e9


def _index_unit_to_ns(index: pd.DatetimeIndex) -> float:
    """Nanoseconds per tick of the index's integer representation (pandas 3 may use us)."""
    unit = getattr(index, "unit", "ns")
    return {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}[unit]


def interval_to_timeframe(interval: str) -> tuple[int, int]:
    """backtrader ``(TimeFrame, compression)`` for an interval label.

    ``1h`` -> (Minutes, 60), ``4h`` -> (Minutes, 240), ``5m`` -> (Minutes, 5),
    ``30s`` -> (Seconds, 30), ``1d`` -> (Days, 1), ``1wk`` -> (Weeks, 1),
    ``3mo`` -> (Months, 3).  Whole days map to Days, whole weeks to Weeks.
    """
    count, unit = _parse(interval)
    if unit == "mo":
        return bt.TimeFrame.Months, count
    seconds = count * _UNIT_SECONDS[unit]
    if seconds % SECONDS_PER_WEEK == 0:
        return bt.TimeFrame.Weeks, seconds // SECONDS_PER_WEEK
    if seconds % SECONDS_PER_DAY == 0:
        return bt.TimeFrame.Days, seconds // SECONDS_PER_DAY
    if seconds % SECONDS_PER_MINUTE == 0:
        return bt.TimeFrame.Minutes, seconds // SECONDS_PER_MINUTE
    return bt.TimeFrame.Seconds, seconds
