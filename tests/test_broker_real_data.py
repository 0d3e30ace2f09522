"""The broker issue's "Done when" on real Binance BTC/USDT hourly bars.

(a) A 10x long through a real crash is liquidated on the bar and at the price
    the formula gives. The expectation is computed here with pandas, without
    the broker: LP = entry·(1 − 1/L)/(1 − mmr) for a long with no fees, and the
    first bar from the entry bar on whose low ≤ LP (a later bar opening at or
    below LP fills at its open).
(b) At 1x with no liquidation, ``MarginBroker`` and plain ``BackBroker`` give
    the same orders (bar, size, price), the same cash and value on every bar,
    and the same final value, on the same long-only SMA-crossover strategy.

Slices of a few thousand bars keep it fast.
"""
from __future__ import annotations

import backtrader as bt
import pandas as pd
import pytest

from _bars import Recorder
from backtrader_leverage.broker import MarginBroker

BTC_HOURLY = "binance_BTCUSDT_1h.csv"
START_CASH = 10_000.0   # quote (USDT)
MMR = 0.005             # MarginBroker's default flat maintenance margin rate


@pytest.fixture(scope="module")
def btc_hourly(shared_data) -> pd.DataFrame:
    frame = pd.read_csv(shared_data / BTC_HOURLY, index_col="date")
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame


def feed(frame: pd.DataFrame) -> bt.feeds.PandasData:
    return bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=60)


def naive_utc(stamp: pd.Timestamp):
    """The bar's time as backtrader hands it out: a naive-UTC datetime."""
    return stamp.tz_convert("UTC").tz_localize(None).to_pydatetime()


# ----------------------------------------------------------------------
# (a) a 10x long through a crash
# ----------------------------------------------------------------------
class BuyAtFirstBar(Recorder):
    """Buys ``size`` in the first ``next()``: it fills at the open of bar 1."""
    params = (("size", 0.1),)

    def act(self, bar):
        if bar == 0:
            self.buy(size=self.p.size)


def expected_liquidation(bars: pd.DataFrame, liquidation_price: float):
    """(bar time, fill price) of the first liquidation of a long entered at bar 1's open.

    Bar 1 is the entry bar: its open is the entry, so only its low can reach
    LP. From bar 2 on, an open at or below LP is a gap: fill at the open.
    Otherwise a low at or below LP fills at LP.
    """
    after_entry = bars.iloc[1:]
    touched = after_entry[after_entry["low"] <= liquidation_price]
    stamp = touched.index[0]
    bar = touched.iloc[0]
    fill = bar["open"] if stamp != bars.index[1] and bar["open"] <= liquidation_price \
        else liquidation_price
    return stamp, fill


CRASHES = {
    # name: (first bar of the slice, leverage, size in BTC)
    "2021-05-12 Tesla drop": ("2021-05-12 00:00", 10, 0.1),
    "2021-05-19 liquidated on its entry bar": ("2021-05-19 11:00", 10, 0.1),
    "2021-05-19 from the day before": ("2021-05-18 12:00", 10, 0.05),
    "2020-03-12 covid crash": ("2020-03-11 00:00", 10, 1.0),
    "2020-03-12 at 25x": ("2020-03-12 00:00", 25, 0.5),
    # 2017-08-18 19:00 opens at 4086.28, below 18:00's low 4117.41: a gap past LP
    "2017-08-18 gap at 45x": ("2017-08-18 17:00", 45, 0.5),
    # at 50x BP = 4171.17·0.98 = 4087.75 is above that open too: a deficit (absorbed)
    "2017-08-18 gap past bankruptcy at 50x": ("2017-08-18 17:00", 50, 0.5),
}


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_long_through_crash_is_liquidated_where_the_formula_says(btc_hourly, crash):
    first_bar, leverage, size = CRASHES[crash]
    bars = btc_hourly.loc[first_bar:].iloc[:500]
    entry = bars["open"].iloc[1]                       # market order fills at bar 1's open
    margin = size * entry / leverage                   # notional / leverage
    liquidation_price = entry * (1 - 1 / leverage) / (1 - MMR)
    bankruptcy_price = entry * (1 - 1 / leverage)      # margin + PnL = 0
    stamp, fill = expected_liquidation(bars, liquidation_price)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = MarginBroker(cash=START_CASH, leverage=leverage)
    cerebro.adddata(feed(bars))
    cerebro.addstrategy(BuyAtFirstBar, size=size)
    strategy = cerebro.run()[0]
    broker = cerebro.broker

    (event,) = broker.liquidations
    assert event.dt == naive_utc(stamp)
    assert event.opened_dt == naive_utc(bars.index[1])
    assert (event.side, event.size, event.data) == ("long", size, "data0")
    assert event.entry_price == pytest.approx(entry)
    assert event.liquidation_price == pytest.approx(liquidation_price, rel=1e-12)
    assert event.bankruptcy_price == pytest.approx(bankruptcy_price, rel=1e-12)
    assert event.fill_price == pytest.approx(fill, rel=1e-12)
    # exchange style: the whole margin is lost; what is left at the fill is the clearance fee
    remaining = margin + size * (fill - entry)         # margin + PnL at the fill
    assert event.margin_lost == pytest.approx(margin)
    assert event.fee == pytest.approx(max(0.0, remaining))
    assert event.deficit == pytest.approx(max(0.0, size * (bankruptcy_price - fill)))
    assert broker.getcash() == pytest.approx(START_CASH - margin)  # 'absorb': deficit not charged
    assert strategy.fills[-1].liquidation and strategy.fills[-1].price == pytest.approx(fill)


# ----------------------------------------------------------------------
# (b) 1x with no liquidation == BackBroker
# ----------------------------------------------------------------------
class SmaCrossFixed(Recorder):
    """Long-only SMA crossover buying a fixed fractional size, closing on the cross down."""
    params = (("fast", 10), ("slow", 30), ("size", 0.05))

    def __init__(self):
        super().__init__()
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))

    def act(self, bar):
        if self.cross[0] > 0 and not self.position:
            self.buy(size=self.p.size)
        elif self.cross[0] < 0 and self.position:
            self.close()


def run_sma(bars, broker, fee_rate):
    broker.setcash(START_CASH)
    broker.setcommission(commission=fee_rate)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = broker
    cerebro.adddata(feed(bars))
    cerebro.addstrategy(SmaCrossFixed)
    return cerebro.run()[0]


SLICES = {"2021 bull and May crash": "2021-01-01", "2022 bear": "2022-03-01",
          "2019": "2019-01-01"}
SLICE_BARS = 3000


@pytest.mark.parametrize("fee_rate", [0.0, 0.001])
@pytest.mark.parametrize("start", sorted(SLICES))
def test_one_x_matches_backbroker_on_real_data(btc_hourly, start, fee_rate):
    bars = btc_hourly.loc[SLICES[start]:].iloc[:SLICE_BARS]
    back = run_sma(bars, bt.brokers.BackBroker(), fee_rate)
    margin_broker = MarginBroker(leverage=1)
    margin = run_sma(bars, margin_broker, fee_rate)

    assert len(back.fills) > 20, "the strategy must trade on this slice"
    assert all(abs(fill.size) == 0.05 for fill in margin.fills)  # on the 0.001 lot grid
    assert margin_broker.liquidations == []
    assert margin.fills == back.fills
    # at 1x the margin is the notional: cash and value agree on every bar
    assert margin.cashes == pytest.approx(back.cashes, rel=1e-12)
    assert margin.values == pytest.approx(back.values, rel=1e-12)
    assert margin.broker.getvalue() == pytest.approx(back.broker.getvalue(), rel=1e-12)
    assert [t.pnlcomm for t in margin.trades] == pytest.approx([t.pnlcomm for t in back.trades])
