"""The tape's notional kept as position runs, and the summaries made a chunk at a time.

With close lines that keep their values, ``BarTape`` stores no notional a bar:
Σ |size x close| is read back from each feed's runs and close line at stop().
Every analysis and series must be bit-identical to the stored-a-bar notional,
with the default chunks and with chunks of 7 bars cutting through everything.
"""
from __future__ import annotations

import collections

import backtrader as bt
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from backtrader_leverage.analyzers import (LiquidationAnalyzer, MarginAnalyzer,
                                           NegativeBalanceAnalyzer, RiskAnalyzer)
from backtrader_leverage.analyzers import _base
from backtrader_leverage.analyzers._common import median_of_counts
from backtrader_leverage.broker import MarginBroker
from backtrader_leverage.data import ArrayFeed, load_csv

from _bars import Reversals


def _run(shared_data, broker_class):
    cerebro = bt.Cerebro(stdstats=False)
    # ETH starts two weeks after BTC: not started, then its close index lags the clock
    for name, start in (("BTCUSDT", "2021-04-15"), ("ETHUSDT", "2021-05-01")):
        frame = load_csv(shared_data / f"binance_um_{name}_1h.csv").loc[start:"2021-06-15"]
        cerebro.adddata(ArrayFeed(dataname=frame, name=name))
    if broker_class is MarginBroker:
        cerebro.broker = MarginBroker(cash=10_000, leverage=20, tiers="binance_btcusdt_perp",
                                      funding_rates=0.0003)
    else:
        cerebro.broker = bt.brokers.BackBroker(cash=10_000)
    cerebro.broker.setcommission(commission=0.0004)
    cerebro.addstrategy(Reversals, exposure=8.0)     # 4x the value on each feed
    results, tape, _strategy = run_analyzed(cerebro)
    return results, tape


def run_analyzed(cerebro, extra=()):
    """Run ``cerebro`` with the four analyzers (and ``extra`` (name, class) pairs): (each
    analyzer's (analysis, series as bytes), the strategy's BarTape, the strategy)."""
    for name, analyzer in (("liq", LiquidationAnalyzer), ("margin", MarginAnalyzer),
                           ("neg", NegativeBalanceAnalyzer), ("risk", RiskAnalyzer), *extra):
        cerebro.addanalyzer(analyzer, _name=name)
    strategy = cerebro.run()[0]
    results = {}
    for name, analyzer in strategy.analyzers.getitems():
        series = analyzer.series() if hasattr(analyzer, "series") else {}
        results[name] = (analyzer.get_analysis(), _flat_bytes(series))
    return results, strategy.__dict__[_base._TAPE_ATTRIBUTE], strategy


def _flat_bytes(series: dict) -> dict:
    flat = {}
    for key, value in series.items():
        for name, array in (value.items() if isinstance(value, dict) else [(None, value)]):
            flat[(key, name)] = np.asarray(array).tobytes()
    return flat


def test_notional_runs_equal_the_notional_stored_a_bar(shared_data, monkeypatch):
    for broker_class in (MarginBroker, bt.brokers.BackBroker):
        runs, tape = _run(shared_data, broker_class)
        # a short run: the value is stored a bar (runs of it: test_value_runs)
        assert tape.notional_runs is not None and tape.value_runs is None
        assert len(tape.rows) == tape.bars + 1
        # a run a fill or so, not a value a bar
        assert sum(len(r.starts) for r in tape.notional_runs) < tape.bars / 10
        with monkeypatch.context() as patch:
            patch.setattr(_base, "_keeps_its_values", lambda data, close_line: False)
            stored, stored_tape = _run(shared_data, broker_class)
        assert stored_tape.notional_runs is None and stored_tape.value_runs is None
        assert len(stored_tape.rows) == 2 * (tape.bars + 1)
        assert runs == stored
        with monkeypatch.context() as patch:
            patch.setattr(_base, "CHUNK_BARS", 7)
            chunked, _ = _run(shared_data, broker_class)
        assert chunked == runs
        risk = runs["risk"][0]
        assert risk["mean_effective_leverage"] > 1 and 0 < risk["exposure_fraction"] < 1
        if broker_class is MarginBroker:
            assert runs["margin"][0]["margin_calls"] and runs["liq"][0]["count"]


@settings(deadline=None, max_examples=300)
@given(st.lists(st.sampled_from([60.0, 300.0, 3600.0, 7200.0, 0.5, 86400.0, 1e-3]),
                min_size=1, max_size=60))
def test_median_of_counts_is_numpys_median(values):
    # one middle value, or the mean of two: 60 and 3600 -> (60 + 3600) / 2 = 1830
    assert median_of_counts(collections.Counter(values)) == float(np.median(values))


def test_median_of_counts_by_hand():
    assert median_of_counts({60.0: 3, 3600.0: 1}) == 60.0
    assert median_of_counts({60.0: 2, 3600.0: 2}) == (60.0 + 3600.0) / 2 == 1830.0
    assert median_of_counts({5.0: 1}) == 5.0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # returns off a near-zero value
@settings(deadline=None, max_examples=60)
@given(st.lists(st.floats(-50.0, 200.0), min_size=2, max_size=3000),
       st.sampled_from([60.0, 3600.0, 86400.0, None]), st.integers(128, 600))
def test_lazy_stamps_give_the_array_stamps_summary(values, interval, chunk):
    # risk_summary reads LazyStamps a chunk, or a few, at a time: the same dict as the array
    from backtrader_leverage.analyzers import risk_metrics
    equity = np.array([100.0, *values])
    stamps = 1.6e9 + np.cumsum(np.full(equity.size, interval or 3600.0))
    lazy = risk_metrics.LazyStamps(stamps.size, lambda indices: stamps[indices])
    old_chunk = risk_metrics.CHUNK_BARS
    risk_metrics.CHUNK_BARS = chunk
    try:
        expected = risk_metrics.risk_summary(equity, stamps, interval)
        assert repr(risk_metrics.risk_summary(equity, lambda: lazy, interval)) == repr(expected)
        assert repr(risk_metrics.risk_summary(equity, lazy, interval)) == repr(expected)
        # the equity curve made where it is read (a margin broker's value runs), too
        lazy_equity = risk_metrics.LazyValues(equity.size, lambda indices: equity[indices])
        assert repr(risk_metrics.risk_summary(lazy_equity, lazy, interval)) == repr(expected)
    finally:
        risk_metrics.CHUNK_BARS = old_chunk


def test_lazy_stamps_index_like_an_array():
    from backtrader_leverage.analyzers.risk_metrics import LazyStamps
    stamps = np.arange(10.0) * 60.0
    lazy = LazyStamps(10, lambda indices: stamps[indices])
    assert lazy[3] == 180.0 and lazy[-1] == 540.0 and lazy.size == len(lazy) == 10
    assert lazy[2:5].tolist() == [120.0, 180.0, 240.0]
    assert lazy[np.array([0, 9, -2])].tolist() == [0.0, 540.0, 480.0]
    assert lazy.prefix(4)[-1] == 180.0
    with pytest.raises(IndexError):
        lazy[10]


class _Clock:
    """A stand-in for the tape's first-feed clock column (a view and a length)."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.float64)

    def view(self):
        return self.values

    def __len__(self):
        return self.values.size


@settings(deadline=None, max_examples=200)
@given(st.lists(st.sampled_from([60.0, 3600.0, 3600.0, 3600.0, 7200.0, 86400.0, 0.0, -60.0]),
                min_size=0, max_size=80), st.integers(2, 9))
def test_the_bar_interval_counted_a_chunk_at_a_time_is_numpys_median(steps, chunk):
    # spacings mostly one hour with gaps, repeats and a stamp going back, read in chunks of
    # 2..9 stamps: the same interval as median_interval over the whole column
    from backtrader_leverage.analyzers._common import bt_array_to_seconds
    from backtrader_leverage.analyzers.risk_metrics import median_interval
    days = 738000.0 + np.concatenate(([0.0], np.cumsum(steps))) / 86400.0
    tape = _base.BarTape.__new__(_base.BarTape)
    tape.first_clock, tape._summaries, tape._time_follows_bars = _Clock(days), {}, False
    expected = median_interval(bt_array_to_seconds(days))
    old_chunk = _base.CHUNK_BARS
    _base.CHUNK_BARS = chunk
    try:
        assert tape.bar_interval() == expected
    finally:
        _base.CHUNK_BARS = old_chunk
