#!/usr/bin/env python
"""Sweep benchmark: 8 leverages over 50,000 hourly bars, parallel sweep vs one process.

    python bench/sweep_bench.py                 # 2 workers, binance_BTCUSDT_1h.csv, sma_cross

Both sides run the same task function (``backtest.run_task``) on the same frame, loaded
once before timing. "sequential" = the 8 settings one after another in this process;
"sweep" = ``backtest.sweep`` with a process pool of ``--workers`` processes, including
pool start-up and collecting the results. Prints both wall times [s] and the ratio
sweep / sequential (target <= 0.55 on 2 cores; 0.50 is the 2-core floor). The runs of
both sides must give identical metrics rows, which the script checks.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backtrader_leverage.backtest import BacktestConfig, run_task, sweep  # noqa: E402
from backtrader_leverage.data import load_csv  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "binance_BTCUSDT_1h.csv"
LEVERAGES = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)
BARS = 50_000
TARGET_RATIO = 0.55


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=Path(os.environ.get("SHARED_DATA", "")) /
                        "binance_BTCUSDT_1h.csv" if os.environ.get("SHARED_DATA") else DEFAULT_DATA)
    parser.add_argument("--bars", type=int, default=BARS, help="last N bars of the file")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategy", default="sma_cross")
    parser.add_argument("--repeat", type=int, default=1, help="paired repetitions; best of each")
    args = parser.parse_args(argv)

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = load_csv(args.csv).iloc[-args.bars:]
    configs = [BacktestConfig(strategy=args.strategy, leverage=leverage) for leverage in LEVERAGES]
    print(f"{len(configs)} settings ({', '.join(f'{lev:g}x' for lev in LEVERAGES)}) of "
          f"{args.strategy} over {len(frame)} bars of {args.csv.name}; {args.workers} workers, "
          f"{os.cpu_count()} cores")

    sequential_times, sweep_times = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        sequential = [run_task(frame, config) for config in configs]
        sequential_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        parallel = sweep(frame, configs, workers=args.workers, progress=False)
        sweep_times.append(time.perf_counter() - started)
        strip = lambda results: [{k: v for k, v in r.row.items() if k != "seconds"}  # noqa: E731
                                 for r in results]
        if strip(sequential) != strip(parallel):
            print("error: the sweep and the sequential runs disagree", file=sys.stderr)
            return 1
        failed = [r.row["error"] for r in parallel if r.row["error"]]
        if failed:
            print(f"error: a setting failed: {failed[0]}", file=sys.stderr)
            return 1

    best_sequential, best_sweep = min(sequential_times), min(sweep_times)
    ratio = best_sweep / best_sequential
    print(f"sequential (one process): {best_sequential:.2f} s")
    print(f"sweep ({args.workers} workers):       {best_sweep:.2f} s")
    print(f"ratio sweep / sequential: {ratio:.3f}  (target <= {TARGET_RATIO}; "
          f"floor 1/{args.workers} = {1 / args.workers:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
