"""FundingAnalyzer and the funding keys of the metrics row, on hand-made and real bars."""
import backtrader as bt
import numpy as np
import pytest

from _bars import bars_feed, bars_frame, flat
from backtrader_leverage.analyzers import FundingAnalyzer
from backtrader_leverage.backtest import BacktestConfig, run_backtest
from backtrader_leverage.broker import MarginBroker
from backtrader_leverage.data import load_csv, load_funding_csv, load_mark_csv, with_perpetual_data

CASH = 1_000.0
RATE = 0.0001


class HoldOne(bt.Strategy):
    params = (("size", 1.0),)

    def next(self):
        if len(self) == 1:
            (self.buy if self.p.size > 0 else self.sell)(size=abs(self.p.size))


def analyse(bars, size=1.0, broker=None, feeds=None):
    cerebro = bt.Cerebro(stdstats=False)
    for feed in feeds or [bars_feed(bars, name="BTC")]:
        cerebro.adddata(feed)
    cerebro.broker = broker or MarginBroker(cash=CASH, leverage=10, funding_rates=RATE)
    cerebro.addstrategy(HoldOne, size=size)
    cerebro.addanalyzer(FundingAnalyzer, _name="funding")
    return cerebro.run()[0].analyzers.funding.get_analysis()


def test_a_long_over_one_day_pays_three_times_0_01():
    # 08:00, 16:00, 00:00 at 1 BTC x 100 x 0.0001 = 0.01 each
    analysis = analyse([flat(100.0)] * 25)
    assert analysis["payments"] == 3
    assert analysis["paid"] == pytest.approx(0.03) and analysis["received"] == 0.0
    assert analysis["net_paid"] == pytest.approx(0.03)
    assert analysis["by_data"] == {"BTC": {"payments": 3, "paid": pytest.approx(0.03),
                                           "received": 0.0, "net_paid": pytest.approx(0.03)}}
    # the account lost only the funding: share of the loss 0.03 / 0.03 = 1
    assert analysis["share_of_loss"] == pytest.approx(1.0)


def test_a_short_receives_and_funding_share_is_none_without_a_loss():
    analysis = analyse([flat(100.0)] * 25, size=-1.0)
    assert analysis["received"] == pytest.approx(0.03) and analysis["net_paid"] == pytest.approx(-0.03)
    assert analysis["share_of_loss"] is None


def test_funding_share_of_a_price_loss():
    # the long drifts from 100 to 99 (at the 08:00 open: 1 x 99.5 x 0.0001 = 0.00995 paid):
    # loss = 1 (price) + 0.00995 (funding); share = 0.00995 / 1.00995
    bars = [flat(100.0)] * 8 + [flat(99.5)] + [flat(99.0)] * 3
    analysis = analyse(bars)
    assert analysis["net_paid"] == pytest.approx(0.00995)
    assert analysis["share_of_loss"] == pytest.approx(0.00995 / 1.00995)


def test_no_funding_and_a_plain_backbroker_report_zeros():
    empty = {"payments": 0, "paid": 0.0, "received": 0.0, "net_paid": 0.0,
             "share_of_loss": None, "by_data": {}}
    assert analyse([flat(100.0)] * 25, broker=MarginBroker(cash=CASH, leverage=10)) == empty
    assert analyse([flat(100.0)] * 25, broker=bt.brokers.BackBroker(cash=CASH)) == empty


def test_metrics_row_and_series_carry_the_funding(shared_data):
    # buy_hold, 3x, on the real BTCUSDT perpetual, 2021-01-01 .. 2021-01-08 with its funding and
    # mark price: each payment is -size x mark open x rate; the row's net equals Σ of them
    window = slice("2021-01-01", "2021-01-07")
    trade = load_csv(shared_data / "binance_um_BTCUSDT_1h.csv").loc[window]
    mark = load_mark_csv(shared_data / "binance_um_BTCUSDT_mark_1h.csv").loc[window]
    funding = load_funding_csv(shared_data / "binance_um_BTCUSDT_funding_8h.csv")
    frame = with_perpetual_data(trade, mark=mark, funding=funding)
    result = run_backtest(frame, BacktestConfig(strategy="buy_hold", leverage=3.0))
    row = result.row
    assert row["trigger_price"] == "mark price (binance_um_BTCUSDT_mark_1h.csv)"
    assert row["funding"].startswith("binance_um_BTCUSDT_funding_8h.csv (")
    # bought at the 2nd bar's open (01:00 of Jan 1): settlements 08:00 Jan 1 .. 16:00 Jan 7 = 20
    assert row["funding_payments"] == 20
    assert row["funding_paid"] > 0                # 2021: longs paid about 0.028 % per 8 h
    assert result.series["funding"][-1] == pytest.approx(row["funding_paid"])
    constant = run_backtest(trade, BacktestConfig(strategy="buy_hold", leverage=3.0,
                                                  funding_rate=RATE))
    assert constant.row["funding"] == "0.0001 per 8 h (constant)"
    assert constant.row["trigger_price"] == "trade price"
    off = run_backtest(trade, BacktestConfig(strategy="buy_hold", leverage=3.0))
    assert off.row["funding"] == "funding not modelled" and off.row["funding_paid"] == 0.0
    assert off.row["funding_payments"] == 0 and not off.series["funding"].any()
