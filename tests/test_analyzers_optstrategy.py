"""The analyzers in ``cerebro.optstrategy`` on two processes: backtrader pickles each
run's analyzers (optreturn) or whole strategy back to the parent, so everything the
analyzers leave on them must pickle, and the analyses must equal the one-process run's.

Real BTCUSDT hourly bars (2021-04-15 .. 2021-06-15, the May 2021 crash), SMA 10/30
reversals at 3x and 9x the equity, 20x leverage, tiers and funding: fills, funding
payments and (at 9x) liquidations.
"""
import backtrader as bt
import pytest

from backtrader_leverage.analyzers import (LiquidationAnalyzer, MarginAnalyzer,
                                           NegativeBalanceAnalyzer, RiskAnalyzer)
from backtrader_leverage.broker import MarginBroker
from backtrader_leverage.data import ArrayFeed, load_csv

from _bars import Reversals

class OptimisedReversals(Reversals):
    """Reversals under a name of its own: backtrader pickles a strategy's lines by the class's
    name, and the suite imports ``_bars`` twice (as ``_bars`` and ``tests._bars``)."""


ANALYZERS = {"liquidation": LiquidationAnalyzer, "margin": MarginAnalyzer,
             "negative": NegativeBalanceAnalyzer, "risk": RiskAnalyzer}


def _optimise(frame, maxcpus: int, optreturn: bool) -> dict:
    cerebro = bt.Cerebro(stdstats=False, maxcpus=maxcpus, optreturn=optreturn)
    cerebro.adddata(ArrayFeed(dataname=frame, name="BTC"))
    cerebro.broker = MarginBroker(cash=10_000, leverage=20, tiers="binance_btcusdt_perp",
                                  funding_rates=0.0003)
    cerebro.broker.setcommission(commission=0.0004)
    for name, analyzer in ANALYZERS.items():
        cerebro.addanalyzer(analyzer, _name=name)
    cerebro.optstrategy(OptimisedReversals, exposure=[3.0, 9.0])
    return {run[0].params.exposure: {name: run[0].analyzers.getbyname(name).get_analysis()
                                     for name in ANALYZERS}
            for run in cerebro.run()}


@pytest.mark.parametrize("optreturn", [True, False])
def test_two_processes_give_the_analyses_of_one(shared_data, optreturn):
    frame = load_csv(shared_data / "binance_um_BTCUSDT_1h.csv").loc["2021-04-15":"2021-06-15"]
    single = _optimise(frame, maxcpus=1, optreturn=optreturn)
    assert sorted(single) == [3.0, 9.0]
    assert single[9.0]["liquidation"]["count"] > 0      # the runs did liquidate
    assert _optimise(frame, maxcpus=2, optreturn=optreturn) == single
