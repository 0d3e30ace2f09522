"""The four analyzers with the real MarginBroker: hand-made liquidations and a real-data crash.

Orders placed in bar k fill at bar k+1's open. No trading fees unless stated.
Long 1 at 100 with 10x, mmr 0.005: margin 10, LP = 90 / 0.995, BP = 90.
Short 1 at 100 with 10x: LP = 110 / 1.005, BP = 110.
"""
import json

import backtrader as bt
import pandas as pd
import pytest

from backtrader_leverage.analyzers import summary_text
from backtrader_leverage.broker import MarginBroker
from test_analyzers_support import HOUR, analyses, flat_bar, iso, ohlc_feed, run

ENTRY, LEVERAGE, RATE, QTY = 100.0, 10.0, 0.005, 1.0
MARGIN = QTY * ENTRY / LEVERAGE                       # 10
LONG_LP = (MARGIN - QTY * ENTRY) / (QTY * RATE - QTY)  # 90 / 0.995 = 90.4523
LONG_BP = ENTRY - MARGIN / QTY                        # 90
SHORT_LP = (MARGIN + QTY * ENTRY) / (QTY * RATE + QTY)  # 110 / 1.005 = 109.4527
SHORT_BP = ENTRY + MARGIN / QTY                       # 110


def broker(**kwargs):
    return MarginBroker(leverage=LEVERAGE, maintenance_margin_rate=RATE, **kwargs)


# -- a 10x long liquidated on bar k -------------------------------------------------------

CALM_LOW, LIQ_LOW = 95.0, 90.2
LIQ_BAR = 3
# bar 0 flat, buy fills at bar 1's open, bar 2 dips to 95, bar 3 trades through the LP
LONG_BARS = [flat_bar(ENTRY), flat_bar(ENTRY), (ENTRY, ENTRY, CALM_LOW, ENTRY),
             (ENTRY, ENTRY, LIQ_LOW, 92.0), flat_bar(92.0)]
CASH = 1000.0


def _long_liquidation(runonce=True):
    return run([ohlc_feed(LONG_BARS, name="BTC")], broker=broker(), cash=CASH,
               plan={0: [("buy", QTY, 0)]}, runonce=runonce)


@pytest.mark.parametrize("runonce", [True, False])
def test_long_liquidated_on_bar_k(runonce):
    strategy = _long_liquidation(runonce)
    result = analyses(strategy)
    liquidation = result["liquidation"]
    assert liquidation["count"] == 1 == len(strategy.broker.liquidations)
    (event,) = liquidation["events"]
    assert event["dt"] == iso(LIQ_BAR) and event["opened_dt"] == iso(1)
    assert event["time_to_liquidation"] == (LIQ_BAR - 1) * HOUR
    assert event["fill_price"] == pytest.approx(LONG_LP)        # the low crossed it, the open did not
    assert event["liquidation_price"] == pytest.approx(LONG_LP)
    assert event["bankruptcy_price"] == pytest.approx(LONG_BP)
    fee = MARGIN + QTY * (LONG_LP - ENTRY)                      # what is left of the margin at LP
    assert liquidation["margin_lost"] == pytest.approx(MARGIN)
    assert liquidation["fees"] == pytest.approx(fee)            # 0.4523 clearance fee
    assert liquidation["deficit"] == 0.0

    margin = result["margin"]
    assert margin["worst_margin_ratio"] == 1.0 and margin["worst_margin_ratio_dt"] == iso(LIQ_BAR)
    assert margin["closest_distance"] == 0.0 and margin["closest_distance_dt"] == iso(LIQ_BAR)
    calm_ratio = QTY * CALM_LOW * RATE / (MARGIN + QTY * (CALM_LOW - ENTRY))
    assert strategy.analyzers.margin.series()["margin_ratio"]["BTC"][2] == pytest.approx(calm_ratio)
    assert [(c["dt"], c["level"], c["ratio"]) for c in margin["margin_calls"]] == \
        [(iso(LIQ_BAR), 0.5, 1.0), (iso(LIQ_BAR), 0.8, 1.0)]
    assert margin["time_above"] == {"0.5": HOUR, "0.8": HOUR}

    risk = result["risk"]
    final = CASH - MARGIN                                       # the whole margin is lost
    assert risk["end_value"] == pytest.approx(final)
    assert risk["total_return"] == pytest.approx(final / CASH - 1)
    # the deepest point is the liquidation bar (990) — the dip to 95 was not marked at the close
    assert risk["max_drawdown"] == pytest.approx(1 - final / CASH)
    assert risk["max_drawdown_trough"] == iso(LIQ_BAR)
    assert risk["exposure_time"] == (LIQ_BAR - 1) * HOUR        # bars 1 and 2 hold it at the close
    assert risk["ruined"] is False

    negative = result["negative"]
    assert negative["policy"] == "absorb" and negative["count"] == 0
    assert negative["absorbed_deficit"] == 0.0 and negative["worst_balance"] == 0.0
    assert negative["insurance_fund"] == pytest.approx(fee)
    json.dumps(result, allow_nan=False)


# -- a short gapped past its bankruptcy price, under both policies --------------------------

GAP_OPEN = 120.0
GAP_BAR = 2
SMALL_CASH = 15.0          # margin 10 leaves 5 in the wallet
SHORT_BARS = [flat_bar(ENTRY), flat_bar(ENTRY), flat_bar(GAP_OPEN), flat_bar(GAP_OPEN), flat_bar(GAP_OPEN)]


@pytest.mark.parametrize("policy", ["absorb", "carry"])
def test_short_gapped_past_bankruptcy(policy):
    strategy = run([ohlc_feed(SHORT_BARS, name="BTC")], broker=broker(negative_balance=policy),
                   cash=SMALL_CASH, plan={0: [("sell", QTY, 0)]})
    result = analyses(strategy)
    deficit = QTY * abs(SHORT_BP - GAP_OPEN)                    # 10, filled at the open
    wallet = SMALL_CASH - MARGIN - (deficit if policy == "carry" else 0.0)   # 5 or -5

    liquidation = result["liquidation"]
    (event,) = liquidation["events"]
    assert event["dt"] == iso(GAP_BAR) and event["side"] == "short"
    assert event["fill_price"] == GAP_OPEN
    assert liquidation["deficit"] == pytest.approx(deficit)
    assert liquidation["fees"] == 0.0 and liquidation["margin_lost"] == pytest.approx(MARGIN)
    assert liquidation["deficit"] == sum(r.deficit for r in strategy.broker.liquidations)

    negative = result["negative"]
    assert negative["policy"] == policy
    last_bar = len(SHORT_BARS) - 1
    if policy == "absorb":
        assert negative["absorbed_deficit"] == pytest.approx(deficit)
        assert negative["carried_deficit"] == 0.0
        assert negative["insurance_fund"] == pytest.approx(-deficit)  # fee 0 minus the deficit
        assert negative["episodes"] == [] and negative["time_below_zero"] == 0.0
        assert negative["worst_balance"] == 0.0
    else:
        assert negative["absorbed_deficit"] == 0.0
        assert negative["carried_deficit"] == pytest.approx(deficit)
        (episode,) = negative["episodes"]
        assert episode["start"] == iso(GAP_BAR) and episode["end"] is None
        assert episode["lowest_balance"] == pytest.approx(wallet)
        assert episode["duration"] == (last_bar + 1 - GAP_BAR) * HOUR   # to the end of the last bar
        assert negative["time_below_zero"] == episode["duration"]
        assert negative["worst_balance"] == pytest.approx(wallet)
        assert [e.to_dict() for e in strategy.broker.negative_balance_episodes] == \
            [{"start": episode["start"], "end": None, "lowest_balance": episode["lowest_balance"]}]

    margin = result["margin"]
    assert margin["worst_margin_ratio"] == 1.0 and margin["closest_distance"] == 0.0

    risk = result["risk"]
    assert risk["total_return"] == pytest.approx(wallet / SMALL_CASH - 1)
    if policy == "carry":                     # value -5: bankrupt on the gap bar
        assert risk["bankrupt_dt"] == iso(GAP_BAR) and risk["ruined"] is True
        assert risk["max_drawdown"] == 1.0 and risk["cagr"] == -1.0
        assert risk["total_return"] < -1.0
    else:                                     # 5 of 15 left: a 2/3 drawdown, not ruin
        assert risk["bankrupt_dt"] is None and risk["ruined"] is False
        assert risk["max_drawdown"] == pytest.approx(1 - wallet / SMALL_CASH)
    json.dumps(result, allow_nan=False)


# -- real data: a 10x long re-entered after each liquidation, through the May 2021 crash ------

class AlwaysLong(bt.Strategy):
    """Holds a long of ``fraction`` x leverage x value; re-enters when flat."""

    params = (("fraction", 0.5),)

    def next(self):
        if not self.position and not self._pending():
            leverage = self.broker.get_leverage(self.data)
            notional = self.p.fraction * self.broker.getcash() * leverage
            self.buy(size=notional / self.data.close[0])

    def _pending(self):
        return any(o.alive() for o in self.broker.orders if o.data is self.data)


def _binance_slice(shared_data, first, last):
    frame = pd.read_csv(shared_data / "binance_BTCUSDT_1h.csv", index_col="date")
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame.loc[first:last]


def _run_real(shared_data, policy, first, last, leverage=10.0):
    from test_analyzers_support import ANALYZERS
    cerebro = bt.Cerebro(stdstats=False)
    frame = _binance_slice(shared_data, first, last)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=60),
                    name="BTCUSDT")
    cerebro.broker = MarginBroker(cash=10_000, leverage=leverage, negative_balance=policy)
    cerebro.broker.setcommission(commission=0.0004)
    cerebro.addstrategy(AlwaysLong)
    for name, analyzer in ANALYZERS.items():
        cerebro.addanalyzer(analyzer, _name=name)
    return cerebro.run()[0], len(frame)


@pytest.mark.parametrize("policy", ["absorb", "carry"])
def test_real_crash_analyzers_agree_with_broker(shared_data, policy):
    strategy, bars = _run_real(shared_data, policy, "2021-04-20", "2021-06-10")
    broker_ = strategy.broker
    result = analyses(strategy)
    records = broker_.liquidations
    liquidation = result["liquidation"]
    assert liquidation["count"] == len(records) >= 1
    assert liquidation["events"] == [{**r.to_dict(), "time_to_liquidation": (r.dt - r.opened_dt).total_seconds()}
                                     for r in records]
    assert liquidation["margin_lost"] == pytest.approx(sum(r.margin_lost for r in records))
    assert liquidation["fees"] == pytest.approx(sum(r.fee for r in records))
    assert liquidation["deficit"] == pytest.approx(sum(r.deficit for r in records))

    margin = result["margin"]
    assert margin["worst_margin_ratio"] == 1.0
    liquidated_at = {r.dt.isoformat() for r in records}
    assert margin["worst_margin_ratio_dt"] in liquidated_at
    ratio = strategy.analyzers.margin.series()["margin_ratio"]["BTCUSDT"]
    assert int((ratio == 1.0).sum()) == len(records)   # one ratio-1 bar per liquidation
    assert len(ratio) == bars
    assert {c["dt"] for c in margin["margin_calls"] if c["level"] == 0.8} >= liquidated_at

    negative = result["negative"]
    deficits = sum(r.deficit for r in records)
    assert negative["absorbed_deficit" if policy == "absorb" else "carried_deficit"] == pytest.approx(deficits)
    assert negative["count"] == len(broker_.negative_balance_episodes)
    assert negative["insurance_fund"] == pytest.approx(broker_.insurance_fund)

    risk = result["risk"]
    assert risk["bars"] == bars and risk["bar_interval"] == HOUR
    assert risk["start_value"] == 10_000 and risk["end_value"] == pytest.approx(broker_.getvalue())
    assert risk["max_drawdown"] > 0 and risk["var_95"] < 0 and risk["cvar_95"] <= risk["var_95"]
    assert risk["max_effective_leverage"] > 1
    json.dumps(result, allow_nan=False)
    print()
    print(summary_text(liquidation, margin, negative, risk))


# -- two feeds: a liquidation on one leaves the other alone ------------------------------------

def test_two_feeds_named_and_unnamed():
    OTHER_ENTRY, OTHER_LOW = 50.0, 47.0
    other_bars = [flat_bar(OTHER_ENTRY)] * 2 + [(OTHER_ENTRY, OTHER_ENTRY, OTHER_LOW, OTHER_ENTRY)] * 3
    strategy = run([ohlc_feed(LONG_BARS, name="BTC"), ohlc_feed(other_bars)], broker=broker(), cash=CASH,
                   plan={0: [("buy", QTY, 0)], 1: [("buy", QTY, 1)]})
    result = analyses(strategy)
    assert result["liquidation"]["by_data"] == {"BTC": 1}
    margin = result["margin"]
    assert set(margin["per_data"]) == {"BTC", "data1"}
    other_margin = QTY * OTHER_ENTRY / LEVERAGE                                   # 5
    other_ratio = QTY * OTHER_LOW * RATE / (other_margin + QTY * (OTHER_LOW - OTHER_ENTRY))  # 0.235 / 2
    other = margin["per_data"]["data1"]
    assert other["worst_margin_ratio"] == pytest.approx(other_ratio)
    assert other["worst_margin_ratio_dt"] == iso(2)       # opened at bar 2's open, low 47 at once
    assert margin["per_data"]["BTC"]["worst_margin_ratio"] == 1.0
    assert margin["worst_margin_ratio_data"] == "BTC"
    # only BTC reached the warning levels; the calls name it
    assert {c["data"] for c in margin["margin_calls"]} == {"BTC"}
    assert strategy.broker.getposition(strategy.datas[1]).size == QTY   # isolation
    # effective leverage on the last bar: data1's notional / value (BTC is flat)
    final_value = CASH - MARGIN + QTY * (OTHER_ENTRY - OTHER_ENTRY)
    assert strategy.analyzers.margin.series()["effective_leverage"][-1] == \
        pytest.approx(QTY * OTHER_ENTRY / final_value)
    json.dumps(result, allow_nan=False)


def test_margin_call_rearmed_for_a_new_trade_on_the_second_feed():
    # data1: long 10x at 50 with a low of 45.25 on its first bar (ratio > 0.8); on bar 2 it is
    # closed and re-bought, both filling at bar 3's open: a new trade of the same side, whose
    # deep bar 3 calls again (the feed never shows flat at a close)
    OTHER_ENTRY, DEEP_LOW = 50.0, 45.25
    other_margin = QTY * OTHER_ENTRY / LEVERAGE                                   # 5
    other_lp = (other_margin - QTY * OTHER_ENTRY) / (QTY * RATE - QTY)            # 45 / 0.995
    deep_ratio = QTY * DEEP_LOW * RATE / (other_margin + QTY * (DEEP_LOW - OTHER_ENTRY))  # 0.905
    assert deep_ratio > 0.8 and DEEP_LOW > other_lp
    deep = (OTHER_ENTRY, OTHER_ENTRY, DEEP_LOW, OTHER_ENTRY)
    other_bars = [flat_bar(OTHER_ENTRY), deep, flat_bar(OTHER_ENTRY), deep, flat_bar(OTHER_ENTRY)]
    strategy = run([ohlc_feed([flat_bar(ENTRY)] * 5, name="BTC"), ohlc_feed(other_bars)], broker=broker(),
                   cash=CASH, plan={0: [("buy", QTY, 1)], 2: [("close", None, 1), ("buy", QTY, 1)]})
    result = strategy.analyzers.margin.get_analysis()
    calls = [(c["dt"], c["data"], c["level"]) for c in result["margin_calls"]]
    assert calls == [(iso(1), "data1", 0.5), (iso(1), "data1", 0.8), (iso(3), "data1", 0.5), (iso(3), "data1", 0.8)]
    assert result["margin_calls"][0]["ratio"] == pytest.approx(deep_ratio)
    assert strategy.analyzers.liquidation.get_analysis()["count"] == 0


def test_zero_bar_run_with_margin_broker():
    from test_analyzers_backbroker import _empty_feed
    strategy = run([_empty_feed()], broker=broker(negative_balance="carry"), cash=CASH)
    result = analyses(strategy)
    text = json.dumps(result, allow_nan=False)
    assert result["liquidation"]["count"] == 0 and result["negative"]["policy"] == "carry"
    assert result["negative"]["insurance_fund"] == 0.0 and result["risk"]["start_value"] == CASH
    assert '"margin_calls": []' in text
