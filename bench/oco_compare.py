"""OCO entry pairs on BackBroker vs MarginBroker: what each does when cash is short.

Every 24 hours a strategy sends an OCO pair of entries — a buy stop 1 % above the
close and a buy limit 1 % below — each for ``fraction`` of the cash at 1x, and closes
the position 12 hours after a fill. BackBroker reserves cash for every member at
submission and cancels the group when one member is refused; MarginBroker judges
members at their fill only (they replace each other). With ``fraction`` 0.6 the two
members together need 120 % of the cash; with 0.1 both brokers agree.

Run: python bench/oco_compare.py [path to binance_BTCUSDT_1h.csv]
"""
import datetime
import sys
from pathlib import Path

import backtrader as bt

from backtrader_leverage.broker import MarginBroker
from backtrader_leverage.data import ArrayFeed, load_csv

DEFAULT_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binance_BTCUSDT_1h.csv"
CASH = 100_000.0


class OcoEntries(bt.Strategy):
    params = (("fraction", 0.6), ("every", 24), ("hold", 12))

    def __init__(self):
        self.completed = self.margin = 0
        self.filled_at = None

    def notify_order(self, order):
        if order.status == order.Completed:
            self.completed += 1
            if self.position and self.filled_at is None:
                self.filled_at = len(self)
        elif order.status == order.Margin:
            self.margin += 1

    def next(self):
        if self.position:
            if self.filled_at is not None and len(self) - self.filled_at >= self.p.hold:
                self.close()
                self.filled_at = None
            return
        if len(self) % self.p.every:
            return
        close = self.data.close[0]
        size = round(self.p.fraction * self.broker.getcash() / close, 3)
        valid = bt.num2date(self.data.datetime[0]) + datetime.timedelta(hours=self.p.every - 1)
        first = self.buy(size=size, exectype=bt.Order.Stop, price=close * 1.01, valid=valid)
        self.buy(size=size, exectype=bt.Order.Limit, price=close * 0.99, oco=first,
                 valid=valid)


def run(broker, frame, fraction):
    cerebro = bt.Cerebro(stdstats=False)
    broker.setcash(CASH)
    broker.setcommission(commission=0.0004)
    cerebro.broker = broker
    cerebro.adddata(ArrayFeed(dataname=frame))
    cerebro.addstrategy(OcoEntries, fraction=fraction)
    strategy = cerebro.run()[0]
    return strategy.completed, strategy.margin, broker.getvalue()


def main(csv_path=DEFAULT_CSV):
    frame = load_csv(csv_path).loc["2022-01-01":"2022-12-31"]
    for fraction in (0.6, 0.1):
        for name, broker in (("BackBroker", bt.brokers.BackBroker()),
                             ("MarginBroker", MarginBroker(leverage=1))):
            completed, margin, value = run(broker, frame, fraction)
            print(f"fraction {fraction:.1f}  {name:<12} completed {completed:3d}  "
                  f"Margin {margin:3d}  final value {value:,.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
