"""Hand-made hourly feeds for the broker tests.

``bars_feed([(open, high, low, close), ...])`` gives a backtrader feed whose bar
``i`` is stamped ``FIRST_BAR + i hours`` (naive UTC, as backtrader hands it out).
``Recorder`` is a small strategy base that logs every completed fill as
``Fill(bar, size, price, liquidation)`` and the close mark of each bar.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import backtrader as bt
import pandas as pd

FIRST_BAR = datetime(2024, 1, 1)  # naive UTC time of bar 0 of every hand-made feed


def bar_time(index: int, first: datetime = FIRST_BAR) -> datetime:
    """Naive-UTC time of bar ``index`` of an hourly hand-made feed."""
    return first + timedelta(hours=index)


def bars_frame(bars, first: datetime = FIRST_BAR) -> pd.DataFrame:
    """DataFrame of (open, high, low, close) tuples on an hourly UTC index, volume 1."""
    index = pd.DatetimeIndex([bar_time(i, first) for i in range(len(bars))], tz="UTC")
    frame = pd.DataFrame([tuple(bar) for bar in bars], columns=["open", "high", "low", "close"],
                         index=index, dtype=float)
    frame["volume"] = 1.0
    return frame


def bars_feed(bars, name: str | None = None, first: datetime = FIRST_BAR) -> bt.feeds.PandasData:
    """A backtrader feed over hand-made (open, high, low, close) tuples, hourly."""
    kwargs = {"name": name} if name else {}
    return bt.feeds.PandasData(dataname=bars_frame(bars, first), timeframe=bt.TimeFrame.Minutes,
                               compression=60, **kwargs)


def flat(price: float):
    """A bar that never moves: open = high = low = close = ``price``."""
    return (price, price, price, price)


@dataclass(frozen=True)
class Fill:
    """One completed order as the strategy saw it: bar index, signed size, price, flag."""
    bar: int
    size: float
    price: float
    liquidation: bool
    feed: str = "data0"


class Recorder(bt.Strategy):
    """Logs completed fills, rejected/cancelled orders, closed trades and per-bar values.

    Subclasses implement ``act(bar)``; ``bar`` is the 0-based index of the
    current bar of ``self.data``.
    """

    def __init__(self):
        self.fills = []
        self.refused = []      # (bar, status name) of Margin / Rejected orders
        self.cancelled = []    # (bar, order ref) of cancelled orders
        self.trades = []       # closed trades
        self.values = []       # getvalue() per bar, after this bar's fills
        self.cashes = []

    def bar(self) -> int:
        return len(self.data) - 1

    def feed_name(self, data) -> str:
        """The feed's name, ``data0``, ``data1``, … when unnamed (by identity: lines overload ==)."""
        index = next(index for index, feed in enumerate(self.datas) if feed is data)
        return data._name or f"data{index}"

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append(Fill(self.bar(), order.executed.size, order.executed.price,
                                   bool(order.info.get("liquidation", False)),
                                   self.feed_name(order.data)))
        elif order.status in (order.Margin, order.Rejected):
            self.refused.append((self.bar(), order.getstatusname()))
        elif order.status == order.Canceled:
            self.cancelled.append((self.bar(), order.ref))

    def notify_trade(self, trade):
        if trade.isclosed:
            self.trades.append(trade)

    def next(self):
        self.values.append(self.broker.getvalue())
        self.cashes.append(self.broker.getcash())
        self.act(self.bar())

    def act(self, bar):  # pragma: no cover - overridden
        pass


class Reversals(bt.Strategy):
    """SMA(10)/SMA(30) crosses on every feed: long or short ``exposure`` / feeds of the value
    each (order_target_percent), reversing at each cross."""
    params = (("exposure", 9.0),)

    def __init__(self):
        self.crosses = [bt.ind.CrossOver(bt.ind.SMA(data, period=10), bt.ind.SMA(data, period=30))
                        for data in self.datas]

    def next(self):
        share = self.p.exposure / len(self.datas)
        for data, cross in zip(self.datas, self.crosses):
            if cross[0] > 0:
                self.order_target_percent(data=data, target=share)
            elif cross[0] < 0:
                self.order_target_percent(data=data, target=-share)
