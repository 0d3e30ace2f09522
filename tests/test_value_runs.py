"""A margin broker's value kept as runs of its state (BarTape + ValueRuns, issue 15).

On long runs the tape keeps no float a bar for ``broker.getvalue()``: it keeps
the wallet and the open positions once a run, checks every bar's value against
the run's prediction, and reads the values back at stop(). Every value, the
equity curve and every analysis must be bit-identical to the value stored a
bar, in each margin mode, with funding, liquidations, a mark price (values the
state cannot give back are stored), deposits, two feeds, and in next mode.
"""
from __future__ import annotations

import array

import backtrader as bt
import numpy as np
import pytest

from backtrader_leverage.analyzers import _base
from backtrader_leverage.analyzers.value_runs import ValueRuns
from backtrader_leverage.broker import MarginBroker
from backtrader_leverage.data import ArrayFeed, load_csv

from _bars import Reversals
from test_bar_tape_chunks import run_analyzed


class EveryValue(bt.Analyzer):
    """``broker.getvalue()`` after each bar, kept a float a bar (the reference)."""

    def start(self):
        self.values = []

    def next(self):
        self.values.append(self.strategy.broker.getvalue())

    def get_analysis(self):
        return {}


class Depositing(Reversals):
    """Reversals that deposits 250 every 100 bars (a cash flow outside fills and funding)."""

    def next(self):
        super().next()
        if len(self) % 100 == 0:
            self.broker.add_cash(250.0)


def _run(shared_data, symbols, margin_mode="isolated", mark=False, runonce=True,
         strategy=Reversals):
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    for symbol in symbols:
        frame = load_csv(shared_data / f"binance_um_{symbol}_1h.csv").loc["2021-04-15":"2021-06-15"]
        cerebro.adddata(ArrayFeed(dataname=frame, name=symbol))
    cerebro.broker = MarginBroker(cash=10_000, leverage=20, tiers="binance_btcusdt_perp",
                                  funding_rates=0.0003, margin_mode=margin_mode)
    cerebro.broker.setcommission(commission=0.0004)
    if mark:
        frame = load_csv(shared_data / "binance_um_BTCUSDT_mark_1h.csv")
        cerebro.broker.set_mark_price(cerebro.datas[0], frame.loc["2021-04-15":"2021-06-15"])
    cerebro.addstrategy(strategy)
    results, tape, strategy = run_analyzed(cerebro, extra=[("every", EveryValue)])
    return results, tape, strategy.analyzers.every.values, cerebro.broker


@pytest.mark.parametrize("symbols, margin_mode, mark, runonce, strategy", [
    (("BTCUSDT",), "isolated", False, True, Reversals),
    (("BTCUSDT", "ETHUSDT"), "isolated", False, True, Reversals),
    (("BTCUSDT", "ETHUSDT"), "cross", False, True, Reversals),
    (("BTCUSDT",), "isolated", True, True, Reversals),
    (("BTCUSDT",), "isolated", False, False, Depositing),
])
def test_value_runs_give_back_every_value(shared_data, monkeypatch, symbols, margin_mode, mark,
                                          runonce, strategy):
    monkeypatch.setattr(_base, "VALUE_RUNS_FROM_BARS", 0)         # runs on this short run too
    runs, tape, values, broker = _run(shared_data, symbols, margin_mode, mark, runonce, strategy)
    value_runs = tape.value_runs
    assert value_runs is not None and len(tape.rows) == 1 and tape.bars == len(values)
    expected = np.array(values, dtype=np.float64)
    assert tape.column("value").tobytes() == expected.tobytes()
    assert np.asarray(tape.equity_curve()).tobytes() == \
        np.concatenate(([tape.start_value], expected)).tobytes()
    for first, stop in tape.chunks(97):
        assert tape.value_chunk(first, stop).tobytes() == expected[first:stop].tobytes()
    if mark:
        # the value is the mark's, not the close's: those bars are stored as they are
        assert len(value_runs.stored) > tape.bars / 2
    else:
        # a run a fill or a funding payment (every 8 h), not a value a bar
        assert value_runs.run_count() < tape.bars / 3 and len(value_runs.stored) == 0
    # and the analyses are the ones of the value stored a bar
    monkeypatch.setattr(_base, "VALUE_RUNS_FROM_BARS", 1 << 40)
    dense, dense_tape, _, _ = _run(shared_data, symbols, margin_mode, mark, runonce, strategy)
    assert dense_tape.value_runs is None and len(dense_tape.rows) == dense_tape.bars + 1
    assert runs == dense
    if not mark and margin_mode == "isolated" and strategy is Reversals:
        assert broker.liquidations and broker.funding_payments      # the case is not trivial


def test_short_runs_store_the_value_a_bar(shared_data):
    # below VALUE_RUNS_FROM_BARS bars, checking each bar's value would cost more than the column
    _, tape, values, _ = _run(shared_data, ("BTCUSDT",))
    assert tape.bars < _base.VALUE_RUNS_FROM_BARS
    assert tape.value_runs is None and tape.column("value").tolist() == values


class _Line:
    def __init__(self, closes):
        self.array = array.array("d", closes)
        self._idx = 0


class _Broker:
    """value_terms() as MarginBroker gives it: (wallet, [(data, margin, side, |size|, entry)])."""

    def __init__(self):
        self.cash, self.terms = 1000.0, []

    def value_terms(self):
        return None if self.terms is None else (self.cash, self.terms)


def test_value_runs_by_hand():
    broker, line = _Broker(), _Line([110.0, 120.0, 90.0, 95.0, 100.0, 100.0, 100.0])
    runs = ValueRuns(broker, [("BTC", line)])
    broker.terms = [("BTC", 20.0, 1, 2.0, 100.0)]       # long 2 from 100, 20 of margin

    def bar(index, value):
        line._idx = index
        runs.check(index, value)

    bar(0, 1000.0 + (20.0 + 2.0 * (110.0 - 100.0)))    # 1040: the first run begins
    bar(1, 1000.0 + (20.0 + 2.0 * (120.0 - 100.0)))    # 1060: predicted, nothing kept
    broker.terms = [("BTC", 19.5, 1, 2.0, 100.0)]       # funding takes 0.5 of the margin
    bar(2, 1000.0 + (19.5 + 2.0 * (90.0 - 100.0)))     # 999.5: a new run
    broker.terms = None                                 # valued on a mark price: stored
    bar(3, 1234.5)
    broker.terms = []                                   # flat: the wallet alone
    broker.cash = 1001.25
    bar(4, 1001.25)
    broker.cash = -0.0                                  # a zero keeps its sign
    bar(5, -0.0)
    bar(6, -0.0)
    assert runs.run_count() == 5 and runs.stored.tolist() == [1234.5]
    values = runs.values_at(np.arange(7))
    assert values.tolist() == [1040.0, 1060.0, 999.5, 1234.5, 1001.25, 0.0, 0.0]
    assert np.signbit(values[5:]).all()
    assert runs.values_at(np.array([4, 0, 3])).tolist() == [1001.25, 1040.0, 1234.5]
