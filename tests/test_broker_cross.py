"""Cross margin beside isolated on hand-made two-feed bars; every number is written as arithmetic.

Two hourly feeds A and B from 2024-01-01 (naive UTC), mmr 0.5 %, no fees.
At bar 0 the strategy buys 5 of each at 10x (market orders: they fill at
bar 1's open, 100): notional 500 each, initial margin 50 each. Isolated
liquidation price of each: (50 - 500) / (5 * 0.005 - 5) = 450 / 4.975 = 90.4523.
"""
import math

import backtrader as bt
import pytest

from _bars import bars_feed, flat
from backtrader_leverage.broker import MarginBroker

MMR = 0.005
SIZE = 5.0
LEVERAGE = 10.0
ISOLATED_LP = 450 / 4.975  # 90.4523


class TwoFeeds(bt.Strategy):
    """Buys SIZE of A and B at bar 0 (plus extra orders); records fills, events and values."""
    params = (("extra", None),)

    def __init__(self):
        self.fills, self.refused, self.cancelled, self.values = [], [], [], []
        self.liquidation_prices = {}

    def notify_order(self, order):
        name = order.data._name
        if order.status == order.Completed:
            self.fills.append((len(self) - 1, name, order.executed.size, order.executed.price,
                               bool(order.info.get("liquidation"))))
        elif order.status == order.Margin:
            self.refused.append((len(self) - 1, name))
        elif order.status == order.Canceled:
            self.cancelled.append((len(self) - 1, name))

    def next(self):
        bar = len(self) - 1
        self.values.append(self.broker.getvalue())
        self.liquidation_prices[bar] = {d._name: self.broker.liquidation_price(d) for d in self.datas}
        if bar == 0:
            for data in self.datas:
                self.buy(data=data, size=SIZE)
        if self.p.extra:
            self.p.extra(self, bar)


def run(bars_a, bars_b, margin_mode, cash, extra=None, **params):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bars_feed(bars_a, name="A"))
    cerebro.adddata(bars_feed(bars_b, name="B"))
    cerebro.broker = MarginBroker(cash=cash, leverage=LEVERAGE, maintenance_margin_rate=MMR,
                                  margin_mode=margin_mode, **params)
    cerebro.addstrategy(TwoFeeds, extra=extra)
    return cerebro.run()[0], cerebro.broker


# A falls through its isolated LP and recovers to 95; B gaps up to 110, high 120, closes 115.
HEDGED_A = [flat(100), flat(100), (100, 100, 78, 95), flat(95)]
HEDGED_B = [flat(100), flat(100), (110, 120, 110, 115), flat(115)]


def test_isolated_liquidates_the_loser_while_cross_survives_on_the_winner():
    strategy, broker = run(HEDGED_A, HEDGED_B, "isolated", cash=100.0)
    assert [(e.data, e.margin_mode) for e in broker.liquidations] == [("A", "isolated")]
    event = broker.liquidations[0]
    assert event.fill_price == pytest.approx(ISOLATED_LP)
    assert event.margin_lost == pytest.approx(50.0)  # the whole isolated margin of A
    # end: wallet 0, B margin 50 + B uPnL 5 * (115 - 100) = 75 -> equity 125
    assert strategy.values[-1] == pytest.approx(0 + 50 + 5 * 15)

    strategy, broker = run(HEDGED_A, HEDGED_B, "cross", cash=100.0)
    assert broker.liquidations == []
    # worst case of bar 2 (θ = 1: A at its low 78, B at its low 110):
    # margin balance 100 + 5 * (78 - 100) + 5 * (110 - 100) = 40 > Σ MM 0.005 * (390 + 550) = 4.7
    # end: 100 + 5 * (95 - 100) + 5 * (115 - 100) = 150
    assert strategy.values[-1] == pytest.approx(100 + 5 * -5 + 5 * 15)
    # cross LP of A at bar 1 (B held at 100: MM_B = 2.5, uPnL_B = 0):
    # (100 - 2.5 + 0 - 500) / (5 * 0.005 - 5) = 402.5 / 4.975 = 80.9045
    assert strategy.liquidation_prices[1]["A"] == pytest.approx(402.5 / 4.975)


# Both fall in bar 2: A to 70 (past its isolated LP), B to 91 (just above it); both back to 100.
LOSING_A = [flat(100), flat(100), (100, 100, 70, 80), flat(100)]
LOSING_B = [flat(100), flat(100), (100, 100, 91, 95), flat(100)]


def resting_sell_limit(strategy, bar):
    if bar == 1:
        strategy.sell(data=strategy.datas[1], size=SIZE, exectype=bt.Order.Limit, price=130.0)


def test_both_lose_cross_loses_the_whole_wallet_isolated_one_margin():
    strategy, broker = run(LOSING_A, LOSING_B, "isolated", cash=150.0)
    assert [e.data for e in broker.liquidations] == ["A"]
    assert broker.liquidations[0].margin_lost == pytest.approx(50.0)
    # end: wallet 150 - 100 locked = 50, B margin 50, B uPnL 0 -> 100: one margin (50) lost
    assert strategy.values[-1] == pytest.approx(150 - 50)

    strategy, broker = run(LOSING_A, LOSING_B, "cross", cash=150.0, extra=resting_sell_limit)
    # θ rule: A 100 -> 70, B 100 -> 91 together.
    # surplus(θ) = 150 - 150θ - 45θ - 0.025 (100 - 30θ) - 0.025 (100 - 9θ) = 145 - 194.025θ
    theta = 145 / 194.025
    fill_a, fill_b = 100 - 30 * theta, 100 - 9 * theta  # 77.5802, 93.2741
    events = broker.liquidations
    assert [(e.data, e.margin_mode) for e in events] == [("A", "cross"), ("B", "cross")]
    assert events[0].dt == events[1].dt
    assert events[0].fill_price == pytest.approx(fill_a)
    assert events[1].fill_price == pytest.approx(fill_b)
    assert fill_a == pytest.approx(77.5802, abs=1e-4) and fill_b == pytest.approx(93.2741, abs=1e-4)
    # each fill is that feed's cross LP with the other held at its fill
    assert events[0].liquidation_price == pytest.approx(fill_a)
    assert events[1].liquidation_price == pytest.approx(fill_b)
    liquidation_fills = [f for f in strategy.fills if f[4]]
    assert [(f[1], f[2]) for f in liquidation_fills] == [("A", -SIZE), ("B", -SIZE)]
    # remaining = 150 + 5 (fill_a - 100) + 5 (fill_b - 100) = Σ MM = 0.025 (fill_a + fill_b) = 4.2714,
    # all of it the clearance fee (exchange style): the whole wallet, 150, is lost
    remaining = 150 + 5 * (fill_a - 100) + 5 * (fill_b - 100)
    assert remaining == pytest.approx(0.025 * (fill_a + fill_b))
    assert sum(e.fee for e in events) == pytest.approx(remaining)
    assert sum(e.margin_lost for e in events) == pytest.approx(150.0)
    assert broker.getcash() == pytest.approx(0.0, abs=1e-9)
    assert strategy.values[-1] == pytest.approx(0.0, abs=1e-9)
    # every open order is cancelled (B's resting limit at 130)
    assert strategy.cancelled == [(2, "B")]
    assert [flow.reason for flow in broker.ledger] == ["cross_liquidation"] * 2


# Both gap down at bar 2's open: A opens 75, B opens 80 (wallet 100 = the two initial margins).
GAP_A = [flat(100), flat(100), (75, 76, 70, 72), flat(72)]
GAP_B = [flat(100), flat(100), (80, 82, 78, 79), flat(79)]


@pytest.mark.parametrize("policy", ["absorb", "carry"])
def test_gap_through_the_cross_level_leaves_a_deficit(policy):
    strategy, broker = run(GAP_A, GAP_B, "cross", cash=100.0, negative_balance=policy)
    events = broker.liquidations
    assert [e.fill_price for e in events] == [75.0, 80.0]  # every position at its open
    # remaining = 100 + 5 (75 - 100) + 5 (80 - 100) = 100 - 125 - 100 = -125: no fee, deficit 125
    assert sum(e.deficit for e in events) == pytest.approx(125.0)
    assert sum(e.fee for e in events) == 0.0
    assert sum(e.margin_lost for e in events) == pytest.approx(100.0)
    # split by maintenance margin at the fills: 0.005 * 375 = 1.875 and 0.005 * 400 = 2
    assert events[0].deficit == pytest.approx(125 * 1.875 / 3.875)  # 60.4839
    assert events[1].deficit == pytest.approx(125 * 2 / 3.875)      # 64.5161
    if policy == "absorb":
        assert broker.getcash() == pytest.approx(0.0, abs=1e-9)
        assert broker.insurance_fund == pytest.approx(-125.0)
        assert broker.negative_balance_episodes == []
    else:
        assert broker.getcash() == pytest.approx(-125.0)
        assert broker.insurance_fund == 0.0
        assert broker.negative_balance_episodes[0].lowest_balance == pytest.approx(-125.0)


# A gaps up to 130 at bar 2, B down to 75; the strategy closes B at bar 2 (fill: bar 3's open, 75).
WINNER_A = [flat(100), flat(100), flat(130), flat(130), flat(130)]
LOSER_B = [flat(100), flat(100), flat(75), flat(75), flat(75)]


def test_cross_wallet_may_go_below_zero_while_the_winner_keeps_the_account_solvent():
    def close_loser(strategy, bar):
        if bar == 2:
            strategy.close(data=strategy.datas[1])

    strategy, broker = run(WINNER_A, LOSER_B, "cross", cash=100.0, extra=close_loser)
    # bar 2: margin balance 100 + 5 (130 - 100) + 5 (75 - 100) = 100 + 150 - 125 = 125
    # > Σ MM 0.005 (5·130 + 5·75) = 5.125: no liquidation
    assert broker.liquidations == []
    assert strategy.values[2] == pytest.approx(125.0)
    # B's close realizes 5 (75 - 100) = -125: the wallet 100 - 125 = -25, below zero,
    # while A's unrealized +150 keeps the account at -25 + 150 = 125 (no deficit to absorb)
    realized = [flow.amount for flow in broker.ledger if flow.reason == "realized_pnl"]
    assert realized == [pytest.approx(-125.0)]
    assert broker.getcash() == pytest.approx(-25.0)
    assert strategy.values[-1] == pytest.approx(125.0)
    assert broker.insurance_fund == 0.0
    # the wallet's own history still records the stretch below zero
    assert broker.negative_balance_episodes[0].lowest_balance == pytest.approx(-25.0)


def test_one_feed_cross_liquidation_at_the_worked_example():
    # WB 50, long 1 at 100 (2x: initial margin 50 <= 50): LP = (50 - 100) / (0.005 - 1) = 50.2513
    class One(bt.Strategy):
        def next(self):
            if len(self) == 1:
                self.buy(size=1.0)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bars_feed([flat(100), flat(100), (100, 100, 40, 45)]))
    cerebro.broker = MarginBroker(cash=50.0, leverage=2.0, margin_mode="cross")
    cerebro.addstrategy(One)
    cerebro.run()
    event, = cerebro.broker.liquidations
    assert event.fill_price == pytest.approx(50 / 0.995)
    assert event.bankruptcy_price == pytest.approx(50.0)  # 100 - 50 / 1


def test_cross_opening_needs_the_sum_of_initial_margins():
    def more(strategy, bar):
        if bar == 1:
            strategy.buy(data=strategy.datas[1], size=6.0)

    strategy, broker = run([flat(100)] * 4, [flat(100)] * 4, "cross", cash=105.0, extra=more)
    # at bar 1 A and B hold 5 each (Σ IM 100 <= 105); 6 more of B, judged when the broker
    # next looks (bar 2): Σ IM 50 + 110 = 160 > 105 -> refused with backtrader's Margin status
    assert strategy.refused == [(2, "B")]
    assert broker.getposition(broker.cerebro.datas[1]).size == SIZE


def test_set_tiers_per_feed_in_both_modes():
    for mode in ("isolated", "cross"):
        cerebro = bt.Cerebro(stdstats=False)
        a, b = bars_feed([flat(100)] * 3, name="A"), bars_feed([flat(100)] * 3, name="B")
        cerebro.adddata(a)
        cerebro.adddata(b)
        broker = MarginBroker(cash=1000.0, leverage=10.0, margin_mode=mode)
        broker.set_tiers(b, "binance_ethusdt_perp")
        assert broker.tiers_for(a)[0].maintenance_margin_rate == MMR       # the default
        assert broker.tiers_for(b)[0].maintenance_margin_rate == 0.004     # ETHUSDT bracket 1
        with pytest.raises(ValueError, match="maximum"):
            broker.set_leverage(b, 150)                                    # ETHUSDT max 125x
        cerebro.broker = broker
        cerebro.addstrategy(TwoFeeds)
        cerebro.run()
        # B: 5 at 100 -> MM = 500 * 0.004 - 0 = 2.0 (A: 500 * 0.005 = 2.5)
        assert broker.maintenance_margin(b) == pytest.approx(2.0)
        assert broker.maintenance_margin(a) == pytest.approx(2.5)


def test_bad_margin_mode_and_add_margin_in_cross():
    with pytest.raises(ValueError, match="margin_mode"):
        MarginBroker(margin_mode="portfolio")
    broker = MarginBroker(margin_mode="cross")
    assert broker.p.margin_mode == "cross" and MarginBroker().p.margin_mode == "isolated"


# ----------------------------------------------------------------------------
# with funding and the mark price (one feed A: long 5 at 100, wallet 100, 10x)
# ----------------------------------------------------------------------------
class HoldFive(bt.Strategy):
    def __init__(self):
        self.liquidation_prices = []

    def next(self):
        self.liquidation_prices.append(self.broker.liquidation_price(self.data))
        if len(self) == 1:
            self.buy(size=SIZE)


def run_one(bars, mark=None, **params):
    cerebro = bt.Cerebro(stdstats=False)
    data = bars_feed(bars, name="A")
    cerebro.adddata(data)
    broker = MarginBroker(cash=100.0, leverage=LEVERAGE, maintenance_margin_rate=MMR,
                          margin_mode="cross", **params)
    if mark is not None:
        broker.set_mark_price(data, mark)
    cerebro.broker = broker
    cerebro.addstrategy(HoldFive)
    return cerebro.run()[0], broker


# cross LP of the only position: (100 - 500) / (0.025 - 5) = 400 / 4.975 = 80.4020
CROSS_LP = 400 / 4.975


def test_cross_funding_comes_out_of_the_wallet_and_moves_the_lp():
    # bars 00:00 .. 09:00; the long opens at 01:00 and holds over 08:00: it pays
    # 5 x 100 x 0.001 = 0.5 from the wallet (no isolated margin to pay it from)
    strategy, broker = run_one([flat(100)] * 10, funding_rates=0.001)
    flows = [(flow.reason, flow.amount) for flow in broker.ledger]
    assert flows == [("funding", pytest.approx(-0.5))]
    assert broker.getcash() == pytest.approx(99.5)
    # before: 80.4020; after: (99.5 - 500) / (0.025 - 5) = 400.5 / 4.975 = 80.5025
    assert strategy.liquidation_prices[7] == pytest.approx(CROSS_LP)
    assert strategy.liquidation_prices[8] == pytest.approx(400.5 / 4.975)


def mark_frame(bars):
    from _bars import bars_frame
    return bars_frame(bars)[["open", "high", "low", "close"]]


def test_cross_liquidation_triggers_on_the_mark_path():
    bars = [flat(100), flat(100), (100, 100, 70, 95), flat(95)]
    # the trade price wicks to 70, the mark only to 85 (> 80.4020): no liquidation
    _, broker = run_one(bars, mark=mark_frame([flat(100), flat(100), (100, 100, 85, 95), flat(95)]))
    assert broker.liquidations == []
    # the mark falls to 78 (< 80.4020) while the trade low is 82: liquidated at the mark's level
    bars = [flat(100), flat(100), (100, 100, 82, 95), flat(95)]
    _, broker = run_one(bars, mark=mark_frame([flat(100), flat(100), (100, 100, 78, 95), flat(95)]))
    event, = broker.liquidations
    assert event.margin_mode == "cross"
    assert event.fill_price == pytest.approx(CROSS_LP)
    assert event.liquidation_price == pytest.approx(CROSS_LP)


# ----------------------------------------------------------------------------
# real data: a BTC long hedged by an ETH short, January 2021 (Binance USDⓈ-M 1h)
# ----------------------------------------------------------------------------
class Pair(bt.Strategy):
    """Every 48 bars: open long BTC / short ETH of 40,000 notional each at 10x, or close both."""

    def __init__(self):
        self.checks = []

    def next(self):
        broker = self.broker
        unrealized = sum(broker.getposition(d).size * (d.close[0] - broker.getposition(d).price)
                         for d in self.datas)
        self.checks.append((broker.getvalue(), broker.getcash() + unrealized))
        if len(self) % 48 == 1:
            btc, eth = self.datas
            if not self.getposition(btc).size:
                self.buy(data=btc, size=round(40_000 / btc.close[0], 3))
                self.sell(data=eth, size=round(40_000 / eth.close[0], 3))
            else:
                self.close(data=btc)
                self.close(data=eth)


def test_real_hedged_pair_isolated_liquidates_legs_cross_keeps_the_book(shared_data):
    from backtrader_leverage.data import ArrayFeed, load_csv
    frames = {name: load_csv(shared_data / f"binance_um_{name}USDT_1h.csv").loc["2021-01-01":"2021-01-31"]
              for name in ("BTC", "ETH")}
    results = {}
    for mode in ("isolated", "cross"):
        cerebro = bt.Cerebro(stdstats=False)
        for name, frame in frames.items():
            cerebro.adddata(ArrayFeed(dataname=frame), name=name)
        broker = MarginBroker(cash=10_000.0, leverage=LEVERAGE, margin_mode=mode,
                              tiers="binance_btcusdt_perp")
        broker.set_tiers(cerebro.datas[1], "binance_ethusdt_perp")
        broker.setcommission(commission=0.0004)
        cerebro.broker = broker
        cerebro.addstrategy(Pair)
        results[mode] = (cerebro.run()[0], broker)
    _, isolated = results["isolated"]
    strategy, cross = results["cross"]
    # ETH rallied harder than BTC in early January 2021: the ETH short's own margin (4,000)
    # runs out first; in cross mode the BTC long's gains and the rest of the wallet back it
    assert isolated.liquidations and isolated.liquidations[0].data == "ETH"
    assert cross.liquidations == []
    assert cross.getvalue() > isolated.getvalue()
    # equity = wallet + Σ unrealized PnL on every bar (no isolated margins in cross mode)
    for value, identity in strategy.checks:
        assert value == pytest.approx(identity, rel=1e-9)
