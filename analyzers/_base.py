"""Base class: the per-bar clock every analyzer here keeps."""
from __future__ import annotations

import copy

import backtrader as bt
import numpy as np

from ._common import FloatBuffer, data_seconds, seconds_to_datetime64, strategy_seconds
from .risk_metrics import median_interval


class BarClockAnalyzer(bt.Analyzer):
    """Records the time of every bar; subclasses add their own series.

    All state is created in ``start()`` (a zero-bar run calls ``start`` and
    ``stop`` but never ``next``); the analysis dict is built in ``stop()`` and
    ``get_analysis()`` returns a deep copy of it, so it may be called any
    number of times.
    """

    def start(self):
        self._bar_seconds = FloatBuffer()
        self._first_feed_seconds = []
        self._last_first_feed = None
        self._analysis = self._summarise()

    def next(self):
        self._bar_seconds.append(strategy_seconds(self.strategy))
        stamp = data_seconds(self.strategy.datas[0]) if self.strategy.datas else None
        if stamp is not None and stamp != self._last_first_feed:
            self._first_feed_seconds.append(stamp)
            self._last_first_feed = stamp

    def stop(self):
        self._analysis = self._summarise()

    def get_analysis(self) -> dict:
        return copy.deepcopy(self._analysis)

    # -- helpers for subclasses -------------------------------------------
    def bar_interval(self) -> float | None:
        """Median spacing in seconds of the first feed's timestamps (None if < 2 bars)."""
        return median_interval(self._first_feed_seconds)

    def bar_times(self) -> np.ndarray:
        """POSIX seconds of each bar seen (float array)."""
        return self._bar_seconds.array()

    def _time_series(self) -> dict:
        return {"time": seconds_to_datetime64(self.bar_times())}

    def _summarise(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError
