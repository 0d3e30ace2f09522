"""RiskAnalyzer: return against risk, from the account's equity curve."""
from __future__ import annotations

import math

import numpy as np

from ._base import BarClockAnalyzer
from ._common import bt_array_to_seconds
from .risk_metrics import (DEFAULT_RUIN_THRESHOLD, LazyStamps, drawdown_series, finite_or_none,
                           risk_summary)


class RiskAnalyzer(BarClockAnalyzer):
    """What was the risk for the return?

    The equity curve is the broker value at ``start()`` (the starting cash),
    then ``broker.getvalue()`` after each bar. The bar interval is the median
    spacing of the first feed's timestamps; the year has 365 days. The math
    lives in :mod:`analyzers.risk_metrics` (see its docstring for every
    formula and the ruin rule: the first bar with equity <= 0 ends the series
    used for the ratios, max_drawdown = 1, cagr = -1, ruined = true).

    Params:
      - ``ruin_threshold`` (default 0.10): ``ruined`` is true once the equity
        falls below this fraction of the starting value (or reaches 0).

    ``get_analysis()`` returns (fractions, seconds, quote currency, naive-UTC
    ISO dates; None when undefined)::

        {
          "total_return",            # final / start - 1 (< -1 possible in debt)
          "cagr",                    # per 365-day year; -1 when ruined
          "volatility",              # annualised std of bar returns
          "sharpe", "sortino",       # annualised, risk-free 0
          "calmar",                  # cagr / max_drawdown
          "max_drawdown",            # positive fraction, 1 when ruined
          "max_drawdown_start",      # the peak's bar (start value: one interval
                                     # before the first bar)
          "max_drawdown_trough", "max_drawdown_recovery",   # recovery None if not
          "longest_time_under_water",  # seconds, peak to recovery (or last bar)
          "var_95", "cvar_95", "var_99", "cvar_99",   # daily returns, < 0 for losses
          "exposure_time",           # seconds with any position open
          "exposure_fraction",       # share of bars with a position
          "mean_effective_leverage", "max_effective_leverage",  # Σ|notional| / value
          "ruined", "ruin_dt", "ruin_threshold",
          "bankrupt_dt",             # first bar with equity <= 0
          "start_value", "end_value", "lowest_value",   # quote currency
          "bars", "bar_interval", "periods_per_year", "years",
          "daily_returns",           # count of daily returns behind VaR/CVaR
        }

    ``series()`` returns numpy arrays, one entry per bar: ``time``
    (datetime64[ms]), ``equity`` (value at the close), ``drawdown`` (positive
    fraction of the running peak, which includes the start value; 1 in debt),
    ``effective_leverage`` (NaN when flat); plus ``start_value`` (float).
    """

    params = (("ruin_threshold", DEFAULT_RUIN_THRESHOLD),)

    def start(self):
        self._start_value = float(self.strategy.broker.getvalue())
        super().start()

    def _equity_curve(self) -> tuple[np.ndarray, np.ndarray, float | None]:
        """(equity with the start value first, its stamps, interval): new arrays."""
        interval = self.bar_interval()
        return np.array(self._equity_values()), self._stamps(interval), interval

    def _equity_values(self) -> np.ndarray:
        """The start value, then the value after each bar: the tape's own buffer when it
        starts with this analyzer's start value (a view: no copy of every bar), else a copy."""
        tape = self._tape
        if tape.start_value == self._start_value:
            return tape.equity_curve()
        values = self.equity()
        equity = np.empty(values.size + 1)
        equity[0] = self._start_value
        equity[1:] = values
        return equity

    def _stamps(self, interval: float | None) -> np.ndarray:
        """POSIX seconds of the equity curve: one interval before the first bar, then each bar."""
        clocks = self.bar_clocks()
        times = np.empty(clocks.size + 1)
        bt_array_to_seconds(clocks, out=times[1:])    # written in place, no temporaries
        times[0] = times[1] - (interval or 0.0) if clocks.size else math.nan
        return times

    def _lazy_stamps(self, interval: float | None) -> LazyStamps:
        """:meth:`_stamps`, made only where they are read (the same values)."""
        def stamps_at(indices: np.ndarray) -> np.ndarray:
            clocks = self.bar_clocks()
            out = np.empty(indices.size)
            on_bar = indices >= 1
            out[on_bar] = bt_array_to_seconds(clocks[indices[on_bar] - 1])
            if not on_bar.all():    # the start value's stamp: one interval before bar 0
                out[~on_bar] = bt_array_to_seconds(clocks[:1])[0] - (interval or 0.0) \
                    if clocks.size else math.nan
            return out

        return LazyStamps(len(self.bar_clocks()) + 1, stamps_at)

    def _summarise(self) -> dict:
        interval = self.bar_interval()
        # the stamps are made where risk_summary reads them, a chunk or a few at a time:
        # not an array of every bar's at stop() (issue 15)
        summary = risk_summary(self._equity_values(), self._lazy_stamps(interval), interval,
                               ruin_threshold=self.p.ruin_threshold)
        leverage = self.leverage_summary()
        bars, exposed_bars = leverage["bars"], leverage["exposed_bars"]
        summary.update({
            "exposure_time": float(exposed_bars * interval) if interval is not None
            else (0.0 if exposed_bars == 0 else None),
            "exposure_fraction": exposed_bars / bars if bars else None,
            "mean_effective_leverage": finite_or_none(leverage["mean"]),
            "max_effective_leverage": finite_or_none(leverage["max"]),
        })
        return summary

    def series(self) -> dict:
        """Per-bar arrays (see the class docstring)."""
        equity, _, _ = self._equity_curve()
        out = self._time_series()
        out["equity"] = equity[1:]
        out["drawdown"] = drawdown_series(equity)[1:]
        out["effective_leverage"] = self.effective_leverage()
        out["start_value"] = self._start_value
        return out
