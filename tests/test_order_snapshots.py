"""MarginBroker's order snapshots: the same fills as BackBroker's, in lighter containers.

``MarginBroker.notify`` turns an order's ``exbits`` deques (760 B each, kept for
the whole run in every snapshot the strategy stores) into a list (the fills)
and an empty tuple (``created``: never filled). What a strategy reads of the
snapshots must not change: compared here with plain BackBroker on the same
orders.
"""
from __future__ import annotations

import backtrader as bt

from backtrader_leverage.broker import MarginBroker

from _bars import bars_feed


def _bits(bits):
    return [(bit.dt, bit.size, bit.price, bit.closed, bit.opened, bit.pnl) for bit in bits]


class SnapshotLog(bt.Strategy):
    """Buys 2 at bar 1, sells 3 at bar 3 (a reversal), closes at bar 5; logs every snapshot."""

    def __init__(self):
        self.log, self.snapshots = [], []

    def notify_order(self, order):
        executed = order.executed
        self.snapshots.append(order)
        self.log.append((order.ref - self.first_ref, order.getstatusname(), executed.size,
                         executed.price, len(executed), _bits(executed.exbits),
                         _bits(executed.iterpending()), _bits(order.created.exbits),
                         _bits([executed[-1]]) if len(executed) else []))

    def next(self):
        bar = len(self) - 1
        if bar == 1:
            self.first_ref = self.buy(size=2).ref
        elif bar == 3:
            self.sell(size=3)
        elif bar == 5:
            self.close()


def _run(broker):
    cerebro = bt.Cerebro(stdstats=False)
    # 100, 101, ..., every bar's range 1 wide: nothing near a liquidation at 1x
    cerebro.adddata(bars_feed([(100 + i, 100.5 + i, 99.5 + i, 100 + i) for i in range(8)]))
    cerebro.broker = broker
    cerebro.addstrategy(SnapshotLog)
    return cerebro.run()[0]


def test_snapshots_read_the_same_as_backbrokers():
    margin = _run(MarginBroker(cash=10_000.0, leverage=1.0))
    plain = _run(bt.brokers.BackBroker(cash=10_000.0))
    # 3 orders x (Submitted, Accepted, Completed); fills at the next open: 102, 104, 106
    assert [entry[1] for entry in margin.log] == ["Submitted", "Accepted", "Completed"] * 3
    assert [entry[3] for entry in margin.log if entry[1] == "Completed"] == [102.0, 104.0, 106.0]
    assert margin.log == plain.log


def test_snapshot_containers_are_a_list_and_an_empty_tuple():
    strategy = _run(MarginBroker(cash=10_000.0, leverage=1.0))
    for snapshot in strategy.snapshots:
        assert type(snapshot.executed.exbits) is list
        assert snapshot.created.exbits == ()
    completed = [s for s in strategy.snapshots if s.status == s.Completed]
    # each order filled once: its one bit, shared by the order's three snapshots
    assert [len(s.executed.exbits) for s in completed] == [1, 1, 1]
    assert [s.executed.exbits[0].size for s in completed] == [2.0, -3.0, 1.0]


def test_snapshots_without_a_fill_between_share_their_executed_data():
    strategy = _run(MarginBroker(cash=10_000.0, leverage=1.0))
    by_order = {}
    for snapshot in strategy.snapshots:
        by_order.setdefault(snapshot.ref, []).append(snapshot)
    for submitted, accepted, completed in by_order.values():
        assert accepted.executed is submitted.executed         # nothing filled between
        assert completed.executed is not accepted.executed     # the fill: a snapshot of its own
        assert accepted.executed.size == 0 and completed.executed.size != 0
