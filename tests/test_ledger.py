"""MarginBroker.ledger: a read-only sequence of CashFlow kept by column."""
from __future__ import annotations

import datetime as dt

import pytest

from backtrader_leverage.broker import CashFlow, Ledger

T = dt.datetime(2024, 1, 1, 8)
FLOWS = [CashFlow(None, None, "deposit", 1000.0, 11_000.0),
         CashFlow(T, "BTC", "margin_lock", -500.0, 10_500.0),
         CashFlow(T, "BTC", "fee", -0.2, 10_499.8),
         CashFlow(T + dt.timedelta(hours=1), "BTC", "funding", -0.05, 10_499.75)]


def test_a_ledger_reads_like_the_list_of_its_flows():
    ledger = Ledger()
    for flow in FLOWS[:2]:
        ledger.append(flow)
    for flow in FLOWS[2:]:
        ledger.record(flow.dt, flow.data, flow.reason, flow.amount, flow.balance)
    assert len(ledger) == ledger.length() == 4
    assert ledger == FLOWS and ledger == Ledger(FLOWS) and list(ledger) == FLOWS
    assert ledger[0] == FLOWS[0] and ledger[-1] == FLOWS[-1]
    assert ledger[1:3] == FLOWS[1:3] and ledger[::-2] == FLOWS[::-2]
    assert list(reversed(ledger)) == FLOWS[::-1]
    assert FLOWS[2] in ledger and ledger.index(FLOWS[3]) == 3
    assert [flow.reason for flow in ledger if flow.data == "BTC"] == ["margin_lock", "fee", "funding"]
    # the wallet adds up: 11,000 - 500 - 0.2 - 0.05 = 10,499.75
    assert sum(flow.amount for flow in ledger[1:]) + 11_000.0 == pytest.approx(10_499.75)
    assert ledger != FLOWS[:3]
    with pytest.raises(IndexError):
        ledger[4]
    with pytest.raises(TypeError):
        hash(ledger)


def test_amounts_come_back_as_the_floats_recorded():
    ledger = Ledger()
    amount = 0.1 + 0.2      # 0.30000000000000004: the same bits back
    ledger.record(T, "ETH", "realized_pnl", amount, 1e-300)
    assert ledger[0].amount == amount and ledger[0].balance == 1e-300
    assert ledger[0].to_dict()["dt"] == "2024-01-01T08:00:00"


def test_a_day_number_recorded_reads_back_as_the_bars_datetime():
    # MarginBroker records a bar's backtrader day number when the bar's datetime is not
    # converted yet (a funding bar): the ledger makes the datetime when the flow is read
    import backtrader as bt

    ledger = Ledger(to_datetime=bt.num2date)
    later = T + dt.timedelta(hours=8)               # 2024-01-01 16:00
    ledger.record(bt.date2num(later), "BTC", "funding", -0.05, 999.95)
    ledger.record(T, "BTC", "fee", -0.2, 999.75)
    assert ledger[0].dt == later and ledger[-1].dt == T
    assert [flow.dt for flow in ledger] == [later, T] == [flow.dt for flow in ledger[:]]
    assert list(reversed(ledger))[1].to_dict()["dt"] == "2024-01-01T16:00:00"
    assert ledger == [CashFlow(later, "BTC", "funding", -0.05, 999.95),
                      CashFlow(T, "BTC", "fee", -0.2, 999.75)]
