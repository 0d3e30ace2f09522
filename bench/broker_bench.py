"""Cost of the margin broker: plain BackBroker vs MarginBroker, same data, same strategy.

Paired, alternating runs (A B, B A, …) of an SMA-crossover strategy over the
hourly BTCUSDT file; each run builds a fresh Cerebro on the same frame and
times ``cerebro.run()``. The machine is shared and noisy: read the ratios,
not the seconds.

    python bench/broker_bench.py [--pairs 5] [--bars 50000]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import backtrader as bt
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from backtrader_leverage.broker import MarginBroker  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "binance_BTCUSDT_1h.csv"


class SmaCross(bt.Strategy):
    params = (("fast", 20), ("slow", 50), ("size", 0.05))

    def __init__(self):
        self.cross = bt.indicators.CrossOver(bt.indicators.SMA(period=self.p.fast),
                                             bt.indicators.SMA(period=self.p.slow))

    def next(self):
        if self.cross > 0 and not self.position:
            self.buy(size=self.p.size)
        elif self.cross < 0 and self.position:
            self.close()


def load(bars: int) -> pd.DataFrame:
    frame = pd.read_csv(DATA, index_col="date")
    frame.index = pd.to_datetime(frame.index, utc=True).tz_localize(None)
    return frame.iloc[:bars]


def one_run(frame: pd.DataFrame, margin: bool) -> tuple[float, float]:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes,
                                        compression=60))
    cerebro.broker = MarginBroker(cash=100_000, leverage=1) if margin else \
        bt.brokers.BackBroker(cash=100_000)
    cerebro.addstrategy(SmaCross)
    started = time.perf_counter()
    cerebro.run()
    return time.perf_counter() - started, cerebro.broker.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--bars", type=int, default=50_000)
    args = parser.parse_args(argv)
    frame = load(args.bars)
    ratios = []
    for pair in range(args.pairs):
        order = (False, True) if pair % 2 == 0 else (True, False)
        results = {margin: one_run(frame, margin) for margin in order}
        (plain_time, plain_value), (margin_time, margin_value) = results[False], results[True]
        ratio = margin_time / plain_time
        ratios.append(ratio)
        print(f"pair {pair + 1}: BackBroker {plain_time:.2f} s, MarginBroker {margin_time:.2f} s, "
              f"ratio {ratio:.3f}  (final values {plain_value:.2f} / {margin_value:.2f})")
    print(f"median MarginBroker / BackBroker time over {len(frame)} bars: "
          f"{statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
