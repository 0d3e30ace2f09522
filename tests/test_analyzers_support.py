"""Helpers for the analyzer tests (tiny OHLC feeds, a scripted strategy, a fake margin broker).

Imported by the other ``test_analyzers_*`` files; the tests here check the helpers themselves.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import backtrader as bt
import pandas as pd

from backtrader_leverage.analyzers import LiquidationAnalyzer, MarginAnalyzer, NegativeBalanceAnalyzer, RiskAnalyzer

HOUR = 3600.0
FIRST_BAR = datetime(2024, 1, 1)  # naive UTC, the first bar of every hand-made feed
ANALYZERS = {"liquidation": LiquidationAnalyzer, "margin": MarginAnalyzer,
             "negative": NegativeBalanceAnalyzer, "risk": RiskAnalyzer}


def bar_time(index: int, first: datetime = FIRST_BAR, hours: float = 1.0) -> datetime:
    """Naive-UTC time of bar ``index`` of a hand-made hourly feed."""
    return first + timedelta(hours=hours * index)


def iso(index: int) -> str:
    return bar_time(index).isoformat()


def ohlc_frame(bars, first: datetime = FIRST_BAR, hours: float = 1.0) -> pd.DataFrame:
    """DataFrame of (open, high, low, close) tuples on an hourly UTC index."""
    index = pd.DatetimeIndex([bar_time(i, first, hours) for i in range(len(bars))], tz="UTC")
    frame = pd.DataFrame(list(bars), columns=["open", "high", "low", "close"], index=index, dtype=float)
    frame["volume"] = 1.0
    return frame


def ohlc_feed(bars, name: str | None = None, **kwargs) -> bt.feeds.PandasData:
    """A backtrader feed over hand-made (open, high, low, close) tuples."""
    feed = bt.feeds.PandasData(dataname=ohlc_frame(bars, **kwargs),
                               timeframe=bt.TimeFrame.Minutes, compression=60)
    if name:
        feed._name = name
    return feed


def flat_bar(price: float):
    return (price, price, price, price)


class Scripted(bt.Strategy):
    """Submits market orders from a plan: ``{bar_index: [(action, size, feed_index), ...]}``.

    ``action`` is 'buy', 'sell' or 'close'. Orders placed in bar k's ``next()``
    fill at bar k+1's open. ``hooks`` maps a bar index to ``fn(strategy)``,
    called in that bar's ``next()`` (before the analyzers' ``next()``).
    """

    params = (("plan", None), ("hooks", None))

    def next(self):
        bar = len(self) - 1
        for action, size, feed in (self.p.plan or {}).get(bar, []):
            data = self.datas[feed]
            if action == "close":
                self.close(data=data)
            else:
                getattr(self, action)(data=data, size=size)
        hook = (self.p.hooks or {}).get(bar)
        if hook:
            hook(self)


def run(feeds, broker=None, plan=None, hooks=None, analyzers=ANALYZERS, cash=None, **cerebro_kwargs):
    """Run ``Scripted`` over ``feeds`` with the analyzers; returns the strategy."""
    cerebro = bt.Cerebro(stdstats=False, **cerebro_kwargs)
    for feed in feeds:
        cerebro.adddata(feed)
    if broker is not None:
        cerebro.broker = broker
    if cash is not None:
        cerebro.broker.setcash(cash)
    cerebro.addstrategy(Scripted, plan=plan, hooks=hooks)
    for name, analyzer in analyzers.items():
        cerebro.addanalyzer(analyzer, _name=name)
    return cerebro.run()[0]


def analyses(strategy) -> dict:
    return {name: getattr(strategy.analyzers, name).get_analysis() for name in ANALYZERS
            if hasattr(strategy.analyzers, name)}


# -- a fake margin broker: BackBroker accounting plus the margin broker's public names --------

@dataclasses.dataclass
class FakeLiquidation:
    """Same field names as the margin broker's LiquidationEvent."""
    dt: datetime
    opened_dt: datetime
    data: str
    side: str
    size: float
    entry_price: float
    liquidation_price: float
    bankruptcy_price: float
    fill_price: float
    margin_lost: float
    fee: float
    deficit: float


@dataclasses.dataclass
class FakeEpisode:
    start: datetime
    end: datetime | None
    lowest_balance: float


class FakeMarginBroker(bt.brokers.BackBroker):
    """BackBroker whose positions get isolated-margin figures from the textbook formula.

    margin = |size| x entry / leverage; maintenance = |size| x price x mmr;
    LP = (margin - side x size x entry) / (size x mmr - side x size) (no
    maintenance amount). It never liquidates anything itself: a test appends
    records to ``liquidations`` / ``negative_balance_episodes`` from a hook.
    """

    params = (("leverage", 10.0), ("maintenance_margin_rate", 0.005), ("negative_balance", "absorb"))

    def init(self):
        super().init()
        self.liquidations = []
        self.negative_balance_episodes = []
        self.insurance_fund = 0.0

    def get_leverage(self, data):
        return self.p.leverage

    def position_margin(self, data):
        position = self.getposition(data)
        return abs(position.size) * position.price / self.p.leverage

    def maintenance_margin(self, data, price=None):
        price = data.close[0] if price is None else price
        return abs(self.getposition(data).size) * price * self.p.maintenance_margin_rate

    def liquidation_price(self, data):
        position = self.getposition(data)
        if not position.size:
            return None
        side, size, entry = (1 if position.size > 0 else -1), abs(position.size), position.price
        margin = self.position_margin(data)
        rate = self.p.maintenance_margin_rate
        return max(0.0, (margin - side * size * entry) / (size * rate - side * size))


def test_fake_broker_liquidation_price_is_the_textbook_example():
    # long 1 at 100 with 10x, mmr 0.005: LP = 90 / 0.995; short: LP = 110 / 1.005
    ENTRY, LEVERAGE, RATE = 100.0, 10.0, 0.005
    seen = {}

    def look(strategy):
        seen[strategy.position.size] = strategy.broker.liquidation_price(strategy.data)

    bars = [flat_bar(ENTRY)] * 5
    run([ohlc_feed(bars)], broker=FakeMarginBroker(leverage=LEVERAGE, maintenance_margin_rate=RATE),
        plan={0: [("buy", 1, 0)], 1: [("sell", 2, 0)]}, hooks={1: look, 2: look}, analyzers={})
    assert seen[1.0] == 90 / 0.995 == (ENTRY - ENTRY / LEVERAGE) / (1 - RATE)
    assert seen[-1.0] == 110 / 1.005 == (ENTRY + ENTRY / LEVERAGE) / (1 + RATE)


def test_ohlc_feed_gives_hourly_naive_utc_bars():
    stamps = []
    run([ohlc_feed([flat_bar(1.0)] * 3)], hooks={i: (lambda s: stamps.append(s.data.datetime.datetime(0)))
                                                for i in range(3)}, analyzers={})
    assert stamps == [bar_time(0), bar_time(1), bar_time(2)]
