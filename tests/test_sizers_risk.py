"""RiskSizer: size by the loss at the stop (fees included), caps, and the liquidation refusal."""
import json
import math
import warnings

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st

from backtrader_leverage import cli as run_backtest
from backtrader_leverage.analyzers import RefusalAnalyzer
from backtrader_leverage.backtest import BacktestConfig, run_backtest as run_one
from backtrader_leverage.backtest.safe_leverage import exclusions
from backtrader_leverage.broker import MarginBroker
from backtrader_leverage.broker.margin import MarginTier
from backtrader_leverage.data import ArrayFeed, load_csv
from backtrader_leverage.sizers import (EntryRefusal, RiskSizer, max_notional_for_leverage,
                                        risk_position_size)
from backtrader_leverage.strategies import LeveragedStrategy, get_strategy

EQUITY = 10_000.0
ENTRY = 20_000.0
STOP = 0.05
FEE = 0.0004
RISK = 0.01
LOT = 0.001
MMR = 0.005


# -- the pure sizing rule, by hand --------------------------------------------------------------
def test_long_size_loses_the_risk_at_the_stop_fees_included():
    # loss per BTC = 20,000 * 0.05 + 0.0004 * (20,000 + 19,000) = 1,000 + 15.6 = 1,015.6
    # size = 0.01 * 10,000 / 1,015.6 = 0.098464 -> floored to the 0.001 lot: 0.098 BTC
    plan = risk_position_size(+1, EQUITY, ENTRY, STOP, RISK, FEE, 5.0, lot_size=LOT)
    assert plan.size == 0.098 and plan.limited_by == "risk" and plan.refusal is None
    assert plan.stop_price == pytest.approx(19_000.0)
    unrounded = risk_position_size(+1, EQUITY, ENTRY, STOP, RISK, FEE, 5.0)
    assert unrounded.size == pytest.approx(100 / 1_015.6)
    # the loss at the stop of the unrounded size is exactly 1 % of equity: 100
    loss = unrounded.size * (ENTRY - 19_000) + FEE * unrounded.size * (ENTRY + 19_000)
    assert loss == pytest.approx(100.0)


def test_short_size_pays_the_exit_fee_at_the_higher_stop():
    # loss per BTC = 20,000 * 0.05 + 0.0004 * (20,000 + 21,000) = 1,000 + 16.4 = 1,016.4
    plan = risk_position_size(-1, EQUITY, ENTRY, STOP, RISK, FEE, 5.0)
    assert plan.size == pytest.approx(100 / 1_016.4)          # 0.098386
    assert plan.stop_price == pytest.approx(21_000.0)


def test_margin_caps_the_notional():
    # risk 50 % at 2x: by risk 5,000 / 1,015.6 = 4.923 BTC, but margin + entry fee may use
    # 95 % of equity: 0.95 * 10,000 / (20,000 * (1/2 + 0.0004)) = 9,500 / 10,008 = 0.94924
    plan = risk_position_size(+1, EQUITY, ENTRY, STOP, 0.5, FEE, 2.0, lot_size=LOT,
                              max_margin_fraction=0.95)
    assert plan.limited_by == "margin" and plan.size == 0.949


BRACKETS = (MarginTier(0.0, 50_000.0, 0.004, 0.0, 125.0),
            MarginTier(50_000.0, 250_000.0, 0.005, 50.0, 100.0),
            MarginTier(250_000.0, math.inf, 0.01, 1_300.0, 50.0))


def test_tier_table_caps_the_notional_at_this_leverage():
    assert max_notional_for_leverage(BRACKETS, 110.0) == 50_000.0    # only the first bracket
    assert max_notional_for_leverage(BRACKETS, 100.0) == 250_000.0
    assert max_notional_for_leverage(BRACKETS, 20.0) == math.inf
    assert max_notional_for_leverage(BRACKETS, 150.0) == 0.0
    # equity 100,000 at 110x, stop 0.5 %: by risk 1,000 / (100 + 0.0004 * 39,900) = 8.62 BTC,
    # by margin 95,000 / (20,000 * (1/110 + 0.0004)) = 500.5 BTC, by the table
    # 50,000 / 20,000 = 2.5 BTC -> notional 50,000 is the next bracket's floor: one lot less
    plan = risk_position_size(+1, 100_000.0, ENTRY, 0.005, RISK, FEE, 110.0, tiers=BRACKETS,
                              lot_size=LOT, max_margin_fraction=0.95)
    assert plan.limited_by == "tiers" and plan.size == 2.499 and plan.refusal is None


def test_stop_beyond_the_liquidation_price_is_refused_and_just_inside_accepted():
    flat = (MarginTier(0.0, math.inf, MMR, 0.0, 1 / MMR),)
    # long 25x, mmr 0.5 %: LP = entry * (1 - 1/25) / (1 - 0.005) = 20,000 * 0.96 / 0.995
    #                         = 19,296.48 (3.5176 % below the entry)
    liquidation = ENTRY * 0.96 / 0.995
    refused = risk_position_size(+1, EQUITY, ENTRY, STOP, RISK, FEE, 25.0, tiers=flat,
                                 lot_size=LOT)
    assert refused.size == 0.0 and refused.refusal == "stop_beyond_liquidation"
    assert refused.liquidation_price == pytest.approx(liquidation)
    assert refused.wanted == 0.098                  # what it would have been
    inside = risk_position_size(+1, EQUITY, ENTRY, 0.0351, RISK, FEE, 25.0, tiers=flat,
                                lot_size=LOT)       # stop 19,298.00 > LP 19,296.48
    assert inside.size > 0 and inside.refusal is None
    beyond = risk_position_size(+1, EQUITY, ENTRY, 0.0352, RISK, FEE, 25.0, tiers=flat,
                                lot_size=LOT)       # stop 19,296.00 < LP 19,296.48
    assert beyond.size == 0.0 and beyond.refusal == "stop_beyond_liquidation"
    # short 25x: LP = 20,000 * (1 + 1/25) / (1 + 0.005) = 20,696.52 (3.4826 % above)
    assert risk_position_size(-1, EQUITY, ENTRY, 0.0348, RISK, FEE, 25.0, tiers=flat,
                              lot_size=LOT).refusal is None          # stop 20,696.00
    assert risk_position_size(-1, EQUITY, ENTRY, 0.0349, RISK, FEE, 25.0, tiers=flat,
                              lot_size=LOT).refusal == "stop_beyond_liquidation"  # 20,698.00


# -- inside cerebro -----------------------------------------------------------------------------
def flat_frame(bars=6, price=ENTRY):
    index = pd.date_range("2024-01-01", periods=bars, freq="1h", tz="UTC")
    values = np.full(bars, price)
    return pd.DataFrame({"open": values, "high": values, "low": values, "close": values,
                         "volume": np.ones(bars)}, index=index)


class BuyOnce(bt.Strategy):
    def __init__(self):
        self.told = []
        self.sizes = []

    def notify_refusal(self, refusal):
        self.told.append(refusal)

    def notify_order(self, order):
        if order.status == order.Completed:
            self.sizes.append(order.executed.size)

    def next(self):
        if len(self) == 1:
            self.buy()


def run_buy_once(leverage, stop_loss, margin_mode="isolated"):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ArrayFeed(dataname=flat_frame()), name="BTCUSDT")
    cerebro.broker = MarginBroker(cash=EQUITY, leverage=leverage, maintenance_margin_rate=MMR,
                                  margin_mode=margin_mode)
    cerebro.broker.setcommission(commission=FEE)
    cerebro.addsizer(RiskSizer, risk_per_trade=RISK, stop_loss=stop_loss)
    cerebro.addstrategy(BuyOnce)
    cerebro.addanalyzer(RefusalAnalyzer, _name="refusal")
    return cerebro.run()[0]


def test_the_sizer_sizes_a_plain_backtrader_strategy():
    strategy = run_buy_once(5.0, STOP)
    assert strategy.sizes == [0.098]               # as computed by hand above
    assert strategy.getsizer().refusals == [] and strategy.told == []
    assert strategy.analyzers.refusal.get_analysis()["count"] == 0


def test_a_refusal_reaches_the_sizer_the_strategy_and_the_analyzers():
    strategy = run_buy_once(25.0, STOP)
    assert strategy.sizes == []                    # no order at all
    refusals = strategy.getsizer().refusals
    assert len(refusals) == 1 and strategy.told == refusals
    refusal = refusals[0]
    assert isinstance(refusal, EntryRefusal)
    assert (refusal.data, refusal.side, refusal.leverage, refusal.reason) == \
        ("BTCUSDT", 1, 25.0, "stop_beyond_liquidation")
    assert refusal.liquidation_price == pytest.approx(ENTRY * 0.96 / 0.995)
    assert refusal.message.startswith("entry refused: stop 5 % beyond liquidation at 25x")
    analysis = strategy.analyzers.refusal.get_analysis()
    assert analysis["count"] == 1
    assert analysis["by_reason"] == {"stop_beyond_liquidation": 1, "below_lot_size": 0}
    assert analysis["events"][0]["dt"] == "2024-01-01T00:00:00"
    assert analysis["events"][0]["message"] == refusal.message


def test_in_cross_margin_the_wallet_backs_the_stop():
    # cross, the only position: LP = (WB - size*entry) / (size*mmr - size)
    #   = (10,000 - 0.098 * 20,000) / (0.098 * 0.005 - 0.098) < 0 -> clipped to 0: never
    #   liquidated, so the 5 % stop at 25x that isolated margin refuses is accepted
    strategy = run_buy_once(25.0, STOP, margin_mode="cross")
    assert strategy.sizes == [0.098] and strategy.getsizer().refusals == []


def test_bad_sizer_params_are_refused():
    with pytest.raises(ValueError, match="risk_per_trade"):
        RiskSizer(risk_per_trade=0)
    with pytest.raises(ValueError, match="stop_loss"):
        RiskSizer(stop_loss=1.5)


# -- the example strategies ------------------------------------------------------------------
@pytest.fixture(scope="module")
def frame(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_csv(shared_data / "binance_um_BTCUSDT_1h.csv").loc["2022-05-01":"2022-07-01"]


def test_strategies_need_a_stop_for_the_risk_sizer():
    with pytest.raises(ValueError, match="stop_loss"):
        get_strategy("sma_cross").check_params(sizer="risk")
    with pytest.raises(ValueError, match="sizer"):
        get_strategy("sma_cross").check_params(sizer="kelly", stop_loss=0.05)
    with pytest.raises(ValueError, match="risk_per_trade"):
        get_strategy("sma_cross").check_params(sizer="risk", stop_loss=0.05, risk_per_trade=2)


def test_risk_sizing_in_a_strategy_trades_smaller_and_counts_refusals(frame):
    params = (("risk_per_trade", 0.01), ("sizer", "risk"), ("stop_loss", 0.05))
    sized = run_one(frame, BacktestConfig(strategy="sma_cross", leverage=5.0,
                                          strategy_params=params))
    assert sized.row["error"] is None and sized.row["entries_refused"] == 0
    assert sized.row["max_drawdown"] < run_one(frame, BacktestConfig(
        strategy="sma_cross", leverage=5.0, strategy_params=(("stop_loss", 0.05),))
    ).row["max_drawdown"]
    refused = run_one(frame, BacktestConfig(strategy="sma_cross", leverage=25.0,
                                            strategy_params=params))
    # every signal at 25x is refused (LP 3.52 % from entry, stop 5 %): no trade, no loss
    assert refused.row["entries_refused"] > 0
    assert refused.row["liquidations"] == 0 and refused.row["final_value"] == 10_000.0
    # it never traded: not "safe", left out of the best choices, with the reason
    assert refused.row["all_orders_rejected"] is True and sized.row["all_orders_rejected"] is False
    assert exclusions([refused.row]) == [{"leverage": 25.0, "reason": "every entry refused by "
                                          "the sizer (stop at or beyond the liquidation price)"}]
    hold = run_one(frame, BacktestConfig(strategy="buy_hold", leverage=25.0,
                                         strategy_params=params))
    assert hold.row["entries_refused"] == 1      # buy and hold asks once, then stays out


def test_default_sizing_is_unchanged_by_the_new_params(frame):
    default = run_one(frame, BacktestConfig(strategy="donchian_breakout", leverage=3.0))
    explicit = run_one(frame, BacktestConfig(strategy="donchian_breakout", leverage=3.0,
                                             strategy_params=(("sizer", None),)))
    for key in ("final_value", "max_drawdown", "liquidations", "entries_refused"):
        assert default.row[key] == explicit.row[key]


def test_cli_param_sizer_risk(shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    code = run_backtest.main(["run", "--csv", str(shared_data / "binance_um_BTCUSDT_1h.csv"),
                              "--start", "2022-05-01", "--end", "2022-06-01",
                              "--strategy", "rsi_reversion", "--leverage", "25",
                              "--param", "sizer=risk", "--param", "risk_per_trade=0.01",
                              "--param", "stop_loss=0.05", "--out", str(out)])
    assert code == 0
    row = json.loads((out / "metrics.json").read_text())[0]
    assert row["entries_refused"] > 0 and row["liquidations"] == 0
    html = (out / "report.html").read_text()
    assert f"{row['entries_refused']} entries refused: stop 5 % beyond liquidation at 25x" in html
    assert json.loads(row["strategy_params"]) == {"risk_per_trade": 0.01, "sizer": "risk",
                                                   "stop_loss": 0.05}


class SignalScript(LeveragedStrategy):
    """Signals from a script, one per bar: 1 = long, None = keep."""

    params = (("script", ()),)

    def signal(self):
        return self.p.script[len(self) - 1]


@pytest.mark.parametrize("script, asked", [
    ((1, 1, 1, 1, 1, 1), 1),                  # one signal held six bars: asked once
    ((1, None, 1, None, 1, None), 3),         # three separate signals
])
def test_a_refused_signal_is_asked_once_while_it_lasts(script, asked):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ArrayFeed(dataname=flat_frame()))
    cerebro.broker = MarginBroker(cash=EQUITY, leverage=25.0, maintenance_margin_rate=MMR)
    cerebro.broker.setcommission(commission=FEE)
    cerebro.addstrategy(SignalScript, script=script, sizer="risk", stop_loss=STOP)
    strategy = cerebro.run()[0]
    assert len(strategy.refusals) == asked and strategy.entries == 0
    assert strategy.getsizer().refusals == strategy.refusals


# -- invariants --------------------------------------------------------------------------------

FLAT_TIERS = (MarginTier(0.0, math.inf, MMR, 0.0, 1 / MMR),)


@given(side=st.sampled_from([1, -1]),
       equity=st.floats(100, 1e7),
       entry=st.floats(1, 1e6),
       stop_loss=st.floats(0.001, 0.5),
       risk=st.floats(0.001, 0.2),
       fee=st.floats(0, 0.002),
       leverage=st.floats(1, 150))
def test_size_never_risks_more_than_asked_nor_margins_more_than_allowed(
        side, equity, entry, stop_loss, risk, fee, leverage):
    plan = risk_position_size(side, equity, entry, stop_loss, risk, fee, leverage,
                              tiers=FLAT_TIERS, max_margin_fraction=0.95)
    size = plan.wanted
    stop = entry * (1 - side * stop_loss)
    loss_at_stop = size * entry * stop_loss + fee * size * (entry + stop)
    assert loss_at_stop <= risk * equity * (1 + 1e-9)
    assert size * entry * (1 / leverage + fee) <= 0.95 * equity * (1 + 1e-9)
    if plan.limited_by == "risk":
        assert loss_at_stop == pytest.approx(risk * equity, rel=1e-9)
    if plan.refusal is None:
        assert plan.size == size > 0
        assert side * (stop - plan.liquidation_price) > 0     # the stop fills first
    else:
        assert plan.size == 0.0
        assert side * (stop - plan.liquidation_price) <= 0
