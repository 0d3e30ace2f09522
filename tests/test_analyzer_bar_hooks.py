"""Analyzers with no per-bar work skip backtrader's per-bar calls; subclasses' hooks still run."""
from __future__ import annotations

import backtrader as bt

from backtrader_leverage.analyzers import (FundingAnalyzer, MarginAnalyzer, RefusalAnalyzer,
                                         RiskAnalyzer)
from backtrader_leverage.analyzers._common import no_op

from test_analyzers_support import flat_bar, ohlc_feed, run

BARS = 6


class CountingFunding(FundingAnalyzer):
    """A user's subclass that does look at every bar and every cash/value notification."""

    def start(self):
        super().start()
        self.bars = self.cash_values = 0

    def next(self):
        self.bars += 1

    def notify_cashvalue(self, cash, value):
        self.cash_values += 1


def test_idle_hooks_are_no_ops_and_a_subclass_keeps_its_own():
    # 6 flat bars at 100, no orders: every hook a subclass defines is called once a bar
    # (prenext/nextstart of bt.Analyzer forward to next), the others go to the no-op
    strategy = run([ohlc_feed([flat_bar(100.0)] * BARS)],
                   analyzers={"funding": FundingAnalyzer, "refusal": RefusalAnalyzer,
                              "counting": CountingFunding})
    funding, refusal, counting = (strategy.analyzers.getbyname(name)
                                  for name in ("funding", "refusal", "counting"))
    for analyzer in (funding, refusal):
        assert analyzer._next is analyzer._prenext is analyzer._nextstart is no_op
        assert analyzer._notify_cashvalue is analyzer._notify_fund is no_op
    assert counting.bars == BARS and counting.cash_values == BARS
    assert "_next" not in vars(counting) and "_notify_cashvalue" not in vars(counting)
    assert counting._notify_fund is no_op          # notify_fund is not overridden
    assert funding.get_analysis()["payments"] == 0 and refusal.get_analysis()["count"] == 0



class CountingBars(bt.Analyzer):
    """A plain backtrader analyzer next to ours: called once a bar, in its place."""

    def start(self):
        self.bars = 0

    def next(self):
        self.bars += 1


def test_strategy_analyzers_iterate_as_a_list_with_names_kept():
    # the tape gives strategy.analyzers a list iterator (backtrader's ItemCollection has
    # none): the same analyzers in the order added, still reachable by name and index
    strategy = run([ohlc_feed([flat_bar(100.0)] * BARS)],
                   analyzers={"plain": CountingBars, "risk": RiskAnalyzer,
                              "margin": MarginAnalyzer})
    analyzers = strategy.analyzers
    assert type(analyzers).__mro__[1] is bt.metabase.ItemCollection
    assert list(analyzers) == [analyzers[0], analyzers[1], analyzers[2]]
    assert [type(a) for a in analyzers] == [CountingBars, RiskAnalyzer, MarginAnalyzer]
    assert analyzers.getbyname("risk") is analyzers.risk is analyzers[1]
    assert [name for name, _ in analyzers.getitems()] == ["plain", "risk", "margin"]
    assert analyzers.plain.bars == BARS          # 6 flat bars: one call each


class OwnAnalyzerLoop(bt.Strategy):
    """A strategy class with its own ``_next_analyzers``: the tape leaves it alone."""

    def _next_analyzers(self, minperstatus, once=False):
        super()._next_analyzers(minperstatus, once)


def test_the_bar_loop_skips_only_analyzers_that_do_nothing_a_bar():
    # 6 flat bars at 100: the strategy's per-bar loop goes to the tape's leader and the
    # plain analyzer (in the order added); the three members with no-op hooks are left out
    feed = [flat_bar(100.0)] * BARS
    names = {"plain": CountingBars, "risk": RiskAnalyzer, "margin": MarginAnalyzer,
             "funding": FundingAnalyzer, "after": CountingBars}
    strategy = run([ohlc_feed(feed)], analyzers=names)
    analyzers = strategy.analyzers
    loop = strategy._next_analyzers
    assert loop.args == ([analyzers.plain, analyzers.risk, analyzers.after],)
    assert analyzers.plain.bars == analyzers.after.bars == BARS
    assert analyzers.margin._next is analyzers.funding._next is no_op
    # a class with its own loop keeps it, and every analysis is the same either way
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ohlc_feed(feed))
    cerebro.addstrategy(OwnAnalyzerLoop)
    for name, analyzer in names.items():
        cerebro.addanalyzer(analyzer, _name=name)
    own = cerebro.run()[0]
    assert "_next_analyzers" not in vars(own) and own.analyzers.after.bars == BARS
    for name in ("risk", "margin", "funding"):
        assert own.analyzers.getbyname(name).get_analysis() == \
            analyzers.getbyname(name).get_analysis()
