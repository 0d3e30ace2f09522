"""Base class: the per-bar clock every analyzer here keeps."""
from __future__ import annotations

import copy

import backtrader as bt
import numpy as np

from ._common import FloatBuffer, bt_array_to_seconds, seconds_to_datetime64
from .risk_metrics import median_interval


class BarClockAnalyzer(bt.Analyzer):
    """Records the time of every bar; subclasses add their own series.

    All state is created in ``start()`` (a zero-bar run calls ``start`` and
    ``stop`` but never ``next``); the analysis dict is built in ``stop()`` and
    ``get_analysis()`` returns a deep copy of it, so it may be called any
    number of times.
    """

    def start(self):
        # raw backtrader float datetimes; converted to seconds only when summarised
        self._bar_clock = FloatBuffer()
        self._first_feed_clock = FloatBuffer()
        self._analysis = self._summarise()

    def next(self):
        self._bar_clock.append(self.strategy.datetime[0])
        first = self.strategy.datas[0] if self.strategy.datas else None
        if first is not None and len(first):
            stamp = first.datetime[0]
            clock = self._first_feed_clock
            if not len(clock) or clock.last() != stamp:
                clock.append(stamp)

    def stop(self):
        self._analysis = self._summarise()

    def get_analysis(self) -> dict:
        return copy.deepcopy(self._analysis)

    # -- helpers for subclasses -------------------------------------------
    def bar_interval(self) -> float | None:
        """Median spacing in seconds of the first feed's timestamps (None if < 2 bars)."""
        return median_interval(bt_array_to_seconds(self._first_feed_clock.array()))

    def bar_times(self) -> np.ndarray:
        """POSIX seconds of each bar seen (float array)."""
        return bt_array_to_seconds(self._bar_clock.array())

    def last_bar_clock(self) -> float:
        """The latest bar's backtrader float datetime (convert with ``bt_to_seconds``)."""
        return self._bar_clock.last()

    def _time_series(self) -> dict:
        return {"time": seconds_to_datetime64(self.bar_times())}

    def _summarise(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError
