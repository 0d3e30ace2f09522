"""MarginBroker under ``cerebro.replaydata``: every price it reads is the tick's.

A replayed bar develops tick by tick at the same length; backtrader hands the
broker the tick that just arrived as ``data.tick_open/high/low/close`` and
BackBroker fills on those. MarginBroker must too: market orders at the tick's
open (not the developing bar's open, a price already passed), the gap check at
the tick's open, the intrabar path starting at the tick's open. Each scenario
runs the same script on BackBroker and on MarginBroker and compares fills and
final value.
"""
from __future__ import annotations

import backtrader as bt
import pandas as pd
import pytest

from _bars import bars_feed, flat
from backtrader_leverage.broker import MarginBroker
from backtrader_leverage.data import load_csv

START_CASH = 10_000.0   # quote currency
MMR = 0.005             # default maintenance margin rate

# Hourly ticks replayed into 4-hour bars (bars start at 00:00, 04:00, ...; backtrader
# stamps a replayed bar with its right edge). The 4h bar of 05:00-08:00 opens at 110,
# its first tick closes at 111, the second opens at 120: an order sent after the first
# tick can only fill at 120.
TOY_TICKS = [flat(100.0)] * 5 + [
    (110.0, 112.0, 109.0, 111.0),   # 05:00: the bar's open, 110
    (120.0, 121.0, 119.0, 120.5),   # 06:00: a buy sent at 05:00 fills at this open, 120
    (120.5, 123.0, 120.0, 122.0),   # 07:00
    (121.5, 122.0, 118.0, 119.0),   # 08:00: a sell sent at 07:00 fills at 121.5
] + [flat(119.0)] * 4


class TradeOnCloses(bt.Strategy):
    """Buys once after the tick that closes at ``buy_after``, sells after ``sell_after``.

    Guards by flags and tick closes: under replay ``next()`` runs on every tick.
    """
    params = (("buy_after", None), ("sell_after", None), ("size", 1.0))

    def __init__(self):
        self.fills = []
        self.done = set()

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append((self.data.datetime.datetime(0), order.executed.size,
                               order.executed.price))

    def next(self):
        close = self.data.close[0]
        if close == self.p.buy_after and "buy" not in self.done:
            self.done.add("buy")
            self.buy(size=self.p.size)
        elif close == self.p.sell_after and "sell" not in self.done:
            self.done.add("sell")
            self.sell(size=self.p.size)


def run_replay(broker, ticks, strategy=TradeOnCloses, runonce=True, **params):
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.broker = broker
    cerebro.replaydata(bars_feed(ticks), timeframe=bt.TimeFrame.Minutes, compression=240)
    cerebro.addstrategy(strategy, **params)
    return cerebro.run()[0]


def back_broker():
    broker = bt.brokers.BackBroker()
    broker.setcash(START_CASH)
    return broker


def margin_broker(**kwargs):
    broker = MarginBroker(**kwargs)
    broker.setcash(START_CASH)
    return broker


@pytest.mark.parametrize("runonce", [True, False])
def test_replayed_market_orders_fill_at_the_ticks_open_like_backbroker(runonce):
    back = run_replay(back_broker(), TOY_TICKS, runonce=runonce, buy_after=111.0, sell_after=122.0)
    margin_broker_ = margin_broker(leverage=5)
    margin = run_replay(margin_broker_, TOY_TICKS, runonce=runonce,
                        buy_after=111.0, sell_after=122.0)
    assert [price for _, _, price in back.fills] == [120.0, 121.5]  # the next ticks' opens
    assert margin.fills == back.fills
    # bought 1 at 120, sold at 121.5, no fees: 10,000 + 1.5
    assert margin_broker_.getvalue() == pytest.approx(START_CASH + 1.5)
    assert back.broker.getvalue() == pytest.approx(START_CASH + 1.5)


# A 20x long opened mid-bar at the tick open 105, in a 4h bar that opened at 90; the
# position is sold after the next tick. At the stale bar open the buy would fill at 90
# (a price that had passed) and the close at 90 again.
RISING_TICKS = [flat(100.0)] * 5 + [
    (90.0, 91.0, 89.0, 90.5),       # 05:00: the bar opens at 90
    (105.0, 106.0, 104.5, 105.5),   # 06:00: the buy sent at 05:00 fills at 105
    (105.5, 106.0, 105.0, 105.2),   # 07:00: the sell sent at 06:00 fills at 105.5
    (105.2, 105.4, 105.0, 105.1),
] + [flat(105.1)] * 4


def test_replayed_20x_round_trip_pays_the_tick_prices():
    size, leverage = 10.0, 20
    back = run_replay(back_broker(), RISING_TICKS, buy_after=90.5, sell_after=105.5, size=size)
    broker = margin_broker(leverage=leverage)
    margin = run_replay(broker, RISING_TICKS, buy_after=90.5, sell_after=105.5, size=size)
    assert [price for _, _, price in back.fills] == [105.0, 105.5]
    assert margin.fills == back.fills
    # 10 × (105.5 − 105) = +5 on the wallet; never below zero
    assert broker.getcash() == pytest.approx(START_CASH + size * (105.5 - 105.0))
    assert min(flow.balance for flow in broker.ledger) >= START_CASH - size * 105.0 / leverage
    assert broker.liquidations == []


# A long opened at 100 at 20x; the next tick gaps down to open at 95, below the
# liquidation price 100 × (1 − 1/20) / (1 − 0.005) = 95.4774 and the bankruptcy price 95.
GAP_TICKS = [flat(100.0)] * 5 + [
    (100.0, 100.5, 99.5, 100.2),    # 05:00: buy sent here
    (100.0, 100.4, 99.8, 100.1),    # 06:00: fills at 100
    (94.0, 94.5, 93.0, 93.5),       # 07:00: gaps open at 94, below the LP
    (93.5, 94.0, 93.0, 93.8),
] + [flat(93.8)] * 4


def test_replayed_gap_liquidates_at_the_ticks_open():
    leverage, size = 20, 1.0
    broker = margin_broker(leverage=leverage)
    strategy = run_replay(broker, GAP_TICKS, buy_after=100.2, size=size)
    assert strategy.fills[0][2] == 100.0
    (event,) = broker.liquidations
    bankruptcy = 100.0 * (1 - 1 / leverage)                     # 95.0
    assert event.bankruptcy_price == pytest.approx(bankruptcy)
    assert event.fill_price == 94.0                              # the tick's open: a gap
    assert event.deficit == pytest.approx(size * (bankruptcy - 94.0))  # 1 × (95 − 94) = 1


class StopAfterEntry(TradeOnCloses):
    """Buys after ``buy_after``; once long, places a sell stop at ``stop``."""
    params = (("stop", None),)

    def next(self):
        super().next()
        if self.position and "stop" not in self.done:
            self.done.add("stop")
            self.sell(size=self.p.size, exectype=bt.Order.Stop, price=self.p.stop)


def test_replayed_stop_gapped_through_fills_at_the_ticks_open_like_backbroker():
    stop = 99.0
    back = run_replay(back_broker(), GAP_TICKS, strategy=StopAfterEntry,
                      buy_after=100.2, stop=stop)
    margin = run_replay(margin_broker(leverage=5), GAP_TICKS, strategy=StopAfterEntry,
                        buy_after=100.2, stop=stop)
    assert [price for _, _, price in back.fills] == [100.0, 94.0]  # the stop gapped: tick open
    assert margin.fills == back.fills


class TickRoundTrips(bt.Strategy):
    """Every ``period`` ticks: flat → buy ``size``, long → sell it (market orders)."""
    params = (("period", 7), ("size", 1.0))

    def __init__(self):
        self.ticks = 0
        self.fills = []

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append((self.data.datetime.datetime(0), order.executed.size,
                               round(order.executed.price, 8)))

    def next(self):
        self.ticks += 1
        if self.ticks % self.p.period == 0:
            if self.position:
                self.close()
            else:
                self.buy(size=self.p.size)


def test_real_hourly_replayed_into_daily_matches_backbroker(shared_data):
    """Binance BTCUSDT 1h replayed into 1d, May 2021 (the crash), 1x: same fills, same value."""
    frame = load_csv(shared_data / "binance_BTCUSDT_1h.csv").loc["2021-05-01":"2021-05-31"]
    frame.index = frame.index.tz_convert(None)
    fee_rate, cash = 0.0004, 100_000.0

    def run_on(broker):
        broker.setcash(cash)
        broker.setcommission(commission=fee_rate)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.broker = broker
        feed = bt.feeds.PandasData(dataname=pd.DataFrame(frame), timeframe=bt.TimeFrame.Minutes,
                                   compression=60)
        cerebro.replaydata(feed, timeframe=bt.TimeFrame.Days, compression=1)
        cerebro.addstrategy(TickRoundTrips)
        return cerebro.run()[0]

    back = run_on(bt.brokers.BackBroker())
    margin = run_on(MarginBroker(leverage=1))
    assert len(back.fills) > 80  # trades on ticks all through the month
    assert margin.fills == back.fills
    assert margin.broker.getvalue() == pytest.approx(back.broker.getvalue(), abs=1e-6)


class OcoPairExpiring(bt.Strategy):
    """An OCO pair (buy stop above, buy limit below) valid one bar, never touched."""

    def __init__(self):
        self.statuses = []

    def notify_order(self, order):
        self.statuses.append((order.ref, order.getstatusname()))

    def next(self):
        if len(self) == 1:
            valid = self.data.datetime.datetime(0)
            first = self.buy(size=1.0, exectype=bt.Order.Stop, price=150.0, valid=valid)
            self.buy(size=1.0, exectype=bt.Order.Limit, price=50.0, oco=first, valid=valid)


@pytest.mark.parametrize("make_broker", [back_broker, lambda: margin_broker(leverage=2)],
                         ids=["BackBroker", "MarginBroker"])
def test_oco_members_expiring_on_the_same_bar(make_broker):
    """Both members expire at once: the first's OCO cancel must not trip the second's expiry."""
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = make_broker()
    cerebro.adddata(bars_feed([flat(100.0)] * 4))
    cerebro.addstrategy(OcoPairExpiring)
    strategy = cerebro.run()[0]
    final = {}
    for ref, status in strategy.statuses:
        final[ref] = status
    assert sorted(final.values()) in (["Canceled", "Expired"], ["Expired", "Expired"])
