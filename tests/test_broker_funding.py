"""Funding payments and the mark price in MarginBroker, on hand-made bars.

Bars are hourly from 2024-01-01 00:00 (naive UTC) unless a test says otherwise.
A market order sent at bar i fills at bar i+1's open. Funding times are 00:00,
08:00 and 16:00 UTC; a bar pays the funding times in [its start, its end) for
the position held after its open fills, at the mark's open.
"""
import datetime as dt
import math
import warnings

import backtrader as bt
import pandas as pd
import pytest

from _bars import FIRST_BAR, bars_feed, bars_frame, flat
from backtrader_leverage.broker import MarginBroker, MarkPriceWarning

CASH = 1_000.0       # quote
SIZE = 1.0           # BTC
ENTRY = 100.0        # quote per BTC
LEVERAGE = 10.0
MARGIN = SIZE * ENTRY / LEVERAGE     # 10 quote
MMR = 0.005
RATE = 0.0001                        # per 8 h
LP_AT_ENTRY = (MARGIN - ENTRY) / (MMR - 1)      # 90 / 0.995 = 90.4523


class Hold(bt.Strategy):
    """Opens ``size`` (signed) at bar 0 (filled at bar 1's open), then holds; logs fills."""
    params = (("size", SIZE), ("close_at", None))

    def __init__(self):
        self.fills, self.values, self.margins = [], [], []

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append((len(self) - 1, order.executed.size, order.executed.price,
                               bool(order.info.get("liquidation", False))))

    def next(self):
        self.values.append(self.broker.getvalue())
        self.margins.append(self.broker.position_margin(self.data))
        bar = len(self) - 1
        if bar == 0:
            (self.buy if self.p.size > 0 else self.sell)(size=abs(self.p.size))
        if bar == self.p.close_at:
            self.close()


def run(bars, size=SIZE, feed=None, mark=None, close_at=None, extra_feeds=(), **params):
    cerebro = bt.Cerebro(stdstats=False)
    data = feed if feed is not None else bars_feed(bars)
    cerebro.adddata(data)
    for extra in extra_feeds:
        cerebro.adddata(extra)
    broker = MarginBroker(cash=CASH, leverage=LEVERAGE, maintenance_margin_rate=MMR, **params)
    cerebro.broker = broker
    if mark is not None:
        broker.set_mark_price(data, mark)
    cerebro.addstrategy(Hold, size=size, close_at=close_at)
    strategy = cerebro.run()[0]
    return strategy, broker


def funding_flows(broker):
    return [flow for flow in broker.ledger if flow.reason == "funding"]


# ----------------------------------------------------------------------------
# funding
# ----------------------------------------------------------------------------
def test_a_long_held_one_day_of_hourly_bars_pays_three_times_0_01():
    # bars 00:00 (day 1) .. 00:00 (day 2); the long opens at 01:00 and is held over
    # 08:00, 16:00 and 00:00: three payments of 1 BTC x 100 x 0.0001 = 0.01
    strategy, broker = run([flat(ENTRY)] * 25, funding_rates=RATE)
    times = [payment.dt for payment in broker.funding_payments]
    assert times == [FIRST_BAR + dt.timedelta(hours=hours) for hours in (8, 16, 24)]
    assert [payment.amount for payment in broker.funding_payments] == \
        pytest.approx([-SIZE * ENTRY * RATE] * 3)          # -0.01 each
    assert all(p.size == SIZE and p.mark_price == ENTRY and p.rate == RATE
               for p in broker.funding_payments)
    assert sum(flow.amount for flow in funding_flows(broker)) == pytest.approx(-3 * 0.01)
    # the isolated margin paid it: 10 - 0.03; equity = 1000 - 0.03
    assert broker.position_margin(strategy.data) == pytest.approx(MARGIN - 0.03)
    assert broker.getcash() == pytest.approx(CASH - MARGIN)
    assert broker.getvalue() == pytest.approx(CASH - 0.03)


def test_a_short_receives_the_same_three_payments():
    strategy, broker = run([flat(ENTRY)] * 25, size=-SIZE, funding_rates=RATE)
    assert [payment.amount for payment in broker.funding_payments] == pytest.approx([+0.01] * 3)
    assert all(payment.size == -SIZE for payment in broker.funding_payments)
    assert broker.getvalue() == pytest.approx(CASH + 0.03)


def test_a_daily_bar_carries_three_payments():
    # daily bars; the long opens at day 2's open and pays 00:00, 08:00, 16:00 on day 2 and
    # on day 3, all at that bar's open (100): 6 x 0.01
    frame = bars_frame([flat(ENTRY)] * 3)
    frame.index = pd.DatetimeIndex([FIRST_BAR + dt.timedelta(days=i) for i in range(3)],
                                   tz="UTC")
    feed = bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Days)
    _, broker = run(None, feed=feed, funding_rates=RATE)
    day2 = FIRST_BAR + dt.timedelta(days=1)
    assert [p.dt for p in broker.funding_payments] == \
        [day2 + dt.timedelta(hours=hours) for hours in (0, 8, 16, 24, 32, 40)]
    assert sum(p.amount for p in broker.funding_payments) == pytest.approx(-6 * 0.01)


def test_flat_feeds_and_funding_off_pay_nothing():
    _, broker = run([flat(ENTRY)] * 25, size=SIZE, close_at=3, funding_rates=RATE)
    assert broker.funding_payments == []            # closed at 04:00, before 08:00
    _, broker = run([flat(ENTRY)] * 25)              # funding_rates None: today's behaviour
    assert broker.funding_payments == [] and funding_flows(broker) == []


def test_a_rate_series_carries_its_own_times_and_signs():
    # 08:00 +0.0002 (long pays 0.02), 16:00 -0.0001 (long receives 0.01), 12:00 (a venue
    # with 4 h funding) +0.0003 (pays 0.03); 00:00 of day 2 has no rate: nothing
    times = pd.DatetimeIndex(["2024-01-01 08:00", "2024-01-01 12:00", "2024-01-01 16:00"],
                             tz="UTC")
    rates = pd.Series([0.0002, 0.0003, -0.0001], index=times)
    _, broker = run([flat(ENTRY)] * 25, funding_rates=rates)
    assert [(p.dt.hour, round(p.amount, 10)) for p in broker.funding_payments] == \
        [(8, -0.02), (12, -0.03), (16, 0.01)]


def test_funding_is_priced_at_the_mark_open():
    # the 08:00 mark bar opens at 101: payment 1 x 101 x 0.0001 = 0.0101
    bars = [flat(ENTRY)] * 10
    mark = bars_frame(bars)
    mark.iloc[8] = [101.0, 101.0, 101.0, 101.0, 0.0]
    _, broker = run(bars, mark=mark, funding_rates=RATE)
    assert [(p.mark_price, p.amount) for p in broker.funding_payments] == \
        [(101.0, pytest.approx(-0.0101))]


def test_a_funding_drain_moves_the_liquidation_price_above_a_later_low():
    # 10x long 1 BTC at 100: margin 10, LP = (10 - 100) / (0.005 - 1) = 90.4523.
    # 08:00 funding at rate 0.005: paid 1 x 100 x 0.005 = 0.5 -> margin 9.5,
    # LP = (9.5 - 100) / (0.005 - 1) = 90.5 / 0.995 = 90.9548.
    # The 08:00 bar opens at 100 and dips to 90.7: above the old LP, below the new one.
    rate = 0.005
    moved = (MARGIN - ENTRY * rate - ENTRY) / (MMR - 1)
    assert moved == pytest.approx(90.9548, abs=1e-4)
    bars = [flat(ENTRY)] * 8 + [(100.0, 100.0, 90.7, 95.0)] + [flat(95.0)] * 2
    strategy, broker = run(bars, funding_rates=rate)
    assert [(p.dt.hour, p.amount) for p in broker.funding_payments] == [(8, pytest.approx(-0.5))]
    assert strategy.fills[-1] == (8, -SIZE, pytest.approx(moved), True)
    event = broker.liquidations[0]
    assert event.liquidation_price == pytest.approx(moved) and event.fill_price == pytest.approx(moved)
    # the control: without funding the same bar does not reach the LP of 90.4523
    _, unfunded = run(bars)
    assert unfunded.liquidations == []


def test_a_drain_past_the_open_liquidates_at_the_open():
    # rate 0.05 (the largest accepted): paid 5 -> margin 5, LP = (5 - 100) / (0.005 - 1) = 95.477,
    # above the 08:00 open of 95.2: liquidated at that open
    bars = [flat(ENTRY)] * 7 + [flat(95.2)] * 3
    strategy, broker = run(bars, funding_rates=0.05, funding_interval_hours=8)
    assert broker.funding_payments[0].amount == pytest.approx(-1 * 95.2 * 0.05)
    assert strategy.fills[-1] == (8, -SIZE, pytest.approx(95.2), True)


def test_funding_can_take_the_isolated_margin_below_zero_while_the_position_is_in_profit():
    # 10x long 1 BTC at 100: margin 10. Rate 0.05 every 8 h, the price up to 120 then 130:
    # 08:00 pays 1 x 120 x 0.05 = 6 -> margin 4; 16:00 pays 1 x 130 x 0.05 = 6.5 -> margin
    # -2.5, the position still 30 in profit (Bybit's "Position margin" help page describes
    # this state). LP = (100 - (-2.5)) / (1 - 0.005) = 102.5 / 0.995 = 103.0151.
    # 17:00 falls from 130 to 100: liquidated at the LP; left of the margin: -2.5 + 1 x
    # (103.0151 - 100) = 0.5151 = the maintenance margin 0.005 x 103.0151, the clearance
    # fee; nothing returns, margin_lost = -2.5, no deficit; the wallet keeps 1000 - 10.
    bars = [flat(ENTRY)] * 8 + [flat(120.0)] + [flat(130.0)] * 8 + \
        [(130.0, 130.0, 100.0, 100.0)] + [flat(100.0)] * 2
    strategy, broker = run(bars, funding_rates=0.05)
    assert [(p.dt.hour, p.amount) for p in broker.funding_payments] == \
        [(8, pytest.approx(-6.0)), (16, pytest.approx(-6.5))]
    assert strategy.margins[16] == pytest.approx(-2.5)
    liquidation_price = 102.5 / 0.995
    assert liquidation_price == pytest.approx(103.0151, abs=1e-4)
    event = broker.liquidations[0]
    assert (event.liquidation_price, event.fill_price) == \
        (pytest.approx(liquidation_price), pytest.approx(liquidation_price))
    assert event.margin_lost == pytest.approx(-2.5) and event.deficit == 0.0
    assert event.fee == pytest.approx(MMR * liquidation_price) == pytest.approx(0.5151, abs=1e-4)
    assert strategy.fills[-1] == (17, -SIZE, pytest.approx(liquidation_price), True)
    assert broker.getcash() == pytest.approx(CASH - MARGIN)


def test_per_feed_rates_override_the_param():
    cerebro = bt.Cerebro(stdstats=False)
    first, second = bars_feed([flat(ENTRY)] * 10, name="BTC"), bars_feed([flat(50.0)] * 10, name="ETH")
    cerebro.adddata(first)
    cerebro.adddata(second)
    broker = MarginBroker(cash=CASH, leverage=LEVERAGE, funding_rates=RATE)
    broker.set_funding_rates(second, 0.0003)
    cerebro.broker = broker

    class BuyBoth(bt.Strategy):
        def next(self):
            if len(self) == 1:
                self.buy(data=self.datas[0], size=1)
                self.buy(data=self.datas[1], size=2)

    cerebro.addstrategy(BuyBoth)
    cerebro.run()
    # BTC: 1 x 100 x 0.0001 = 0.01; ETH: 2 x 50 x 0.0003 = 0.03
    assert sorted((p.data, round(p.amount, 10)) for p in broker.funding_payments) == \
        [("BTC", -0.01), ("ETH", -0.03)]


@pytest.mark.parametrize("bad", [0.06, float("nan"), "x", True])
def test_bad_rates_are_refused(bad):
    with pytest.raises(ValueError):
        MarginBroker(funding_rates=bad)


# ----------------------------------------------------------------------------
# the mark price
# ----------------------------------------------------------------------------
def dip_bars():
    # bar 2 dips: trade low 89 (below the LP of 90.4523), close 95
    return [flat(ENTRY)] * 2 + [(100.0, 100.0, 89.0, 95.0)] + [flat(95.0)]


def test_a_mark_low_above_the_lp_does_not_liquidate_though_the_trade_low_does():
    mark = bars_frame([flat(ENTRY)] * 2 + [(100.0, 100.0, 91.0, 96.0)] + [flat(96.0)])
    strategy, broker = run(dip_bars(), mark=mark)
    assert broker.liquidations == []
    # equity is marked at the mark close: 1000 + 1 x (96 - 100) = 996
    assert strategy.values[2] == pytest.approx(CASH + SIZE * (96.0 - ENTRY))
    # the control: on the trade price alone the 89 low liquidates at 90.4523
    _, last_price = run(dip_bars())
    assert last_price.liquidations[0].fill_price == pytest.approx(LP_AT_ENTRY)


def test_a_mark_low_below_the_lp_liquidates_at_the_lp_though_the_trade_low_does_not():
    bars = [flat(ENTRY)] * 2 + [(100.0, 100.0, 91.0, 95.0)] + [flat(95.0)]
    mark = bars_frame([flat(ENTRY)] * 2 + [(100.0, 100.0, 90.0, 95.0)] + [flat(95.0)])
    strategy, broker = run(bars, mark=mark)
    assert strategy.fills[-1] == (2, -SIZE, pytest.approx(LP_AT_ENTRY), True)


def test_a_mark_gap_past_the_lp_fills_at_the_trade_open():
    bars = [flat(ENTRY)] * 2 + [flat(92.0)] * 2
    mark = bars_frame([flat(ENTRY)] * 2 + [flat(90.0)] * 2)
    strategy, broker = run(bars, mark=mark)
    assert strategy.fills[-1] == (2, -SIZE, 92.0, True)


def test_a_series_of_mark_closes_and_a_mark_feed_work_alike():
    # closes 100, 100, 91, 96: the close-only mark moves 100 -> 91 on bar 2, above the LP
    closes = bars_frame([flat(ENTRY)] * 2 + [flat(91.0)] + [flat(96.0)])["close"]
    _, broker = run(dip_bars(), mark=closes)
    assert broker.liquidations == []
    mark_feed = bars_feed([flat(ENTRY)] * 2 + [(100.0, 100.0, 91.0, 96.0)] + [flat(96.0)])
    cerebro_feed = bars_feed(dip_bars())
    strategy, broker = run(None, feed=cerebro_feed, mark=mark_feed, extra_feeds=[mark_feed])
    assert broker.liquidations == []
    assert strategy.values[2] == pytest.approx(CASH - 4.0)


def test_missing_mark_bars_fall_back_to_the_trade_price_with_one_warning():
    mark = bars_frame([flat(ENTRY)] * 2)            # two bars only
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, broker = run(dip_bars(), mark=mark)
    assert len([w for w in caught if issubclass(w.category, MarkPriceWarning)]) == 1
    assert broker.liquidations[0].fill_price == pytest.approx(LP_AT_ENTRY)


def test_orders_fill_on_the_trade_price_with_a_mark():
    mark = bars_frame([flat(105.0)] * 4)
    strategy, _ = run([flat(ENTRY)] * 4, mark=mark)
    assert strategy.fills[0] == (1, SIZE, ENTRY, False)


def test_2021_05_19_the_mark_stays_above_a_3x_long_lp_that_the_trade_low_crosses(shared_data):
    # Binance BTCUSDT perpetual, 2021-05-19: trade low 28688.0, mark low 29563.37 (13:00).
    # A 3x long opened at the 00:00 open of 42882.54 has
    # LP = 42882.54 * (1 - 1/3) / (1 - 0.005) = 28732.1: between the two lows.
    from backtrader_leverage.data import ArrayFeed, load_csv, load_mark_csv
    window = slice("2021-05-18 23:00", "2021-05-19 23:00")
    trade = load_csv(shared_data / "binance_um_BTCUSDT_1h.csv").loc[window]
    mark = load_mark_csv(shared_data / "binance_um_BTCUSDT_mark_1h.csv").loc[window]
    assert trade["low"].min() == 28688.0 and mark["low"].min() == 29563.37
    expected_lp = 42882.54 * (1 - 1 / 3) / (1 - MMR)
    assert expected_lp == pytest.approx(28732.1, abs=0.1)

    def liquidations(with_mark):
        cerebro = bt.Cerebro(stdstats=False)
        data = ArrayFeed(dataname=trade)
        cerebro.adddata(data)
        broker = MarginBroker(cash=CASH * 10, leverage=3, maintenance_margin_rate=MMR)
        cerebro.broker = broker
        if with_mark:
            broker.set_mark_price(data, mark)
        cerebro.addstrategy(Hold, size=0.1)
        cerebro.run()
        return broker.liquidations

    on_trade_price = liquidations(with_mark=False)
    assert len(on_trade_price) == 1
    assert on_trade_price[0].dt == dt.datetime(2021, 5, 19, 13)
    assert on_trade_price[0].fill_price == pytest.approx(expected_lp, abs=0.01)
    assert liquidations(with_mark=True) == []


def test_margin_figures_answer_what_the_three_queries_answer():
    # 10x long 1 BTC from 100, mmr 0.5 %: margin 10, maintenance at 95 = 95 x 0.005 = 0.475,
    # LP = (10 - 100) / (0.005 - 1) = 90.4523; flat: (0.0, 0.0, None)
    seen = []

    class Ask(Hold):
        def next(self):
            super().next()
            broker = self.broker
            seen.append((broker.margin_figures(self.data, 95.0),
                         (broker.position_margin(self.data),
                          broker.maintenance_margin(self.data, price=95.0),
                          broker.liquidation_price(self.data))))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bars_feed([flat(ENTRY)] * 4))
    cerebro.broker = MarginBroker(cash=CASH, leverage=LEVERAGE, maintenance_margin_rate=MMR)
    cerebro.addstrategy(Ask)
    cerebro.run()
    assert seen[0][0] == (0.0, 0.0, None)                   # bar 0: flat
    for figures, one_by_one in seen[1:]:
        assert figures == one_by_one
        assert figures == pytest.approx((MARGIN, 0.475, LP_AT_ENTRY))
    assert LP_AT_ENTRY == pytest.approx(90.4523, abs=1e-4)


@pytest.mark.parametrize("source, rates", [
    # the spot file has 28 gaps (128 missing hours) in 2018: windows after a gap are longer
    ("binance_BTCUSDT_1h.csv", 0.0001),
    # the real settlement series, its data starting 2020-01-01: the first bars lie before it
    ("binance_um_BTCUSDT_1h.csv", "series"),
])
def test_the_quiet_stretches_skip_no_payment(shared_data, monkeypatch, source, rates):
    # MarginBroker asks payment_due only past the quiet stretch of its last answer: asked on
    # every bar (quiet_until -inf), the payments, warnings and ledger must be the same
    from backtrader_leverage.broker.perpetual import FundingSchedule
    from backtrader_leverage.data import load_csv, load_funding_csv
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # the spot file's gaps: wanted here
        frame = load_csv(shared_data / source)
    frame = frame.loc["2018-01-01":"2018-06-30"] if rates != "series" else \
        frame.loc["2019-12-20":"2020-03-31"]
    if rates == "series":
        rates = load_funding_csv(shared_data / "binance_um_BTCUSDT_funding_8h.csv")
    asked = []
    payment_due = FundingSchedule.payment_due

    def counted(self, start, end):
        asked.append((start, end))
        return payment_due(self, start, end)

    def outcome():
        asked.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cerebro = bt.Cerebro(stdstats=False)
            cerebro.adddata(bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes,
                                                compression=60))
            broker = cerebro.broker = MarginBroker(cash=CASH, leverage=1.0, funding_rates=rates)
            cerebro.addstrategy(Hold, size=0.01)        # 1x long: held to the end
            cerebro.run()
        return (list(broker.funding_payments), list(broker.ledger),
                [str(w.message) for w in caught], len(asked))

    monkeypatch.setattr(FundingSchedule, "payment_due", counted)
    payments, ledger, warned, asked_quiet = outcome()
    monkeypatch.setattr(FundingSchedule, "quiet_until", lambda self, start: -math.inf)
    assert outcome()[:3] == (payments, ledger, warned)
    assert len(payments) > 100 and asked_quiet < len(frame) / 2
