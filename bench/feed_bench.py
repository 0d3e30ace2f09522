"""Benchmark: data.ArrayFeed against bt.feeds.PandasData on one backtest.

Both feeds get the same 50,000 hourly bars (the first rows of
../shared/data/binance_BTCUSDT_1h.csv) and the same SMA(10)/SMA(30)
crossover strategy under default cerebro settings (preload and runonce on).
Each run is a fresh Python process; runs are paired and alternate which feed
goes first, because the machine is noisy and only ratios within a pair mean
something.  Two clocks per run:

* backtest: inside the worker, from building the feed to the end of
  ``cerebro.run()`` (the part the feed choice can change);
* process: the whole worker process, imports and CSV read included.

Ratio = PandasData seconds / ArrayFeed seconds (above 1: ArrayFeed faster).
The script also checks both feeds produced the same orders and final value.

Usage: python bench/feed_bench.py [--pairs 7] [--bars 50000] [--csv PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSV = Path(os.environ.get("SHARED_DATA", REPO_ROOT.parent / "shared" / "data")) \
    / "binance_BTCUSDT_1h.csv"
FEEDS = ("PandasData", "ArrayFeed")
TARGET_RATIO = 1.8


def run_worker(feed_name: str, csv_path: str, bar_count: int) -> None:
    """One backtest in this process; prints a JSON line with timings and results."""
    sys.path.insert(0, str(REPO_ROOT))
    import backtrader as bt
    import pandas as pd

    from backtrader_leverage.data import ArrayFeed

    class SmaCrossover(bt.Strategy):
        params = dict(fast=10, slow=30)

        def __init__(self):
            self.crossover = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast),
                                              bt.ind.SMA(period=self.p.slow))
            self.filled_orders = []

        def notify_order(self, order):
            if order.status == order.Completed:
                self.filled_orders.append((order.executed.dt, order.executed.size,
                                           order.executed.price))

        def next(self):
            if self.crossover > 0:
                self.order_target_percent(target=0.95)
            elif self.crossover < 0:
                self.order_target_percent(target=0.0)

    frame = pd.read_csv(csv_path, index_col="date", nrows=bar_count)
    frame.index = pd.to_datetime(frame.index, utc=True)

    started = time.perf_counter()
    if feed_name == "PandasData":
        feed = bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=60)
    else:
        feed = ArrayFeed(dataname=frame)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(100_000.0)
    cerebro.adddata(feed)
    cerebro.addstrategy(SmaCrossover)
    strategy = cerebro.run()[0]
    backtest_seconds = time.perf_counter() - started
    print(json.dumps({"feed": feed_name, "backtest_seconds": backtest_seconds,
                      "final_value": cerebro.broker.getvalue(),
                      "orders": strategy.filled_orders, "bars": len(frame)}))


def timed_run(feed_name: str, csv_path: str, bar_count: int) -> dict:
    """Run one worker process; add its wall-clock time as process_seconds."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", feed_name, "--csv", csv_path,
         "--bars", str(bar_count)], capture_output=True, text=True, check=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--bars", type=int, default=50_000)
    parser.add_argument("--csv", default=str(DEFAULT_CSV))
    parser.add_argument("--worker", choices=FEEDS, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        run_worker(arguments.worker, arguments.csv, arguments.bars)
        return 0
    if not Path(arguments.csv).is_file():
        print(f"benchmark data not found: {arguments.csv}", file=sys.stderr)
        return 2

    backtest_ratios, process_ratios, reference = [], [], None
    print(f"{arguments.bars} bars from {arguments.csv}; ratio = PandasData / ArrayFeed seconds")
    print("pair  order       PandasData s  ArrayFeed s  ratio   | process ratio")
    for pair in range(arguments.pairs):
        order = FEEDS if pair % 2 == 0 else FEEDS[::-1]
        results = {name: timed_run(name, arguments.csv, arguments.bars) for name in order}
        pandas_run, array_run = results["PandasData"], results["ArrayFeed"]
        outcome = (pandas_run["final_value"], pandas_run["orders"])
        if outcome != (array_run["final_value"], array_run["orders"]):
            print("MISMATCH: the two feeds gave different orders or final value", file=sys.stderr)
            return 1
        reference = reference or outcome
        backtest_ratio = pandas_run["backtest_seconds"] / array_run["backtest_seconds"]
        process_ratio = pandas_run["process_seconds"] / array_run["process_seconds"]
        backtest_ratios.append(backtest_ratio)
        process_ratios.append(process_ratio)
        print(f"{pair + 1:>4}  {order[0][:6]}-first {pandas_run['backtest_seconds']:>11.3f}"
              f"  {array_run['backtest_seconds']:>11.3f}  {backtest_ratio:5.2f}x  |"
              f" {process_ratio:5.2f}x")
    median_backtest = statistics.median(backtest_ratios)
    median_process = statistics.median(process_ratios)
    print(f"identical results: {len(reference[1])} orders, final value {reference[0]:.2f}")
    print(f"median ratio, backtest: {median_backtest:.2f}x  (target >= {TARGET_RATIO}x)")
    print(f"median ratio, whole process: {median_process:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
