"""BarTape's usual recorder (a closure with the configuration's branches settled) records
what the general method records, and hands over to it when the strategy's clock does
not go on by one a bar.

Real BTCUSDT hourly bars (2021-05-10 .. 2021-05-25, the May 2021 crash), a 20x
MarginBroker with tiers and funding, a long then a short of 1 BTC: fills, funding
payments, a liquidation.
"""
import types

import backtrader as bt
import numpy as np

from backtrader_leverage.analyzers import _base
from backtrader_leverage.broker import MarginBroker
from backtrader_leverage.data import load_csv

from test_analyzers_support import ANALYZERS, analyses, run

PLAN = {2: [("buy", 1.0, 0)], 150: [("close", None, 0)], 151: [("sell", 1.0, 0)]}
EXTRA_CALL_BAR = 100


def _feed(shared_data):
    frame = load_csv(shared_data / "binance_um_BTCUSDT_1h.csv").loc["2021-05-10":"2021-05-25"]
    return bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=60)


def _run(shared_data, hooks=None):
    broker = MarginBroker(cash=10_000, leverage=20, tiers="binance_btcusdt_perp",
                          funding_rates=0.0003)
    strategy = run([_feed(shared_data)], broker=broker, plan=PLAN, hooks=hooks)
    tape = _base.BarTape.of(strategy)
    margin, risk = strategy.analyzers.margin, strategy.analyzers.risk
    return strategy, tape, analyses(strategy), margin.series(), risk.bar_clocks().copy()


def _general_only(monkeypatch):
    # a broker whose reads are not BackBroker's takes the general method from the first bar
    monkeypatch.setattr(_base, "_keeps_backbroker_reads", lambda broker: False)


def _same(first, second):
    *_, analyses_a, series_a, clocks_a = first
    *_, analyses_b, series_b, clocks_b = second
    assert analyses_a == analyses_b
    assert clocks_a.tobytes() == clocks_b.tobytes()
    assert series_a["effective_leverage"].tobytes() == series_b["effective_leverage"].tobytes()
    for key in ("margin_ratio", "distance"):
        for name in series_a[key]:
            assert series_a[key][name].tobytes() == series_b[key][name].tobytes()


def test_the_usual_recorder_records_what_the_general_method_does(shared_data, monkeypatch):
    usual = _run(shared_data)
    strategy, tape, found, _series, clocks = usual
    assert found["liquidation"]["count"] == 1 and tape.bars == len(strategy) == len(clocks)
    assert "record" in vars(tape) and not isinstance(tape.record, types.MethodType)
    _general_only(monkeypatch)
    general = _run(shared_data)
    assert isinstance(general[1].record, types.MethodType)
    _same(usual, general)


def extra_analyzer_call(strategy):
    """The analyzers' bar call one more time in this bar: the next call sees the clock's
    index one behind the tape's bars (what a strategy ticking without its clock moving
    on would give)."""
    strategy._next_analyzers(-1)


def test_a_clock_that_does_not_move_on_hands_over_to_the_general_method(shared_data,
                                                                         monkeypatch):
    hooks = {EXTRA_CALL_BAR: extra_analyzer_call}
    usual = _run(shared_data, hooks)
    strategy, tape, _found, _series, clocks = usual
    # one bar more than the strategy's: bar 100 twice
    assert tape.bars == len(strategy) + 1 == len(clocks)
    assert clocks[EXTRA_CALL_BAR] == clocks[EXTRA_CALL_BAR + 1]
    assert np.all(np.diff(np.delete(clocks, EXTRA_CALL_BAR)) > 0)
    assert isinstance(tape.record, types.MethodType) and not tape._time_follows_bars
    _general_only(monkeypatch)
    _same(usual, _run(shared_data, hooks))
