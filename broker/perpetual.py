"""Perpetual-contract inputs of ``MarginBroker``: funding schedules and mark prices.

Adapters only (the funding formula is :func:`broker.margin.funding_payment`):

* :class:`FundingSchedule` answers "which funding times, at which rate, fall
  in [start, end)" for one feed: either a constant rate on the UTC grid of
  ``interval_hours`` (00:00, 08:00, 16:00 for 8 h), or a series of rates that
  carries its own settlement times (a venue's 4 h or 1 h intervals included).
* :class:`MarkSource` gives the mark price's OHLC for the bar a feed is on,
  from a frame (open/high/low/close), a Series of closes, or a backtrader feed
  added to cerebro; None where it has no bar (the broker then falls back to
  the trade price, with one :class:`MarkPriceWarning`).

Times are POSIX seconds (UTC) here; prices quote per base unit; rates are
fractions per funding interval.
"""
from __future__ import annotations

import collections
import math
from numbers import Real
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

from . import margin as mm

#: seconds per backtrader day number
SECONDS_PER_DAY = 86_400.0
#: backtrader day number of 1970-01-01 00:00 UTC
_EPOCH_DAY_NUMBER = 719163.0
#: two bar times closer than this (days, about 0.1 s) are the same bar
_SAME_BAR_DAYS = 1e-6
#: rates beyond this per interval are almost surely percent given as a fraction
#: (the same bound as ``data.funding.MAX_ABS_FUNDING_RATE``)
MAX_ABS_FUNDING_RATE = 0.05


class MarkPriceWarning(UserWarning):
    """The mark price has no bar where the trade feed has one: the trade price is used."""


class FundingWarning(UserWarning):
    """An open position was held where the funding rates have no data: nothing was charged."""


class MarkBar(collections.namedtuple("MarkBar", "open high low close")):
    """One bar of the mark price, quote per base unit."""


def day_number_to_seconds(day_number: float) -> int:
    """backtrader float day number -> POSIX seconds (UTC), rounded to the second."""
    return int(round((day_number - _EPOCH_DAY_NUMBER) * SECONDS_PER_DAY))


class FundingSchedule:
    """Funding times and rates of one feed.

    ``FundingSchedule.constant(rate, interval_hours)``: ``rate`` at every
    grid time. ``FundingSchedule.from_series(series)``: the series' own times
    (UTC index) and rates. ``between(start, end)`` lists (time, rate) pairs
    with start <= time < end, in POSIX seconds.
    """

    def __init__(self, times: np.ndarray | None, rates: np.ndarray | None,
                 constant_rate: float | None, interval_hours: float, label: str):
        self._times = times
        self._rates = rates
        self.constant_rate = constant_rate
        self.interval_hours = interval_hours
        self.label = label
        self._grid_step = int(round(interval_hours * 3600))
        if times is None:
            self._cover_low, self._cover_high = -math.inf, math.inf
        else:
            slack = int(interval_hours * 3600)
            self._cover_low = int(times[0]) - slack
            self._cover_high = int(times[-1]) + slack
        self._next_time = (math.inf, -math.inf)   # (from, first time >= from) last answered

    @classmethod
    def constant(cls, rate: float, interval_hours: float) -> "FundingSchedule":
        check_rate(rate, "funding rate")
        if not (isinstance(interval_hours, Real) and interval_hours > 0):
            raise ValueError(f"funding_interval_hours must be > 0, got {interval_hours!r}")
        return cls(None, None, float(rate), float(interval_hours),
                   f"{rate:g} per {interval_hours:g} h")

    @classmethod
    def from_series(cls, series: pd.Series, interval_hours: float,
                    label: str = "funding series") -> "FundingSchedule":
        """Rates indexed by UTC settlement time (naive index = UTC); checked, never sorted."""
        if not isinstance(series.index, pd.DatetimeIndex):
            raise ValueError(f"{label}: funding rates need a DatetimeIndex of settlement times")
        index = series.index if series.index.tz is not None else series.index.tz_localize("UTC")
        times = index.tz_convert("UTC").as_unit("s").asi8.astype(np.int64)
        rates = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        for position, (time, rate) in enumerate(zip(times, rates)):
            if not math.isfinite(rate):
                raise ValueError(f"{label}: rate at {index[position]} is not a number")
            check_rate(rate, f"{label}: rate at {index[position]}")
        steps = np.diff(times)
        if (steps <= 0).any():
            position = int(np.flatnonzero(steps <= 0)[0]) + 1
            raise ValueError(f"{label}: settlement times not strictly increasing at "
                             f"{index[position]}")
        if times.size == 0:
            raise ValueError(f"{label}: no funding rates")
        return cls(times, rates, None, interval_hours,
                   label if label != "funding series" else
                   f"series {index[0]:%Y-%m-%d} -> {index[-1]:%Y-%m-%d}")

    def between(self, start: int, end: int) -> list[tuple[int, float]]:
        """(time, rate) of every funding time in [start, end), POSIX seconds."""
        if self._times is None:
            return [(time, self.constant_rate)
                    for time in mm.funding_times(start, end, self.interval_hours)]
        first, last = np.searchsorted(self._times, [start, end], side="left")
        return [(int(self._times[i]), float(self._rates[i])) for i in range(first, last)]

    def covers(self, start: int, end: int) -> bool:
        """False when [start, end) lies wholly outside the series' data (constant: always True)."""
        return not (end <= self._cover_low or start > self._cover_high)

    def payment_due(self, start: int, end: int) -> bool:
        """Whether the broker has work in [start, end) (POSIX seconds): a funding time in it
        (``between`` not empty), or the window lies wholly outside the series' data (the
        not-covered warning). Asked on every new bar, so one call instead of three."""
        return end > start and (end <= self._cover_low or start > self._cover_high or
                                end > self.first_time_from(start))

    def quiet_until(self, start: int) -> float:
        """The latest end ``q`` such that no window [s, e) with ``start`` <= s < e <= q has
        work (``payment_due`` is False for each), POSIX seconds.

        The first funding time at or after ``start``, capped at the end of the
        series' data; -inf when ``start`` lies before the data (the not-covered
        warning may be due). The broker skips ``payment_due`` on the bars that
        end by then.
        """
        if start < self._cover_low:
            return -math.inf
        return min(self.first_time_from(start), self._cover_high)

    def first_time_from(self, start: int) -> float:
        """The first funding time >= ``start`` (POSIX seconds); ``math.inf`` when none.

        ``between(start, end)`` is empty exactly when ``end <= first_time_from(start)``:
        the broker asks this every bar, and lists the payments only on funding bars.
        """
        if self._times is None:
            step = self._grid_step
            return -(-int(start) // step) * step          # the grid time at or after start
        asked_from, answer = self._next_time
        if asked_from <= start <= answer:                 # no funding time in [asked_from, answer)
            return answer
        position = int(np.searchsorted(self._times, start, side="left"))
        answer = int(self._times[position]) if position < len(self._times) else math.inf
        self._next_time = (start, answer)
        return answer


def check_rate(rate, what: str) -> None:
    """Raise ValueError when ``rate`` is not a finite fraction within ±5 % per interval."""
    if not (isinstance(rate, Real) and math.isfinite(rate)):
        raise ValueError(f"{what} must be a finite number (a fraction, 0.0001 = 0.01 %), "
                         f"got {rate!r}")
    if abs(rate) > MAX_ABS_FUNDING_RATE:
        raise ValueError(f"{what} {rate!r} is beyond ±{MAX_ABS_FUNDING_RATE:g} per interval: "
                         "almost surely percent given where a fraction is expected "
                         "(0.01 % is 0.0001)")


def resolve_funding(rates, interval_hours: float, label: str = "funding_rates"):
    """A FundingSchedule from None (off), a number, a pandas Series, or a funding CSV path."""
    if rates is None:
        return None
    if isinstance(rates, FundingSchedule):
        return rates
    if isinstance(rates, bool):
        raise ValueError(f"{label} must be None, a rate, a Series or a CSV path, got {rates!r}")
    if isinstance(rates, Real):
        return FundingSchedule.constant(float(rates), interval_hours)
    if isinstance(rates, pd.Series):
        return FundingSchedule.from_series(rates, interval_hours)
    if isinstance(rates, (str, Path)):
        from ..data.funding import load_funding_csv
        series = load_funding_csv(rates)
        hours = series.attrs.get("interval_hours") or interval_hours
        return FundingSchedule.from_series(series, hours, label=f"funding file {Path(rates).name}")
    raise ValueError(f"{label} must be None, a rate, a Series or a CSV path, "
                     f"got {type(rates).__name__}")


class MarkSource:
    """The mark price of one trade feed, bar by bar.

    ``bar(data)`` is the mark's OHLC on ``data``'s current bar, or None when
    the mark has no bar at that time.
    """

    def __init__(self, mark, label: str):
        self.label = label
        self._feed = None
        if isinstance(mark, bt.AbstractDataBase):
            self._feed = mark
            return
        if isinstance(mark, pd.DataFrame):
            columns = {str(column).lower(): column for column in mark.columns}
            missing = [name for name in ("open", "high", "low", "close") if name not in columns]
            if missing:
                raise ValueError(f"{label}: mark frame has no column {missing[0]!r} "
                                 "(give open, high, low, close, or a Series of closes)")
            ohlc = np.column_stack([mark[columns[name]].to_numpy(dtype=np.float64)
                                    for name in ("open", "high", "low", "close")])
        elif isinstance(mark, pd.Series):
            close = mark.to_numpy(dtype=np.float64)
            # a close-only mark moves from the previous close to this close
            open_ = np.concatenate([close[:1], close[:-1]])
            ohlc = np.column_stack([open_, np.maximum(open_, close), np.minimum(open_, close),
                                    close])
        else:
            raise ValueError(f"{label}: the mark price must be a DataFrame with open/high/low/"
                             f"close, a Series of closes or a backtrader feed, got "
                             f"{type(mark).__name__}")
        if not isinstance(mark.index, pd.DatetimeIndex):
            raise ValueError(f"{label}: the mark price needs a DatetimeIndex")
        if not np.isfinite(ohlc).all() or (ohlc <= 0).any():
            raise ValueError(f"{label}: mark prices must be finite and > 0")
        from ..data.feed import bt_date_numbers
        index = mark.index if mark.index.tz is not None else mark.index.tz_localize("UTC")
        self._numbers = bt_date_numbers(index)
        if (np.diff(self._numbers) <= 0).any():
            raise ValueError(f"{label}: mark timestamps must be strictly increasing")
        self._ohlc = ohlc

    @property
    def feed(self):
        """The backtrader feed the mark comes from, or None for a frame/Series."""
        return self._feed

    def bar(self, data) -> MarkBar | None:
        """Mark OHLC at ``data``'s current bar time, or None."""
        when = data.datetime[0]
        if self._feed is not None:
            feed = self._feed
            if len(feed) and abs(feed.datetime[0] - when) < _SAME_BAR_DAYS:
                return MarkBar(feed.open[0], feed.high[0], feed.low[0], feed.close[0])
            return None
        position = int(np.searchsorted(self._numbers, when - _SAME_BAR_DAYS))
        if position < len(self._numbers) and abs(self._numbers[position] - when) < _SAME_BAR_DAYS:
            return MarkBar(*self._ohlc[position])
        return None
