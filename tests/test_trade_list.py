"""TradeListAnalyzer with the real MarginBroker, and the metrics row's n/a rules.

Orders placed in bar k fill at bar k+1's open. No fees unless stated.
"""
import pytest

from backtrader_leverage.analyzers import TradeListAnalyzer
from backtrader_leverage.backtest.metrics import (REASON_FEW_RETURNS, REASON_RUINED,
                                                  REASON_SHORT_WINDOW, undefined_reasons)
from backtrader_leverage.broker import MarginBroker
from test_analyzers_support import iso, ohlc_feed, run

# bar opens: 100, 100, 110, 120, 130, 120, 90
OPENS = [100.0, 100.0, 110.0, 120.0, 130.0, 120.0, 90.0]
BARS = [(price, price, price, price) for price in OPENS]


def trades_of(plan, **broker_kwargs):
    broker = MarginBroker(leverage=broker_kwargs.pop("leverage", 2.0), **broker_kwargs)
    strategy = run([ohlc_feed(BARS, name="BTC")], broker=broker, cash=10_000.0, plan=plan,
                   analyzers={"trades": TradeListAnalyzer})
    return strategy.analyzers.trades.get_analysis()


def test_add_reverse_and_close_make_two_trades():
    # buy 1 @ bar 1 (100), buy 1 @ bar 2 (110): long 2 at (100 + 110) / 2 = 105;
    # sell 3 @ bar 4 (130): closes the long, pnl 2 x (130 - 105) = 50, opens short 1 at 130;
    # close @ bar 6 (90): short pnl 1 x (130 - 90) = 40; four fills in all
    analysis = trades_of({0: [("buy", 1, 0)], 1: [("buy", 1, 0)], 3: [("sell", 3, 0)],
                          5: [("close", None, 0)]})
    long_trade, short_trade = analysis["trades"]
    assert long_trade == {"data": "BTC", "side": "long", "size": 2.0, "entry_dt": iso(1),
                          "entry_price": 105.0, "exit_dt": iso(4), "exit_price": 130.0,
                          "exit_reason": "signal", "pnl": pytest.approx(50.0), "fees": 0.0}
    assert short_trade["side"] == "short" and short_trade["size"] == 1.0
    assert short_trade["entry_price"] == 130.0 and short_trade["exit_price"] == 90.0
    assert short_trade["pnl"] == pytest.approx(40.0) and short_trade["exit_dt"] == iso(6)
    assert analysis["count"] == 2 and analysis["fills"] == 4 and analysis["orders_rejected"] == 0


def test_fees_split_pro_rata_on_a_reversal_and_an_open_trade_stays_open():
    # 0.1 % fee: buy 1 @ 100 -> 0.1; sell 3 @ 120 -> 0.36, 1/3 closes the long (0.12),
    # 2/3 opens the short (0.24), which is still open at the end
    broker = MarginBroker(leverage=2.0)
    broker.setcommission(commission=0.001)
    strategy = run([ohlc_feed(BARS, name="BTC")], broker=broker, cash=10_000.0,
                   plan={0: [("buy", 1, 0)], 2: [("sell", 3, 0)]},
                   analyzers={"trades": TradeListAnalyzer})
    long_trade, short_trade = strategy.analyzers.trades.get_analysis()["trades"]
    assert long_trade["fees"] == pytest.approx(0.001 * 100 + 0.001 * 120)      # 0.22
    assert short_trade["fees"] == pytest.approx(0.001 * 2 * 120)                # 0.24
    assert short_trade["exit_reason"] == "open" and short_trade["exit_price"] is None


def test_refused_orders_are_counted_by_reason():
    # 10,000 cash at 2x opens at most ~20,000 of notional: 300 x 100 = 30,000 is refused
    analysis = trades_of({0: [("buy", 300, 0)], 1: [("buy", 1, 0)]})
    assert analysis["orders_rejected"] == 1 and analysis["rejections"] == {"balance": 1}
    assert analysis["count"] == 1


def test_a_liquidation_closes_the_trade():
    # long 10x from 100 (bar 1), mmr 0.5 %: LP = 100 x 0.9 / 0.995 = 90.45; bar 6 opens at 90
    analysis = trades_of({0: [("buy", 1, 0)]}, leverage=10.0)
    (trade,) = analysis["trades"]
    assert trade["exit_reason"] == "liquidation" and trade["exit_price"] == 90.0
    assert trade["pnl"] == pytest.approx(-10.0)                 # 1 x (90 - 100)


def risk(**values):
    base = {"ruined": False, "years": 365 / 365.0, "daily_returns": 365, "cagr": 0.1,
            "sharpe": 1.0, "sortino": 1.0, "calmar": 1.0, "var_95": -0.05, "cvar_95": -0.07}
    base.update(values)
    return base


def test_na_rules():
    assert set(undefined_reasons(risk()).values()) == {None}
    ruined = undefined_reasons(risk(ruined=True))
    assert ruined == {"cagr": None, "sharpe": REASON_RUINED, "sortino": REASON_RUINED,
                      "calmar": REASON_RUINED, "var_95": REASON_RUINED, "cvar_95": REASON_RUINED}
    # a one-month window, [Nov 1, Dec 1) hourly: 720 bars, first to last bar 719 h = 29.96 days
    month = undefined_reasons(risk(years=720 / 8760, bar_interval=3_600.0, daily_returns=29))
    assert month["cagr"] == month["calmar"] == REASON_SHORT_WINDOW
    assert month["sharpe"] == month["var_95"] == REASON_FEW_RETURNS
    # 721 bars span 720 h = 30 days: annualised figures are shown, and 30 daily returns suffice
    assert undefined_reasons(risk(years=721 / 8760, bar_interval=3_600.0,
                                  daily_returns=30)) == dict.fromkeys(month)
    assert undefined_reasons(risk(sharpe=None))["sharpe"] == "flat returns"
