"""MarginAnalyzer measures isolated MarginBroker feeds at stop() from runs of position
states; bar by bar (``defer_measurement = False``) it must give bit-identical numbers.

Real BTCUSDT/ETHUSDT hourly bars (2021-04-15 .. 2021-06-15, the May 2021 crash): an
SMA 10/30 crossover reversing at 9x the equity with tiers and funding, so the runs hold
fills, funding payments (the isolated margin moves every 8 h), liquidations and margin
calls; two feeds; next mode (runonce=False); and a replayed feed, whose buffer index
stays put within a bar (the analyzer falls back to bar by bar from its first tick).
"""
import backtrader as bt
import numpy as np
import pytest

from backtrader_leverage.analyzers import MarginAnalyzer
from backtrader_leverage.broker import MarginBroker
from backtrader_leverage.data import ArrayFeed, load_csv

from _bars import Reversals


class BarByBar(MarginAnalyzer):
    defer_measurement = False


def _frames(shared_data, symbols):
    return [load_csv(shared_data / f"binance_um_{symbol}_1h.csv").loc["2021-04-15":"2021-06-15"]
            for symbol in symbols]


def _run(frames, analyzer, runonce=True, replay=False, mark=None, **broker_params):
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    for index, frame in enumerate(frames):
        feed = ArrayFeed(dataname=frame, name=f"F{index}")
        if replay:
            cerebro.replaydata(feed, timeframe=bt.TimeFrame.Minutes, compression=240)
        else:
            cerebro.adddata(feed)
    cerebro.broker = MarginBroker(cash=10_000, leverage=20, tiers="binance_btcusdt_perp",
                                  **broker_params)
    cerebro.broker.setcommission(commission=0.0004)
    if mark is not None:                 # the first feed on its mark price: measured bar by bar
        cerebro.broker.set_mark_price(cerebro.datas[0], mark)
    cerebro.addstrategy(Reversals)
    cerebro.addanalyzer(analyzer, _name="margin", levels=(0.3, 0.5, 0.8))
    strategy = cerebro.run()[0]
    margin = strategy.analyzers.margin
    return margin.get_analysis(), margin.series(), cerebro.broker


def _same_series(deferred, bar_by_bar):
    for key in ("margin_ratio", "distance"):
        assert list(deferred[key]) == list(bar_by_bar[key])
        for name in deferred[key]:
            a, b = deferred[key][name], bar_by_bar[key][name]
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.array_equal(a, b, equal_nan=True)
            assert np.array_equal(np.signbit(a), np.signbit(b))


@pytest.mark.parametrize("symbols, runonce, replay, funding, marked", [
    (("BTCUSDT",), True, False, 0.0003, False),
    (("BTCUSDT", "ETHUSDT"), True, False, 0.0003, False),
    (("BTCUSDT", "ETHUSDT"), True, False, 0.0003, True),   # one feed deferred, one not
    (("BTCUSDT",), False, False, None, False),
    (("BTCUSDT",), True, True, 0.0003, False),
])
def test_deferred_measurement_equals_bar_by_bar(shared_data, symbols, runonce, replay, funding,
                                                marked):
    frames = _frames(shared_data, symbols)
    mark = _frames(shared_data, ["BTCUSDT_mark"])[0] if marked else None
    deferred, deferred_series, broker = _run(frames, MarginAnalyzer, runonce, replay, mark,
                                             funding_rates=funding)
    bar_by_bar, bar_series, _ = _run(frames, BarByBar, runonce, replay, mark,
                                     funding_rates=funding)
    assert deferred == bar_by_bar
    _same_series(deferred_series, bar_series)
    if not replay:
        # the case is not trivial: liquidations, margin calls and funding all happened
        assert broker.liquidations and deferred["margin_calls"]
        assert bool(broker.funding_payments) == (funding is not None)
        assert deferred["worst_margin_ratio"] == 1.0


def test_deferred_figures_in_many_chunks_equal_bar_by_bar(shared_data, monkeypatch):
    # stop() computes the deferred bars in chunks of margin._CHUNK_BARS (8192: one chunk for
    # these ~1,460 bars); chunks of 7 bars cut through runs, liquidations and margin calls
    from backtrader_leverage.analyzers import margin as margin_module
    frames = _frames(shared_data, ("BTCUSDT", "ETHUSDT"))
    monkeypatch.setattr(margin_module, "_CHUNK_BARS", 7)
    deferred, deferred_series, broker = _run(frames, MarginAnalyzer, funding_rates=0.0003)
    bar_by_bar, bar_series, _ = _run(frames, BarByBar, funding_rates=0.0003)
    assert len(deferred_series["margin_ratio"]["F0"]) > 100 * 7
    assert deferred == bar_by_bar and deferred["margin_calls"] and broker.liquidations
    _same_series(deferred_series, bar_series)


def _run_with(frames, analyzers):
    """``analyzers``: (name, class, params) added in this order; {name: (analysis, series)}."""
    cerebro = bt.Cerebro(stdstats=False)
    for index, frame in enumerate(frames):
        cerebro.adddata(ArrayFeed(dataname=frame, name=f"F{index}"))
    cerebro.broker = MarginBroker(cash=10_000, leverage=20, tiers="binance_btcusdt_perp",
                                  funding_rates=0.0003)
    cerebro.broker.setcommission(commission=0.0004)
    cerebro.addstrategy(Reversals)
    for name, analyzer, params in analyzers:
        cerebro.addanalyzer(analyzer, _name=name, **params)
    strategy = cerebro.run()[0]
    return {name: (strategy.analyzers.getbyname(name).get_analysis(),
                   strategy.analyzers.getbyname(name).series()) for name, _, _ in analyzers}


def test_members_sharing_the_tape_give_what_each_gives_alone(shared_data):
    # the tape's one row a bar holds value, notional and each MarginAnalyzer's columns (the
    # wallet is a step column): two MarginAnalyzers (one bar by bar), NegativeBalance and Risk
    from backtrader_leverage.analyzers import NegativeBalanceAnalyzer, RiskAnalyzer
    frames = _frames(shared_data, ("BTCUSDT", "ETHUSDT"))
    members = [("m1", MarginAnalyzer, {"levels": (0.3, 0.5)}), ("neg", NegativeBalanceAnalyzer, {}),
               ("m2", BarByBar, {"levels": (0.8,)}), ("risk", RiskAnalyzer, {})]
    together = _run_with(frames, members)
    for member in members:
        alone = _run_with(frames, [member])[member[0]]
        assert together[member[0]][0] == alone[0]
        shared = together[member[0]][1]
        assert list(shared) == list(alone[1])
        for key, value in alone[1].items():     # arrays, or dicts feed name -> array
            for name, array in (value.items() if isinstance(value, dict) else [(None, value)]):
                other = shared[key][name] if name is not None else shared[key]
                assert np.asarray(array).tobytes() == np.asarray(other).tobytes(), (key, name)
    # not trivial: margin calls fired, and the wallet moved (its steps) many times
    assert together["m1"][0]["margin_calls"] and together["m2"][0]["margin_calls"]
    assert len(np.unique(together["neg"][1]["balance"])) > 50
