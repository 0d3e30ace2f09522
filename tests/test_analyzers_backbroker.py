"""The four analyzers on hand-made price paths, with a plain BackBroker and a fake margin broker.

Orders placed in bar k fill at bar k+1's open. Each expected figure is arithmetic of named constants.
"""
import dataclasses
import json
import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from backtrader_leverage.analyzers import summary_text
from backtrader_leverage.analyzers.risk_metrics import SECONDS_PER_YEAR
from test_analyzers_support import (ANALYZERS, HOUR, FakeEpisode, FakeLiquidation, FakeMarginBroker,
                                    analyses, bar_time, flat_bar, iso, ohlc_feed, run)

CASH = 1000.0


# -- RiskAnalyzer with BackBroker: a drawdown with known depth and length ------------------

SIZE = 5.0
ENTRY = 100.0
# bar:          0      1      2     3     4      5
CLOSES = [ENTRY, 110.0, 90.0, 80.0, 110.0, 120.0]


def _long_run():
    bars = [flat_bar(ENTRY)] + [(ENTRY if i == 1 else close, max(ENTRY, close), min(ENTRY, close), close)
                                for i, close in enumerate(CLOSES) if i > 0]
    return run([ohlc_feed(bars)], cash=CASH, plan={0: [("buy", SIZE, 0)]})


def test_risk_of_a_long_with_known_drawdown():
    result = analyses(_long_run())["risk"]
    wallet = CASH - SIZE * ENTRY                    # 500 after buying at bar 1's open
    equity = [wallet + SIZE * close for close in CLOSES[1:]]  # 1050, 950, 900, 1050, 1100
    peak, trough, final = equity[0], equity[2], equity[-1]
    assert result["bars"] == len(CLOSES)
    assert result["bar_interval"] == HOUR
    assert result["start_value"] == CASH and result["end_value"] == final
    assert result["total_return"] == pytest.approx(final / CASH - 1)
    assert result["max_drawdown"] == pytest.approx(1 - trough / peak)
    assert result["max_drawdown_start"] == iso(1)     # peak after bar 1
    assert result["max_drawdown_trough"] == iso(3)
    assert result["max_drawdown_recovery"] == iso(4)  # 1050 again
    assert result["longest_time_under_water"] == (4 - 1) * HOUR
    years = len(CLOSES) * HOUR / SECONDS_PER_YEAR
    growth = (final / CASH) ** (1 / years) - 1     # huge over 6 hours, still a float
    assert result["cagr"] == pytest.approx(growth)
    assert result["calmar"] == pytest.approx(growth / (1 - trough / peak))
    assert result["exposure_time"] == 5 * HOUR       # bars 1..5 hold the position
    assert result["exposure_fraction"] == pytest.approx(5 / 6)
    leverage = [SIZE * close / value for close, value in zip(CLOSES[1:], equity)]
    assert result["mean_effective_leverage"] == pytest.approx(np.mean(leverage))
    assert result["max_effective_leverage"] == pytest.approx(max(leverage))
    assert result["ruined"] is False and result["bankrupt_dt"] is None
    # one UTC day: a single daily return
    assert result["var_95"] == pytest.approx(final / CASH - 1)
    assert result["cvar_99"] == pytest.approx(final / CASH - 1)
    returns = np.diff([CASH, CASH] + equity) / np.array([CASH, CASH] + equity[:-1])
    periods = SECONDS_PER_YEAR / HOUR
    assert result["volatility"] == pytest.approx(returns.std(ddof=1) * math.sqrt(periods))
    assert result["sharpe"] == pytest.approx(returns.mean() / returns.std(ddof=1) * math.sqrt(periods))
    downside = math.sqrt(np.mean(np.minimum(returns, 0) ** 2))
    assert result["sortino"] == pytest.approx(returns.mean() * periods / (downside * math.sqrt(periods)))
    json.dumps(result, allow_nan=False)


def test_risk_series_for_plots():
    strategy = _long_run()
    series = strategy.analyzers.risk.series()
    wallet = CASH - SIZE * ENTRY
    equity = np.array([CASH] + [wallet + SIZE * close for close in CLOSES[1:]])
    assert series["time"].dtype == np.dtype("datetime64[ms]")
    assert series["time"][0] == np.datetime64(bar_time(0))
    assert series["equity"] == pytest.approx(equity)
    peak = np.maximum.accumulate(np.concatenate(([CASH], equity)))[1:]
    assert series["drawdown"] == pytest.approx(1 - equity / peak)
    assert math.isnan(series["effective_leverage"][0])  # flat on bar 0
    assert series["start_value"] == CASH


# -- zero bars, repeated calls, JSON ------------------------------------------------------------

def _empty_feed():
    frame = pd.DataFrame({c: [] for c in ("open", "high", "low", "close", "volume")},
                         index=pd.DatetimeIndex([], tz="UTC"), dtype=float)
    return bt.feeds.PandasData(dataname=frame)


def test_zero_bar_run_has_every_key():
    full = analyses(_long_run())
    empty_strategy = run([_empty_feed()], cash=CASH)
    empty = analyses(empty_strategy)
    for name in ANALYZERS:
        assert set(empty[name]) == set(full[name]), name
        json.dumps(empty[name], allow_nan=False)
    assert empty["liquidation"]["count"] == 0 and empty["liquidation"]["deficit"] == 0.0
    assert empty["margin"]["time_above"] == {"0.5": 0.0, "0.8": 0.0}
    assert empty["negative"]["time_below_zero"] == 0.0 and empty["negative"]["worst_balance"] == 0.0
    assert empty["risk"]["total_return"] == 0.0 and empty["risk"]["sharpe"] is None
    assert len(empty_strategy.analyzers.risk.series()["equity"]) == 0


def test_get_analysis_can_be_called_repeatedly_and_is_a_copy():
    strategy = _long_run()
    first = strategy.analyzers.risk.get_analysis()
    first["max_drawdown"] = "tampered"
    assert strategy.analyzers.risk.get_analysis()["max_drawdown"] != "tampered"
    assert strategy.analyzers.margin.get_analysis() == strategy.analyzers.margin.get_analysis()


# -- NegativeBalanceAnalyzer / RiskAnalyzer with BackBroker: a short whose value goes below zero ---

SHORT = 10.0
# bar:            0      1      2      3      4      5
SHORT_CLOSES = [ENTRY, 150.0, 250.0, 220.0, 190.0, 260.0]


def _short_run(closes=SHORT_CLOSES):
    bars = [flat_bar(ENTRY)] + [(ENTRY if i == 1 else c, max(ENTRY, c), min(ENTRY, c), c)
                                for i, c in enumerate(closes) if i > 0]
    return run([ohlc_feed(bars)], cash=CASH, plan={0: [("sell", SHORT, 0)]})


def test_backbroker_value_below_zero_is_a_negative_balance():
    result = analyses(_short_run())["negative"]
    wallet = CASH + SHORT * ENTRY                 # short proceeds: 2000
    value = [wallet - SHORT * c for c in SHORT_CLOSES]   # 1000, 500, -500, -200, 100, -600
    assert result["balance_source"] == "value" and result["policy"] is None
    assert result["count"] == 2
    first, second = result["episodes"]
    assert (first["start"], first["end"]) == (iso(2), iso(4))
    assert first["duration"] == (4 - 2) * HOUR
    assert first["lowest_balance"] == value[2]
    # still open at the end: lasts to the end of the last bar (bar 5 + 1 h)
    assert (second["start"], second["end"]) == (iso(5), None)
    assert second["duration"] == 1 * HOUR
    assert result["worst_balance"] == min(value)
    assert result["time_below_zero"] == (4 - 2) * HOUR + 1 * HOUR
    assert result["absorbed_deficit"] == 0.0 and result["insurance_fund"] is None


def test_risk_ruin_rule_on_a_value_below_zero():
    result = analyses(_short_run())["risk"]
    wallet = CASH + SHORT * ENTRY
    final = wallet - SHORT * SHORT_CLOSES[-1]
    assert result["bankrupt_dt"] == iso(2)       # first value <= 0
    assert result["ruined"] is True and result["ruin_dt"] == iso(2)  # 500 is not < 10 % of 1000
    assert result["max_drawdown"] == 1.0
    assert result["cagr"] == -1.0
    assert result["calmar"] == -1.0
    assert result["total_return"] == pytest.approx(final / CASH - 1)  # -1.6: below -100 %
    assert result["lowest_value"] == final
    # ratios stop at the ruin bar: returns 0 (bar 0), 500/1000-1, -100 %
    returns = np.array([0.0, (wallet - SHORT * SHORT_CLOSES[1]) / CASH - 1, -1.0])
    expected_sharpe = returns.mean() / returns.std(ddof=1) * math.sqrt(SECONDS_PER_YEAR / HOUR)
    assert result["sharpe"] == pytest.approx(expected_sharpe)
    assert result["max_drawdown_trough"] == iso(2) and result["max_drawdown_recovery"] is None


# -- MarginAnalyzer with the fake margin broker ------------------------------------------

LEVERAGE, RATE, QTY = 10.0, 0.005, 1.0
MARGIN = QTY * ENTRY / LEVERAGE                          # 10
LONG_LP = (MARGIN - QTY * ENTRY) / (QTY * RATE - QTY)    # 90 / 0.995


def ratio_at(low):
    """Margin ratio of the long at ``low``: maintenance / (margin + PnL)."""
    return QTY * low * RATE / (MARGIN + QTY * (low - ENTRY))


def distance_at(low):
    return (low - LONG_LP) / low


# lows of bars 1..: entry bar, calm, past 0.5, past 0.8, calm, past 0.8 again (no new call),
# then flat on bar 7 (closed at its open), reopened on bar 8, past 0.8 on bar 9 (calls re-armed)
CALM, NEAR, NEARER = 95.0, 90.75, 90.5
LOWS = [ENTRY, ENTRY, CALM, NEAR, NEARER, CALM, NEARER, ENTRY, ENTRY, NEARER, ENTRY]


def _margin_run():
    bars = [(ENTRY, ENTRY, low, ENTRY) for low in LOWS]
    broker = FakeMarginBroker(leverage=LEVERAGE, maintenance_margin_rate=RATE)
    return run([ohlc_feed(bars, name="BTC")], broker=broker, cash=CASH,
               plan={0: [("buy", QTY, 0)], 6: [("close", None, 0)], 7: [("buy", QTY, 0)]})


def test_margin_ratio_distance_and_margin_calls():
    assert ratio_at(NEAR) > 0.5 > ratio_at(CALM) and ratio_at(NEARER) > 0.8 > ratio_at(NEAR)
    strategy = _margin_run()
    result = strategy.analyzers.margin.get_analysis()
    assert result["worst_margin_ratio"] == pytest.approx(ratio_at(NEARER))
    assert result["worst_margin_ratio_dt"] == iso(4) and result["worst_margin_ratio_data"] == "BTC"
    assert result["closest_distance"] == pytest.approx(distance_at(NEARER))
    assert result["closest_distance_dt"] == iso(4)
    # bars with ratio >= 0.5: 3, 4, 6, 9; >= 0.8: 4, 6, 9
    assert result["time_above"] == {"0.5": 4 * HOUR, "0.8": 3 * HOUR}
    calls = [(c["dt"], c["data"], c["level"]) for c in result["margin_calls"]]
    assert calls == [(iso(3), "BTC", 0.5), (iso(4), "BTC", 0.8), (iso(9), "BTC", 0.5), (iso(9), "BTC", 0.8)]
    assert result["margin_calls"][0]["ratio"] == pytest.approx(ratio_at(NEAR))
    # effective leverage at the close (100): notional 100 / account value (1000, no PnL at 100)
    assert result["max_effective_leverage"] == pytest.approx(QTY * ENTRY / CASH)
    json.dumps(result, allow_nan=False)

    series = strategy.analyzers.margin.series()
    ratio = series["margin_ratio"]["BTC"]
    assert np.isnan(ratio[0]) and np.isnan(ratio[7])      # flat before the fill and on bar 7
    assert ratio[1:7] == pytest.approx([ratio_at(low) for low in LOWS[1:7]])
    assert series["distance"]["BTC"][3] == pytest.approx(distance_at(NEAR))


def test_margin_analyzer_with_backbroker_measures_only_leverage():
    result = analyses(_long_run())["margin"]
    assert result["worst_margin_ratio"] is None and result["closest_distance"] is None
    assert result["margin_calls"] == []
    wallet = CASH - SIZE * ENTRY
    leverage = [SIZE * c / (wallet + SIZE * c) for c in CLOSES[1:]]
    assert result["max_effective_leverage"] == pytest.approx(max(leverage))


def test_short_margin_ratio_uses_the_high():
    HIGH = 109.0
    bars = [flat_bar(ENTRY), flat_bar(ENTRY), (ENTRY, HIGH, ENTRY, ENTRY)]
    strategy = run([ohlc_feed(bars)], broker=FakeMarginBroker(leverage=LEVERAGE, maintenance_margin_rate=RATE),
                   cash=CASH, plan={0: [("sell", QTY, 0)]})
    short_lp = (MARGIN + QTY * ENTRY) / (QTY * RATE + QTY)   # 110 / 1.005
    result = strategy.analyzers.margin.get_analysis()
    assert result["worst_margin_ratio"] == pytest.approx(QTY * HIGH * RATE / (MARGIN - QTY * (HIGH - ENTRY)))
    assert result["closest_distance"] == pytest.approx((short_lp - HIGH) / HIGH)


# -- records injected into the fake broker: LiquidationAnalyzer and a liquidation bar ----------

LIQ_BAR = 3
FILL = 90.0  # gapped to the bankruptcy price
FEE = 0.25


def _liquidation_record(strategy):
    return FakeLiquidation(
        dt=bar_time(LIQ_BAR), opened_dt=bar_time(1), data="BTC", side="long", size=QTY,
        entry_price=ENTRY, liquidation_price=LONG_LP, bankruptcy_price=ENTRY - MARGIN,
        fill_price=FILL, margin_lost=MARGIN, fee=FEE, deficit=0.0)


def test_liquidation_bar_counts_as_ratio_one_and_distance_zero():
    bars = [flat_bar(ENTRY)] * 6
    broker = FakeMarginBroker(leverage=LEVERAGE, maintenance_margin_rate=RATE)
    hooks = {LIQ_BAR: lambda s: s.broker.liquidations.append(_liquidation_record(s))}
    # the position is closed at bar 3's open (standing in for the liquidation fill)
    strategy = run([ohlc_feed(bars, name="BTC")], broker=broker, cash=CASH,
                   plan={0: [("buy", QTY, 0)], 2: [("close", None, 0)]}, hooks=hooks)
    result = analyses(strategy)
    liquidation = result["liquidation"]
    assert liquidation["count"] == 1 and liquidation["by_data"] == {"BTC": 1}
    event = liquidation["events"][0]
    assert event["dt"] == iso(LIQ_BAR) and event["opened_dt"] == iso(1)
    assert event["time_to_liquidation"] == (LIQ_BAR - 1) * HOUR
    assert event["fill_price"] == FILL and event["side"] == "long"
    assert liquidation["margin_lost"] == MARGIN and liquidation["fees"] == FEE
    assert liquidation["deficit"] == 0.0
    margin = result["margin"]
    assert margin["worst_margin_ratio"] == 1.0 and margin["worst_margin_ratio_dt"] == iso(LIQ_BAR)
    assert margin["closest_distance"] == 0.0
    assert [c["level"] for c in margin["margin_calls"]] == [0.5, 0.8]
    assert margin["time_above"] == {"0.5": HOUR, "0.8": HOUR}
    marks = strategy.analyzers.liquidation.series()
    assert marks["time"][0] == np.datetime64(bar_time(LIQ_BAR)) and marks["fill_price"][0] == FILL
    assert marks["side"].tolist() == [1.0]
    json.dumps(result, allow_nan=False)


def test_negative_balance_reads_broker_episodes_and_deficits():
    DEFICIT, LOWEST = 3.0, -3.0
    bars = [flat_bar(ENTRY)] * 5

    def liquidate(strategy):
        record = _liquidation_record(strategy)
        strategy.broker.liquidations.append(dataclasses.replace(record, deficit=DEFICIT))
        strategy.broker.negative_balance_episodes.append(FakeEpisode(bar_time(LIQ_BAR), None, LOWEST))

    for policy in ("absorb", "carry"):
        broker = FakeMarginBroker(negative_balance=policy)
        strategy = run([ohlc_feed(bars, name="BTC")], broker=broker, cash=CASH, hooks={LIQ_BAR: liquidate})
        result = strategy.analyzers.negative.get_analysis()
        assert result["policy"] == policy and result["balance_source"] == "wallet"
        assert result["absorbed_deficit"] == (DEFICIT if policy == "absorb" else 0.0)
        assert result["carried_deficit"] == (DEFICIT if policy == "carry" else 0.0)
        assert result["insurance_fund"] == 0.0
        (episode,) = result["episodes"]
        last_bar = len(bars) - 1
        assert episode["end"] is None
        assert episode["duration"] == (last_bar + 1 - LIQ_BAR) * HOUR   # to the end of the last bar
        assert result["time_below_zero"] == episode["duration"]
        assert result["worst_balance"] == LOWEST


def test_summary_text_mentions_every_analyzer():
    result = analyses(_long_run())
    text = summary_text(liquidation=result["liquidation"], margin=result["margin"],
                        negative_balance=result["negative"], risk=result["risk"])
    for word in ("Liquidations", "Margin", "Negative balance", "Risk", "max drawdown"):
        assert word in text
