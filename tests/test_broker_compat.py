"""Item 9 of the broker issue, "drop-in": a third-party strategy keeps working
when only its broker line changes to ``MarginBroker``.

Every scenario runs on hand-made hourly bars (``_bars``). Orders placed in bar
k's ``next()`` fill at bar k+1 (market at its open, stops/limits on its path).
Where backtrader's own ``BackBroker`` defines the fill price, the same script
runs on both brokers and the fills (bar, size, price) must match.
"""
from __future__ import annotations

import math
import pickle

import backtrader as bt
import pytest

from _bars import Fill, Recorder, bars_feed, flat
from backtrader_leverage.broker import MarginBroker

START_CASH = 10_000.0          # quote currency
LOT = 0.001                     # default lot size, base units
MMR = 0.005                     # default maintenance margin rate


def floor_lot(size: float) -> float:
    """Independent lot flooring for expected values (size > 0 here)."""
    return round(math.floor(size / LOT + 1e-9) * LOT, 3)


class Script(Recorder):
    """Runs ``plan[bar]`` (a list of ``fn(strategy)``) in that bar's ``next()``."""
    params = (("plan", None),)

    def __init__(self):
        super().__init__()
        self.placed = {}

    def act(self, bar):
        for step in (self.p.plan or {}).get(bar, ()):
            step(self)


def run(bars_by_feed, broker, strategy=Script, runonce=True, sizer=None, analyzers=(), **params):
    """Run ``strategy`` on one feed per bar list; return (strategy, cerebro)."""
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.broker = broker
    for bars in bars_by_feed:
        cerebro.adddata(bars_feed(bars))
    if sizer is not None:
        cerebro.addsizer(*sizer[:1], **sizer[1])
    for name, analyzer in analyzers:
        cerebro.addanalyzer(analyzer, _name=name)
    cerebro.addstrategy(strategy, **params)
    return cerebro.run()[0], cerebro


def back_broker():
    broker = bt.brokers.BackBroker()
    broker.setcash(START_CASH)
    return broker


def margin_broker(**kwargs):
    broker = MarginBroker(**kwargs)
    broker.setcash(START_CASH)
    return broker


def buy(**kwargs):
    return lambda s: s.placed.setdefault("buy", s.buy(**kwargs))


def sell(**kwargs):
    return lambda s: s.placed.setdefault("sell", s.sell(**kwargs))


# ----------------------------------------------------------------------
# cash, commission, leverage, custom CommInfoBase
# ----------------------------------------------------------------------
ENTRY = 100.0  # open of bar 1 in the flat scenarios


@pytest.mark.parametrize("setter", ["setcash", "set_cash"])
def test_setcash_and_set_cash_fund_the_wallet(setter):
    broker = MarginBroker(leverage=5)
    getattr(broker, setter)(START_CASH)
    size = 2.0
    strategy, _ = run([[flat(ENTRY)] * 3], broker, plan={0: [buy(size=size)]})
    margin = size * ENTRY / 5  # notional / leverage
    assert strategy.fills == [Fill(1, size, ENTRY, False)]
    assert broker.getcash() == pytest.approx(START_CASH - margin)
    assert broker.position_margin(strategy.data) == pytest.approx(margin)
    assert broker.getvalue() == pytest.approx(START_CASH)  # flat price: no PnL, no fee


def test_setcommission_sets_fee_rate_and_leverage():
    fee_rate, leverage, size = 0.001, 4, 2.0
    broker = margin_broker(leverage=2)
    broker.setcommission(commission=fee_rate, leverage=leverage)
    bars = [flat(ENTRY), flat(ENTRY), (ENTRY, 112, 99, 110.0)]
    strategy, _ = run([bars], broker, plan={0: [buy(size=size)]})
    margin = size * ENTRY / leverage       # 2 * 100 / 4 = 50
    fee = size * ENTRY * fee_rate           # 0.2
    assert broker.get_leverage(strategy.data) == leverage
    assert broker.position_margin(strategy.data) == pytest.approx(margin)
    assert broker.getcash() == pytest.approx(START_CASH - margin - fee)
    assert broker.getvalue() == pytest.approx(START_CASH - fee + size * (110.0 - ENTRY))


def test_set_leverage_beats_setcommission_leverage():
    broker = margin_broker(leverage=2)
    broker.setcommission(commission=0.0, leverage=4)
    feed = bars_feed([flat(ENTRY)] * 3)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = broker
    cerebro.adddata(feed)
    broker.set_leverage(feed, 8)
    size = 1.0
    cerebro.addstrategy(Script, plan={0: [buy(size=size)]})
    cerebro.run()
    assert broker.position_margin(feed) == pytest.approx(size * ENTRY / 8)  # set_leverage wins


def test_setcommission_by_feed_name():
    btc_fee_rate, btc_leverage, default_leverage = 0.001, 10, 2
    broker = margin_broker(leverage=default_leverage)
    broker.setcommission(commission=btc_fee_rate, leverage=btc_leverage, name="BTC")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = broker
    cerebro.adddata(bars_feed([flat(100.0)] * 3, name="BTC"))
    cerebro.adddata(bars_feed([flat(50.0)] * 3, name="ETH"))
    cerebro.addstrategy(Script, plan={0: [lambda s: s.buy(data=s.datas[0], size=1.0),
                                          lambda s: s.buy(data=s.datas[1], size=1.0)]})
    cerebro.run()
    btc, eth = cerebro.datas
    btc_margin = 1.0 * 100.0 / btc_leverage    # 10
    eth_margin = 1.0 * 50.0 / default_leverage  # 25, no fee on the default comminfo
    btc_fee = 1.0 * 100.0 * btc_fee_rate        # 0.1
    assert broker.position_margin(btc) == pytest.approx(btc_margin)
    assert broker.position_margin(eth) == pytest.approx(eth_margin)
    assert broker.getcash() == pytest.approx(START_CASH - btc_margin - eth_margin - btc_fee)


FLAT_FEE = 1.5  # quote currency charged per fill by the third-party fee model


class FlatFeeCommInfo(bt.CommInfoBase):
    """A third-party fee model: a fixed fee per fill, stock-like, leverage 4."""
    params = (("stocklike", True), ("commtype", bt.CommInfoBase.COMM_FIXED),
              ("commission", FLAT_FEE), ("leverage", 4.0))

    def _getcommission(self, size, price, pseudoexec):
        return FLAT_FEE


def test_addcommissioninfo_custom_comminfo_fees_and_leverage():
    broker = margin_broker(leverage=2)
    broker.addcommissioninfo(FlatFeeCommInfo())
    size, exit_price = 3.0, 104.0
    bars = [flat(ENTRY), flat(ENTRY), flat(exit_price), flat(exit_price)]
    strategy, _ = run([bars], broker, plan={0: [buy(size=size)],
                                             1: [lambda s: s.close()]})
    margin = size * ENTRY / 4.0  # the custom comminfo's leverage wins over the param
    assert strategy.fills == [Fill(1, size, ENTRY, False), Fill(2, -size, exit_price, False)]
    assert strategy.cashes[1] == pytest.approx(START_CASH - margin - FLAT_FEE)
    (trade,) = strategy.trades
    assert trade.pnl == pytest.approx(size * (exit_price - ENTRY))
    assert trade.commission == pytest.approx(2 * FLAT_FEE)
    assert broker.getcash() == pytest.approx(START_CASH + size * (exit_price - ENTRY) - 2 * FLAT_FEE)


# ----------------------------------------------------------------------
# sizers
# ----------------------------------------------------------------------
def test_percent_sizer_gives_fractional_lot_sizes():
    percents, leverage, close0 = 33, 3, 123.45
    broker = margin_broker(leverage=leverage)
    bars = [flat(close0), flat(close0), flat(close0)]
    strategy, _ = run([bars], broker, sizer=(bt.sizers.PercentSizer, {"percents": percents}),
                      plan={0: [lambda s: s.buy()]})
    size = floor_lot(START_CASH * percents / 100 / close0)  # 3300 / 123.45 = 26.7315 -> 26.731
    assert size != int(size)
    assert strategy.fills == [Fill(1, size, close0, False)]
    assert broker.position_margin(strategy.data) == pytest.approx(size * close0 / leverage)


# ----------------------------------------------------------------------
# resting orders: same fills as BackBroker (leverage 5: LP far below every low)
# ----------------------------------------------------------------------
def fills_on_both(bars, plan):
    """Fills of the same script on BackBroker and on MarginBroker (5x, no fees)."""
    back, _ = run([bars], back_broker(), plan=plan)
    margin, _ = run([bars], margin_broker(leverage=5), plan=plan)
    return back.fills, margin.fills


def bracket_entry(s):
    s.placed["bracket"] = s.buy_bracket(size=1.5, exectype=bt.Order.Market,
                                        stopprice=95.0, limitprice=110.0)


BRACKET_BARS = [
    flat(100.0),
    (100.0, 101.0, 94.0, 100.0),   # entry fills at the open; children not active yet
    (100.0, 100.0, 96.0, 99.0),
    (99.0, 99.0, 94.0, 95.5),      # stop child fills at 95
    flat(95.5),
]


def test_bracket_children_active_from_the_bar_after_the_entry():
    back, margin = fills_on_both(BRACKET_BARS, {0: [bracket_entry]})
    stop_price, entry_price = 95.0, 100.0
    assert margin == [Fill(1, 1.5, entry_price, False), Fill(3, -1.5, stop_price, False)]
    assert margin == back


def test_bracket_whose_entry_lacks_margin_is_refused_whole_like_backbroker():
    size = 600.0  # notional 600 · 100 = 60 000 > 5 · 10 000 of buying power at 5x
    plan = {0: [lambda s: s.buy_bracket(size=size, stopprice=95.0, limitprice=105.0)]}
    back, _ = run([BRACKET_BARS], back_broker(), plan=plan)
    margin, _ = run([BRACKET_BARS], margin_broker(leverage=5), plan=plan)
    # the entry gets Margin, both children are rejected with it; nothing fills
    assert margin.refused == [(1, "Margin"), (1, "Rejected"), (1, "Rejected")]
    assert margin.refused == back.refused and margin.fills == back.fills == []


STOP_CASES = {
    # buy stop 105 from flat: the high crosses it -> fills at the stop
    "buy_stop_intrabar": ([flat(100.0), (100.0, 106.0, 99.0, 104.0), flat(104.0)],
                          {0: [buy(size=0.25, exectype=bt.Order.Stop, price=105.0)]}),
    # buy stop 105, bar opens above it -> fills at the open
    "buy_stop_gap": ([flat(100.0), (107.0, 108.0, 106.0, 107.0), flat(107.0)],
                     {0: [buy(size=0.25, exectype=bt.Order.Stop, price=105.0)]}),
    # long, then a sell stop 97: low reaches it
    "sell_stop_intrabar": ([flat(100.0), flat(100.0), (100.0, 101.0, 96.0, 98.0), flat(98.0)],
                           {0: [buy(size=0.5)],
                            1: [sell(size=0.5, exectype=bt.Order.Stop, price=97.0)]}),
    # buy stop-limit: stop 105, limit 106, high crosses both
    "buy_stop_limit": ([flat(100.0), (100.0, 108.0, 99.0, 107.0), flat(107.0)],
                       {0: [buy(size=0.25, exectype=bt.Order.StopLimit, price=105.0,
                                plimit=106.0)]}),
    # sell stop-limit after a long: stop 97, limit 96.5, bar gaps to 96.8 (marketable)
    "sell_stop_limit_gap": ([flat(100.0), flat(100.0), (96.8, 97.5, 95.0, 96.0), flat(96.0)],
                            {0: [buy(size=0.5)],
                             1: [sell(size=0.5, exectype=bt.Order.StopLimit, price=97.0,
                                      plimit=96.5)]}),
    # long, sell stop-trail 5 below: trails up with the closes, then is hit
    "stop_trail": ([flat(100.0), flat(100.0), flat(104.0), flat(108.0),
                    (108.0, 108.5, 102.0, 103.0), flat(103.0)],
                   {0: [buy(size=0.5)],
                    1: [sell(size=0.5, exectype=bt.Order.StopTrail, trailamount=5.0)]}),
    # OCO: a sell limit 110 and a sell stop 95 after a long; the limit fills, the stop is cancelled
    "oco_limit_wins": ([flat(100.0), flat(100.0), (100.0, 111.0, 99.0, 109.0), flat(109.0),
                        (109.0, 109.0, 90.0, 91.0), flat(91.0)],
                       {0: [buy(size=0.5)],
                        1: [sell(size=0.5, exectype=bt.Order.Limit, price=110.0),
                            lambda s: s.sell(size=0.5, exectype=bt.Order.Stop, price=95.0,
                                             oco=s.placed["sell"])]}),
}


@pytest.mark.parametrize("case", sorted(STOP_CASES))
def test_resting_orders_fill_like_backbroker(case):
    bars, plan = STOP_CASES[case]
    back, margin = fills_on_both(bars, plan)
    assert back, "the scenario must fill something on BackBroker"
    assert margin == back


def test_stop_limit_with_limit_beyond_stop_follows_the_price_path():
    # A deliberate difference from BackBroker: the bar goes 100 -> 99 -> 108 -> 103 (flat
    # before the bar: nearer extreme first). The stop fires at 105 on the way up, the way
    # down to the close 103 passes the limit 104: filled at 104 on that bar. BackBroker
    # only triggers on bar 1 and fills at bar 2's open, 103.
    stop, limit = 105.0, 104.0  # buy stop-limit: triggered at 105, buys only at <= 104
    bars = [flat(100.0), (100.0, 108.0, 99.0, 103.0), flat(103.0)]
    back, margin = fills_on_both(bars, {0: [buy(size=0.25, exectype=bt.Order.StopLimit,
                                                   price=stop, plimit=limit)]})
    next_open = 103.0
    assert back == [Fill(2, 0.25, next_open, False)]
    assert margin == [Fill(1, 0.25, limit, False)]


def test_stop_trail_fill_price_is_last_close_minus_trail():
    bars, plan = STOP_CASES["stop_trail"]
    _, margin = fills_on_both(bars, plan)
    highest_close, trail = 108.0, 5.0
    assert margin[-1] == Fill(4, -0.5, highest_close - trail, False)  # 103: the trailed stop


# ----------------------------------------------------------------------
# order_target_*: targets are notionals / sizes, whatever the leverage
# ----------------------------------------------------------------------
TARGET_CLOSE = 101.3  # close at which the target orders are sized
TARGET_BARS = [flat(TARGET_CLOSE)] * 2 + [flat(97.1)] * 3


@pytest.mark.parametrize("leverage", [1, 10])
def test_order_target_value_sizes_by_notional(leverage):
    target_value, smaller_value = 2500.0, 1000.0
    broker = margin_broker(leverage=leverage)
    strategy, _ = run([TARGET_BARS], broker,
                      plan={0: [lambda s: s.order_target_value(target=target_value)],
                            2: [lambda s: s.order_target_value(target=smaller_value)]})
    first = floor_lot(target_value / TARGET_CLOSE)             # 24.679
    held_value = first * 97.1                                   # market value at bar 2's close
    second = floor_lot((held_value - smaller_value) / 97.1)    # sell down to notional 1000
    assert [f.size for f in strategy.fills] == [pytest.approx(first), pytest.approx(-second)]
    assert strategy.fills[0].price == pytest.approx(TARGET_CLOSE)
    assert broker.getposition(strategy.data).size == pytest.approx(round(first - second, 3))


def test_order_target_percent_sizes_by_equity_notional():
    percent, leverage = 0.3, 10
    broker = margin_broker(leverage=leverage)
    strategy, _ = run([TARGET_BARS], broker,
                      plan={0: [lambda s: s.order_target_percent(target=percent)]})
    size = floor_lot(START_CASH * percent / TARGET_CLOSE)  # 3000 / 101.3 = 29.615
    assert strategy.fills[0].size == pytest.approx(size)
    assert broker.position_margin(strategy.data) == pytest.approx(size * TARGET_CLOSE / leverage)


def test_order_target_size_fractional():
    first, second = 0.375, 0.125
    broker = margin_broker(leverage=3)
    strategy, _ = run([TARGET_BARS], broker,
                      plan={0: [lambda s: s.order_target_size(target=first)],
                            2: [lambda s: s.order_target_size(target=second)]})
    assert [f.size for f in strategy.fills] == [first, pytest.approx(second - first)]
    assert broker.getposition(strategy.data).size == second


# ----------------------------------------------------------------------
# runonce on/off, several feeds
# ----------------------------------------------------------------------
def wave_bars(count=240, base=100.0, swing=12.0, crash_at=110):
    """A smooth wave with one -30 % gap bar at ``crash_at`` (liquidates a 5x long)."""
    bars, previous = [], base
    for index in range(count):
        close = base + swing * math.sin(index / 9.0) + (-30.0 if index >= crash_at else 0.0)
        open_ = previous
        bars.append((open_, max(open_, close) + 0.7, min(open_, close) - 0.7, close))
        previous = close
    return bars


class SmaCross(Recorder):
    """Buys ``size`` on a fast-over-slow SMA cross, closes on the cross back."""
    params = (("fast", 5), ("slow", 20), ("size", 4.0))

    def __init__(self):
        super().__init__()
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))

    def act(self, bar):
        if self.cross[0] > 0 and not self.position:
            self.buy(size=self.p.size)
        elif self.cross[0] < 0 and self.position:
            self.close()


@pytest.mark.parametrize("leverage", [1, 5])
def test_runonce_true_and_false_give_identical_results(leverage):
    results = []
    for runonce in (True, False):
        broker = margin_broker(leverage=leverage)
        broker.setcommission(commission=0.0004)
        strategy, _ = run([wave_bars()], broker, strategy=SmaCross, runonce=runonce)
        results.append((strategy.fills, strategy.values, broker.getvalue(),
                        [event.to_dict() for event in broker.liquidations]))
    assert results[0][0], "the scenario must trade"
    assert bool(results[0][3]) == (leverage == 5)  # the gap liquidates the 5x long only
    assert results[0] == results[1]


def test_several_feeds_keep_separate_margins_and_names():
    crash = [flat(100.0), flat(100.0), flat(100.0), (80.0, 80.0, 79.0, 79.5), flat(79.5)]
    calm = [flat(50.0), flat(50.0), flat(50.0), (50.0, 52.0, 49.0, 51.0), flat(51.0)]
    broker = margin_broker(leverage=10)
    crash_size, calm_size = 1.0, 2.0
    strategy, cerebro = run([crash, calm], broker, plan={
        0: [lambda s: s.buy(data=s.datas[0], size=crash_size),
            lambda s: s.buy(data=s.datas[1], size=calm_size)]})
    crash_feed, calm_feed = cerebro.datas
    assert [f for f in strategy.fills if f.feed == "data1"] == [Fill(1, calm_size, 50.0, False, "data1")]
    (event,) = broker.liquidations
    assert event.data == "data0" and event.fill_price == 80.0  # gap past LP 90.45: the open
    assert broker.position_margin(calm_feed) == pytest.approx(calm_size * 50.0 / 10)
    assert broker.getposition(crash_feed).size == 0
    margin_crash = crash_size * 100.0 / 10  # 10, all lost (absorb: deficit not charged)
    calm_pnl = calm_size * (51.0 - 50.0)     # calm feed closes at 51
    assert broker.getvalue() == pytest.approx(START_CASH - margin_crash + calm_pnl)


def test_feeds_with_different_start_times():
    """A second feed that starts two hours later is synchronised by timestamp."""
    from _bars import bar_time
    early = [flat(100.0)] * 6
    late_bars = [flat(20.0)] * 4
    broker = margin_broker(leverage=2)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = broker
    cerebro.adddata(bars_feed(early))
    cerebro.adddata(bars_feed(late_bars, first=bar_time(2)))
    cerebro.addstrategy(Script, plan={3: [lambda s: s.buy(data=s.datas[1], size=5.0)]})
    strategy = cerebro.run()[0]
    assert [(f.bar, f.size, f.price, f.feed) for f in strategy.fills] == [(4, 5.0, 20.0, "data1")]
    assert broker.position_margin(cerebro.datas[1]) == pytest.approx(5.0 * 20.0 / 2)


class BuyOnceThenStop(Recorder):
    """Buys 1 once; with ``stop``, places a sell stop once the long is held.

    Guards by flags, not by bar index: under ``replaydata`` ``next()`` runs on
    every tick of a developing bar.
    """
    params = (("stop", None),)

    def __init__(self):
        super().__init__()
        self.bought = self.stopped = False

    def act(self, bar):
        if not self.bought:
            self.bought = True
            self.buy(size=1.0)
        elif self.p.stop and self.position and not self.stopped:
            self.stopped = True
            self.sell(size=1.0, exectype=bt.Order.Stop, price=self.p.stop)


# hourly ticks replayed into 4-hour bars: the third 4h bar dips to 90 in its third hour
REPLAY_TICKS = [flat(100.0)] * 4 + [(100.0, 100.0, 99.0, 99.5), (99.5, 99.5, 97.0, 97.5),
                                    (97.5, 97.5, 90.0, 91.0), (91.0, 92.0, 80.0, 81.0)] \
    + [flat(81.0)] * 4


def run_replayed(broker, stop=None):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = broker
    cerebro.replaydata(bars_feed(REPLAY_TICKS), timeframe=bt.TimeFrame.Minutes, compression=240)
    cerebro.addstrategy(BuyOnceThenStop, stop=stop)
    return cerebro.run()[0]


def test_replayed_data_stop_fills_like_backbroker():
    stop = 92.0
    back = run_replayed(back_broker(), stop=stop)
    margin = run_replayed(margin_broker(leverage=5), stop=stop)
    assert back.fills[-1].price == stop  # BackBroker: the developing bar's low reaches the stop
    assert margin.fills == back.fills


def test_replayed_data_liquidates_at_the_liquidation_price():
    leverage = 20
    broker = margin_broker(leverage=leverage)
    strategy = run_replayed(broker)
    liquidation_price = ENTRY * (1 - 1 / leverage) / (1 - MMR)  # 95 / 0.995 = 95.4774
    (event,) = broker.liquidations
    assert event.fill_price == pytest.approx(liquidation_price)  # the 90 dip crosses it intrabar
    assert event.deficit == 0.0
    assert strategy.fills[-1].bar == 2  # the replayed bar holding the dip


# ----------------------------------------------------------------------
# pickling and optstrategy
# ----------------------------------------------------------------------
def test_margin_broker_pickle_round_trip():
    broker = MarginBroker(cash=5_000.0, leverage=5, liquidation_fee_rate=0.01,
                          negative_balance="carry", maintenance_margin_rate=0.01)
    broker.setcommission(commission=0.0004, leverage=7)
    clone = pickle.loads(pickle.dumps(broker))
    assert clone.getcash() == 5_000.0
    assert (clone.p.leverage, clone.p.liquidation_fee_rate, clone.p.negative_balance,
            clone.p.maintenance_margin_rate) == (5, 0.01, "carry", 0.01)
    results = []
    for each in (broker, clone):
        strategy, _ = run([wave_bars()], each, strategy=SmaCross)
        results.append((strategy.fills, each.getvalue()))
    assert results[0] == results[1]


class FinalValue(bt.Analyzer):
    """The broker's value at the end of the run (plain data: survives pickling)."""

    def stop(self):
        self.value = self.strategy.broker.getvalue()

    def get_analysis(self):
        return {"final_value": self.value}


def optimise(maxcpus):
    cerebro = bt.Cerebro(stdstats=False, maxcpus=maxcpus)
    cerebro.broker = margin_broker(leverage=3)
    cerebro.broker.setcommission(commission=0.0004)
    cerebro.adddata(bars_feed(wave_bars()))
    cerebro.addanalyzer(FinalValue, _name="final")
    cerebro.optstrategy(SmaCross, fast=[3, 5, 8], slow=[20, 30])
    runs = cerebro.run(maxcpus=maxcpus)
    return {(r[0].params.fast, r[0].params.slow): r[0].analyzers.final.get_analysis()["final_value"]
            for r in runs}


def test_optstrategy_with_two_processes_matches_one():
    single = optimise(maxcpus=1)
    assert len(single) == 3 * 2  # fast × slow
    assert len(set(single.values())) > 1, "different params must give different results"
    assert optimise(maxcpus=2) == single


# ----------------------------------------------------------------------
# a liquidation as a normal fill for notify_order / notify_trade / TradeAnalyzer
# ----------------------------------------------------------------------
LEVERAGE = 10
SIZE = 1.0
FEE_RATE = 0.0004
MARGIN = SIZE * ENTRY / LEVERAGE                        # 10
OPEN_FEE = SIZE * ENTRY * FEE_RATE                      # 0.04
LP_LONG = (MARGIN - SIZE * ENTRY) / (SIZE * MMR - SIZE)  # 90 / 0.995 = 90.4523
BP_LONG = ENTRY - MARGIN / SIZE                          # 90
GAP_OPEN = 80.0                                          # opens past BP: deficit (90 - 80) * 1

LIQUIDATION_CASES = {
    # name: (crash bar, broker kwargs, fill price, wallet loss after the open)
    "lp_exchange_style": ((99.0, 99.5, 85.0, 88.0), {}, LP_LONG, MARGIN),
    "lp_fee_rate": ((99.0, 99.5, 85.0, 88.0), {"liquidation_fee_rate": 0.001}, LP_LONG,
                    # fee 0.001·notional at LP; margin + PnL at LP minus it comes back
                    MARGIN - (MARGIN + SIZE * (LP_LONG - ENTRY) - 0.001 * SIZE * LP_LONG)),
    "gap_absorb": ((GAP_OPEN, 81.0, 79.0, 80.5), {"negative_balance": "absorb"}, GAP_OPEN, MARGIN),
    "gap_carry": ((GAP_OPEN, 81.0, 79.0, 80.5), {"negative_balance": "carry"}, GAP_OPEN,
                  MARGIN + SIZE * (BP_LONG - GAP_OPEN)),
}


@pytest.mark.parametrize("case", sorted(LIQUIDATION_CASES))
def test_liquidation_is_a_normal_fill_for_the_strategy(case):
    crash_bar, kwargs, fill_price, margin_loss = LIQUIDATION_CASES[case]
    broker = margin_broker(leverage=LEVERAGE, **kwargs)
    broker.setcommission(commission=FEE_RATE)
    bars = [flat(ENTRY), flat(ENTRY), flat(ENTRY), crash_bar, flat(crash_bar[3])]
    take_profit = 120.0
    strategy, _ = run([bars], broker, analyzers=[("trades", bt.analyzers.TradeAnalyzer)],
                      plan={0: [buy(size=SIZE)],
                            1: [sell(size=SIZE, exectype=bt.Order.Limit, price=take_profit)]})
    assert strategy.fills == [Fill(1, SIZE, ENTRY, False), Fill(3, -SIZE, pytest.approx(fill_price), True)]
    assert len(strategy.cancelled) == 1 and strategy.cancelled[0][0] == 3  # take-profit cancelled
    (trade,) = strategy.trades
    wallet_change = broker.getcash() - START_CASH
    assert wallet_change == pytest.approx(-(margin_loss + OPEN_FEE))
    assert trade.pnl == pytest.approx(SIZE * (fill_price - ENTRY))    # side·size·(fill − entry)
    assert trade.pnlcomm == pytest.approx(wallet_change)              # what the wallet really lost
    analysis = strategy.analyzers.trades.get_analysis()
    assert analysis.total.closed == 1 and analysis.lost.total == 1
    assert analysis.pnl.gross.total == pytest.approx(trade.pnl)
    assert analysis.pnl.net.total == pytest.approx(wallet_change)


def test_get_notification_hands_out_queued_orders_in_turn_then_none():
    # cerebro asks every bar; an empty queue answers None (no IndexError raised and caught)
    broker = MarginBroker(cash=1_000.0)
    assert broker.get_notification() is None
    first, second = object(), object()
    broker.notifs.extend([first, second])
    assert broker.get_notification() is first
    assert broker.get_notification() is second
    assert broker.get_notification() is None
