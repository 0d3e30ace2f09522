"""MarginBroker behaviour on hand-made bars: every expected number is written as arithmetic.

Bars are hourly from 2024-01-01 00:00 (naive UTC). A strategy's ``next`` at
bar i sees that bar's close; a market order it sends fills at bar i+1's open.
"""
import datetime as dt

import backtrader as bt
import pandas as pd
import pytest

from backtrader_leverage.broker import MarginBroker

START = dt.datetime(2024, 1, 1)
HOUR = dt.timedelta(hours=1)
FLAT = (100, 100, 100, 100)
MMR = 0.005


def feed(bars, name=None):
    """A PandasData feed from (open, high, low, close) tuples, one per hour."""
    frame = pd.DataFrame(bars, columns=["open", "high", "low", "close"], dtype=float,
                         index=pd.DatetimeIndex([START + i * HOUR for i in range(len(bars))]))
    frame["volume"] = 1.0
    return bt.feeds.PandasData(dataname=frame, name=name, timeframe=bt.TimeFrame.Minutes,
                               compression=60)


class Scripted(bt.Strategy):
    """Runs ``script[bar_index](strategy)`` at each scripted bar; records what it is told."""
    params = (("script", None),)

    def __init__(self):
        self.orders, self.trades, self.snapshots = [], [], []
        self.accepted = set()

    def notify_order(self, order):
        if order.status == order.Accepted:
            self.accepted.add(order.ref)
        if order.status in (order.Completed, order.Canceled, order.Margin, order.Rejected):
            self.orders.append(dict(ref=order.ref, status=order.getstatusname(),
                                    size=order.executed.size, price=order.executed.price,
                                    comm=order.executed.comm, bar=len(self) - 1,
                                    liquidation=bool(order.info.get("liquidation", False))))

    def notify_trade(self, trade):
        if trade.isclosed:
            self.trades.append(dict(pnl=trade.pnl, pnlcomm=trade.pnlcomm))

    def next(self):
        broker = self.broker
        self.snapshots.append(dict(
            value=broker.getvalue(), cash=broker.getcash(),
            margin=sum(broker.position_margin(d) for d in self.datas),
            size=self.position.size, price=self.position.price))
        action = (self.p.script or {}).get(len(self) - 1)
        if action:
            action(self)


def run(bars, script, feeds=None, **broker_params):
    commission = broker_params.pop("commission", 0.0)
    cerebro = bt.Cerebro(stdstats=False)
    for data in feeds or [feed(bars)]:
        cerebro.adddata(data)
    cerebro.broker = MarginBroker(**broker_params)
    cerebro.broker.setcommission(commission=commission)
    cerebro.addstrategy(Scripted, script=script)
    strategy = cerebro.run()[0]
    return strategy, cerebro.broker


def statuses(strategy):
    return [(o["status"], o["bar"]) for o in strategy.orders]


# ----------------------------------------------------------------------------
# 1. opening: margin, fee, balance checks
# ----------------------------------------------------------------------------

def test_opening_moves_margin_and_fee_out_of_the_wallet():
    cash, leverage, fee_rate = 1000.0, 10.0, 0.001
    strategy, broker = run([FLAT, (100, 101, 99, 102)], {0: lambda s: s.buy(size=1)},
                           cash=cash, leverage=leverage, commission=fee_rate)
    margin = 1 * 100 / leverage          # 10
    fee = 1 * 100 * fee_rate             # 0.1
    after = strategy.snapshots[1]
    assert after["margin"] == pytest.approx(margin)
    assert after["cash"] == pytest.approx(cash - margin - fee)             # 989.9
    # value = wallet + margin + PnL at the close 102
    assert after["value"] == pytest.approx(cash - margin - fee + margin + (102 - 100))


def test_order_needing_more_than_the_balance_is_rejected_whole():
    # margin 10 + fee 0.1 = 10.1 > 10.09: refused at submission (never accepted)
    strategy, broker = run([FLAT, FLAT], {0: lambda s: s.buy(size=1)},
                           cash=10.09, leverage=10, commission=0.001)
    assert statuses(strategy) == [("Margin", 1)]
    assert strategy.accepted == set()
    assert broker.getcash() == pytest.approx(10.09)
    assert strategy.snapshots[-1]["size"] == 0


def test_equality_with_the_balance_is_allowed():
    # margin 10 + fee 0.1 = 10.1 == cash
    strategy, broker = run([FLAT, FLAT], {0: lambda s: s.buy(size=1)},
                           cash=10.1, leverage=10, commission=0.001)
    assert statuses(strategy) == [("Completed", 1)]
    assert broker.getcash() == pytest.approx(0.0, abs=1e-12)


def test_balance_is_checked_again_at_the_fill():
    # accepted at the creation close 100 (needs 10.1), but the next open is 110: 11 + 0.11 > 10.1
    strategy, broker = run([FLAT, (110, 110, 110, 110)], {0: lambda s: s.buy(size=1)},
                           cash=10.1, leverage=10, commission=0.001)
    assert statuses(strategy) == [("Margin", 1)]
    assert len(strategy.accepted) == 1                   # accepted, then refused at the fill
    assert broker.getcash() == pytest.approx(10.1)


def test_reversal_is_judged_after_its_closing_part():
    # long 1 at 100 (margin 10, fee 0.1) from cash 10.1 leaves 0.
    # sell 2 at 100: closing releases 10 - fee 0.1 = 9.9 < 10 + 0.1 needed for the new short
    script = {0: lambda s: s.buy(size=1), 1: lambda s: s.sell(size=2)}
    strategy, broker = run([FLAT, FLAT, FLAT, FLAT], script, cash=10.1, leverage=10,
                           commission=0.001)
    assert statuses(strategy) == [("Completed", 1), ("Margin", 2)]
    assert strategy.snapshots[-1]["size"] == 1
    assert broker.position_margin(strategy.data) == pytest.approx(10.0)
    # with cash 20.2: after the long 10.1 is left; closing gives 10.1 + 10 - 0.1 = 20.0 >= 10.1
    strategy, broker = run([FLAT, FLAT, FLAT, FLAT], script, cash=20.2, leverage=10,
                           commission=0.001)
    assert statuses(strategy) == [("Completed", 1), ("Completed", 2)]
    assert strategy.snapshots[-1]["size"] == -1
    assert broker.getcash() == pytest.approx(20.2 - 10.1 + 10 - 0.1 - 10 - 0.1)


def test_order_needing_a_tier_below_its_leverage_is_rejected():
    # BTCUSDT table: 50x leverage is allowed up to notional 8,000,000 (tier 3: max 50x),
    # 9 BTC at 1,000,000 = 9,000,000 notional is tier 4 (max 20x)
    price = 1_000_000.0
    bars = [(price,) * 4] * 3
    script = {0: lambda s: s.buy(size=9)}
    strategy, broker = run(bars, script, cash=1e7, leverage=50, tiers="binance_btcusdt_perp")
    assert statuses(strategy) == [("Margin", 1)]
    strategy, broker = run(bars, {0: lambda s: s.buy(size=7)}, cash=1e7, leverage=50,
                           tiers="binance_btcusdt_perp")
    assert statuses(strategy) == [("Completed", 1)]


# ----------------------------------------------------------------------------
# 2. adding, partial close, reversal
# ----------------------------------------------------------------------------

def test_adding_averages_and_partial_close_releases_pro_rata():
    bars = [FLAT, FLAT, (110,) * 4, (110,) * 4, (120,) * 4]
    script = {0: lambda s: s.buy(size=1), 2: lambda s: s.buy(size=1), 3: lambda s: s.sell(size=0.5)}
    strategy, broker = run(bars, script, cash=1000, leverage=10)
    entry = (100 + 110) / 2                        # 105
    margin = 100 / 10 + 110 / 10                   # 21
    added = strategy.snapshots[3]
    assert added["price"] == pytest.approx(entry)
    assert added["margin"] == pytest.approx(margin)
    final = strategy.snapshots[4]
    released = margin * 0.5 / 2                    # 5.25
    pnl = 0.5 * (120 - entry)                      # 7.5
    assert final["size"] == pytest.approx(1.5)
    assert final["margin"] == pytest.approx(margin - released)
    assert final["cash"] == pytest.approx(1000 - margin + released + pnl)


def test_reversal_closes_then_opens_at_the_fill():
    bars = [FLAT, FLAT, (90,) * 4, (90,) * 4]
    script = {0: lambda s: s.buy(size=1), 1: lambda s: s.sell(size=3)}
    strategy, broker = run(bars, script, cash=1000, leverage=5)
    after = strategy.snapshots[2]
    # fill at 100 (open of bar 2 is 90? no: bar 2 is (90,)*4) -> fill at 90
    pnl = 1 * (90 - 100)                           # -10
    assert after["size"] == -2
    assert after["price"] == pytest.approx(90)
    assert after["margin"] == pytest.approx(2 * 90 / 5)
    assert after["cash"] == pytest.approx(1000 - 100 / 5 + 100 / 5 + pnl - 2 * 90 / 5)


# ----------------------------------------------------------------------------
# 3. liquidation outcome
# ----------------------------------------------------------------------------

LP_LONG_10X = 90 / 0.995          # long 1 at 100, margin 10, mmr 0.005


def test_long_liquidated_intrabar_at_the_liquidation_price():
    bars = [FLAT, FLAT, (95, 96, 90, 93), FLAT]
    strategy, broker = run(bars, {0: lambda s: s.buy(size=1)}, cash=1000, leverage=10)
    (event,) = broker.liquidations
    assert event.fill_price == pytest.approx(LP_LONG_10X)
    assert event.liquidation_price == pytest.approx(LP_LONG_10X)
    assert event.bankruptcy_price == pytest.approx(90.0)
    assert (event.dt, event.opened_dt) == (START + 2 * HOUR, START + 1 * HOUR)
    assert (event.side, event.size, event.entry_price, event.data) == ("long", 1.0, 100.0, "data0")
    assert event.margin_lost == pytest.approx(10.0)
    assert event.fee == pytest.approx(10 + (LP_LONG_10X - 100))       # 0.4523 clearance fee
    assert event.deficit == 0.0
    assert broker.getcash() == pytest.approx(1000 - 10)
    assert broker.insurance_fund == pytest.approx(10 + (LP_LONG_10X - 100))
    assert strategy.snapshots[2]["size"] == 0


def test_liquidation_fee_rate_returns_the_rest():
    rate = 0.001
    bars = [FLAT, FLAT, (95, 96, 90, 93)]
    strategy, broker = run(bars, {0: lambda s: s.buy(size=1)}, cash=1000, leverage=10,
                           liquidation_fee_rate=rate)
    (event,) = broker.liquidations
    remaining = 10 + (LP_LONG_10X - 100)           # 0.4523
    fee = rate * LP_LONG_10X                        # 0.0905
    assert event.fee == pytest.approx(fee)
    assert event.margin_lost == pytest.approx(10 - (remaining - fee))
    assert broker.getcash() == pytest.approx(1000 - 10 + remaining - fee)


def test_short_liquidated_when_the_high_reaches_its_price():
    bars = [FLAT, FLAT, (105, 112, 104, 108)]
    strategy, broker = run(bars, {0: lambda s: s.sell(size=1)}, cash=1000, leverage=10)
    (event,) = broker.liquidations
    assert event.side == "short"
    assert event.fill_price == pytest.approx(110 / 1.005)
    assert event.bankruptcy_price == pytest.approx(110.0)


# ----------------------------------------------------------------------------
# 4. past the bankruptcy price: absorb or carry
# ----------------------------------------------------------------------------

GAP_BARS = [FLAT, FLAT, (125, 126, 124, 125), (125,) * 4, (125,) * 4, (125,) * 4]


def test_gap_past_bankruptcy_absorbed_by_the_insurance_fund():
    # short 2 at 100 with 10x: margin 20, BP 110; opens at 125: deficit 2 * (125 - 110) = 30
    strategy, broker = run(GAP_BARS, {0: lambda s: s.sell(size=2)}, cash=1000, leverage=10)
    (event,) = broker.liquidations
    assert event.fill_price == 125.0
    assert event.deficit == pytest.approx(2 * (125 - 110))
    assert event.fee == 0.0
    assert broker.getcash() == pytest.approx(1000 - 20)
    assert broker.insurance_fund == pytest.approx(-30)
    assert broker.negative_balance_episodes == []
    # the trade shows what the wallet lost: pnl -50, commission = fee - absorbed = -30
    assert strategy.trades == [dict(pnl=pytest.approx(-2 * 25), pnlcomm=pytest.approx(-20))]


def test_gap_past_bankruptcy_carried_by_the_wallet():
    # cash 20 all in margin; the deficit 30 takes the wallet to -30; a new buy is refused;
    # a deposit of 50 ends the episode
    script = {0: lambda s: s.sell(size=2), 2: lambda s: s.buy(size=0.1),
              3: lambda s: s.broker.add_cash(50)}
    strategy, broker = run(GAP_BARS, script, cash=20, leverage=10, negative_balance="carry")
    (event,) = broker.liquidations
    assert event.deficit == pytest.approx(30)
    assert broker.insurance_fund == 0.0
    assert strategy.snapshots[2]["cash"] == pytest.approx(20 - 20 - 30)
    assert strategy.snapshots[2]["value"] == pytest.approx(-30)
    assert ("Margin", 3) in statuses(strategy)
    (episode,) = broker.negative_balance_episodes
    assert episode.start == START + 2 * HOUR
    assert episode.lowest_balance == pytest.approx(-30)
    assert episode.end == START + 4 * HOUR         # add_cash is credited at the next bar's mark
    assert broker.getcash() == pytest.approx(-30 + 50)
    assert strategy.trades == [dict(pnl=pytest.approx(-50), pnlcomm=pytest.approx(-50))]


# ----------------------------------------------------------------------------
# 5. isolation across feeds
# ----------------------------------------------------------------------------

def test_liquidation_leaves_other_positions_alone():
    crash = [FLAT, FLAT, (95, 96, 85, 90), (90,) * 4]
    calm = [FLAT, FLAT, (100, 101, 99, 100), FLAT]
    script = {0: lambda s: (s.buy(data=s.datas[0], size=1), s.buy(data=s.datas[1], size=2))}
    strategy, broker = run(None, script, feeds=[feed(crash, "crash"), feed(calm, "calm")],
                           cash=1000, leverage=10)
    (event,) = broker.liquidations
    assert event.data == "crash"
    calm_data = strategy.datas[1]
    assert broker.position_margin(calm_data) == pytest.approx(2 * 100 / 10)
    assert broker.getposition(calm_data).size == 2
    # wallet: 1000 - 10 (crash margin) - 20 (calm margin); the crash margin is simply gone
    assert broker.getcash() == pytest.approx(1000 - 10 - 20)


# ----------------------------------------------------------------------------
# 6. value, cash and position value
# ----------------------------------------------------------------------------

def test_order_target_value_means_notional_whatever_the_leverage():
    leverage = 5
    bars = [FLAT, FLAT, (104,) * 4]
    strategy, broker = run(bars, {0: lambda s: s.order_target_value(target=500.0)},
                           cash=1000, leverage=leverage)
    snap = strategy.snapshots[2]
    assert snap["size"] == pytest.approx(500 / 100)          # 5 BTC
    assert snap["margin"] == pytest.approx(500 / leverage)   # 100
    # getvalue = wallet + margin + PnL = 900 + 100 + 5 * 4
    assert snap["value"] == pytest.approx(900 + 100 + 5 * (104 - 100))
    assert broker.getvalue(datas=[strategy.data]) == pytest.approx(5 * 104)


def test_order_target_percent_floors_to_the_lot():
    bars = [(300,) * 4] * 3
    strategy, broker = run(bars, {0: lambda s: s.order_target_percent(target=0.5)},
                           cash=1000, leverage=3)
    # 50 % of 1000 = 500 of notional at 300 = 1.6666 -> 1.666 BTC
    assert strategy.snapshots[2]["size"] == pytest.approx(1.666)


# ----------------------------------------------------------------------------
# 7. the liquidation as an order
# ----------------------------------------------------------------------------

def test_liquidation_is_a_flagged_order_and_cancels_the_feed_orders():
    bars = [FLAT, FLAT, FLAT, (95, 96, 90, 93)]
    script = {0: lambda s: s.buy(size=1),
              1: lambda s: s.sell(size=1, exectype=bt.Order.Limit, price=120)}
    strategy, broker = run(bars, script, cash=1000, leverage=10)
    liquidation = [o for o in strategy.orders if o["liquidation"]]
    assert liquidation == [dict(ref=liquidation[0]["ref"], status="Completed", size=-1.0,
                                price=pytest.approx(LP_LONG_10X),
                                comm=pytest.approx(10 + LP_LONG_10X - 100), bar=3,
                                liquidation=True)]
    assert ("Canceled", 3) in statuses(strategy)
    # pnl = 1 * (90.4523 - 100); pnlcomm = pnl - fee = -margin
    assert strategy.trades == [dict(pnl=pytest.approx(LP_LONG_10X - 100), pnlcomm=pytest.approx(-10))]


# ----------------------------------------------------------------------------
# 8. leverage settings
# ----------------------------------------------------------------------------

def test_set_leverage_is_validated():
    data = feed([FLAT])
    broker = MarginBroker(cash=100)
    with pytest.raises(ValueError, match="> 0"):
        broker.set_leverage(data, 0)
    with pytest.raises(ValueError, match="above the tier table's maximum of 200x"):
        broker.set_leverage(data, 250)        # flat mmr 0.005: max 1 / 0.005 = 200x
    with pytest.raises(ValueError, match="maximum of 125x"):
        MarginBroker(leverage=126, tiers="binance_btcusdt_perp")
    with pytest.raises(ValueError, match="> 0"):
        MarginBroker(leverage=-1)
    with pytest.raises(ValueError, match="negative_balance"):
        MarginBroker(negative_balance="ignore")


def test_set_leverage_refused_while_a_position_is_open():
    errors = []

    def change(strategy):
        try:
            strategy.broker.set_leverage(strategy.data, 3)
        except ValueError as error:
            errors.append(str(error))

    strategy, broker = run([FLAT] * 4, {0: lambda s: s.buy(size=1), 2: change}, cash=1000)
    assert errors and "while a position is open" in errors[0]


def test_leverage_precedence():
    data = feed([FLAT])
    broker = MarginBroker(leverage=2)
    assert broker.get_leverage(data) == 2
    broker.setcommission(commission=0.0004, leverage=4)
    assert broker.get_leverage(data) == 4
    broker.set_leverage(data, 8)
    assert broker.get_leverage(data) == 8


# ----------------------------------------------------------------------------
# bar order: gap, open fills, intrabar path
# ----------------------------------------------------------------------------

def test_gap_liquidates_at_the_open_before_pending_orders():
    # long 1 at 100 with 10x; a buy is pending when the next bar opens at 85 < LP:
    # liquidated at 85 (deficit 1 * (90 - 85) = 5) and the buy is cancelled, not filled
    bars = [FLAT, FLAT, FLAT, (85, 86, 84, 85)]
    script = {0: lambda s: s.buy(size=1), 2: lambda s: s.buy(size=1)}
    strategy, broker = run(bars, script, cash=1000, leverage=10)
    (event,) = broker.liquidations
    assert event.fill_price == 85.0
    assert event.deficit == pytest.approx(1 * (90 - 85))
    assert ("Canceled", 3) in statuses(strategy)
    assert strategy.snapshots[3]["size"] == 0


def test_protective_stop_between_open_and_liquidation_fills_first():
    bars = [FLAT, FLAT, FLAT, (99, 99, 85, 88)]
    script = {0: lambda s: s.buy(size=1),
              1: lambda s: s.sell(size=1, exectype=bt.Order.Stop, price=95)}
    strategy, broker = run(bars, script, cash=1000, leverage=10)
    assert broker.liquidations == []
    assert ("Completed", 3) in statuses(strategy)
    assert strategy.trades == [dict(pnl=pytest.approx(95 - 100), pnlcomm=pytest.approx(95 - 100))]


def test_stop_beyond_the_liquidation_price_never_fills():
    bars = [FLAT, FLAT, FLAT, (99, 99, 85, 88)]
    script = {0: lambda s: s.buy(size=1),
              1: lambda s: s.sell(size=1, exectype=bt.Order.Stop, price=89)}
    strategy, broker = run(bars, script, cash=1000, leverage=10)
    (event,) = broker.liquidations
    assert event.fill_price == pytest.approx(LP_LONG_10X)
    stop = [o for o in strategy.orders if not o["liquidation"] and o["bar"] == 3]
    assert [o["status"] for o in stop] == ["Canceled"]


def test_adverse_extreme_first_when_ohlc_cannot_tell():
    # take-profit at 110 and LP 90.45 both inside the bar: the liquidation wins
    bars = [FLAT, FLAT, FLAT, (100, 115, 85, 100)]
    script = {0: lambda s: s.buy(size=1),
              1: lambda s: s.sell(size=1, exectype=bt.Order.Limit, price=110)}
    strategy, broker = run(bars, script, cash=1000, leverage=10)
    assert len(broker.liquidations) == 1
    assert [o["status"] for o in strategy.orders if o["bar"] == 3 and not o["liquidation"]] == ["Canceled"]


def test_position_opened_at_the_open_is_checked_the_same_bar():
    bars = [FLAT, (100, 101, 89, 95)]
    strategy, broker = run(bars, {0: lambda s: s.buy(size=1)}, cash=1000, leverage=10)
    (event,) = broker.liquidations
    assert event.dt == event.opened_dt == START + HOUR
    assert event.fill_price == pytest.approx(LP_LONG_10X)


def test_bracket_children_are_active_from_the_bar_after_the_entry():
    # the entry fills at bar 1's open; bar 1's low 94 would hit the stop at 95 but the
    # children are not active yet; bar 2's low 94 fills the stop at 95
    bars = [FLAT, (100, 101, 94, 100), (100, 101, 94, 100), FLAT]
    script = {0: lambda s: s.buy_bracket(size=1, exectype=bt.Order.Market,
                                         stopprice=95, limitprice=110)}
    strategy, broker = run(bars, script, cash=1000, leverage=5)
    completed = [(o["bar"], o["price"]) for o in strategy.orders if o["status"] == "Completed"]
    assert completed == [(1, 100.0), (2, 95.0)]
    assert ("Canceled", 2) in statuses(strategy)           # the take-profit sibling


def test_cheat_on_close_fill_comes_before_the_gap():
    # coc: the close order sent at bar 2 fills at bar 2's close (100), before bar 3 gaps to 80
    bars = [FLAT, FLAT, FLAT, (80, 80, 80, 80)]
    script = {0: lambda s: s.buy(size=1), 2: lambda s: s.close()}
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed(bars))
    cerebro.broker = MarginBroker(cash=1000, leverage=10, coc=True)
    cerebro.addstrategy(Scripted, script=script)
    strategy = cerebro.run()[0]
    assert cerebro.broker.liquidations == []
    assert [(o["status"], o["price"]) for o in strategy.orders] == [("Completed", 100.0),
                                                                    ("Completed", 100.0)]
    assert cerebro.broker.getcash() == pytest.approx(1000)


def test_add_margin_moves_the_liquidation_price():
    seen = {}

    def add(strategy):
        seen["before"] = strategy.broker.liquidation_price(strategy.data)
        strategy.broker.add_margin(strategy.data, 5.0)
        seen["after"] = strategy.broker.liquidation_price(strategy.data)

    strategy, broker = run([FLAT] * 3, {0: lambda s: s.buy(size=1), 1: add}, cash=1000, leverage=10)
    assert seen["before"] == pytest.approx(90 / 0.995)
    # margin 15: LP = (15 - 100) / (0.005 - 1) = 85 / 0.995
    assert seen["after"] == pytest.approx(85 / 0.995)
    assert broker.getcash() == pytest.approx(1000 - 10 - 5)
    assert broker.maintenance_margin(strategy.data) == pytest.approx(100 * MMR)
    assert broker.maintenance_margin(strategy.data, price=80) == pytest.approx(80 * MMR)


def test_sizes_below_one_lot_are_rejected():
    strategy, broker = run([FLAT] * 3, {0: lambda s: s.buy(size=0.0004)}, cash=1000)
    assert statuses(strategy) == [("Rejected", 1)]
