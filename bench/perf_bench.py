#!/usr/bin/env python
"""Performance benchmark of issue 15: the leveraged stack against plain backtrader.

    python bench/perf_bench.py                        # every row, 3 pairs each, 2M row at 400k bars
    python bench/perf_bench.py --rows stack,broker --pairs 5
    python bench/perf_bench.py --rows big,scale --big-bars 2000000   # the issue's 2M-bar rows
    python bench/perf_bench.py --rows stack --baseline /path/to/older/checkout

Every backtest runs in a fresh Python process (``--worker``), so timings and peak RSS
(``ru_maxrss``) are per configuration. Runs are paired and alternate which side goes first
(A B, B A, ...); each row prints the median of the per-pair ratios. The machine is shared
and noisy: read the ratios, not the seconds.

Strategy (both sides): SMA(10)/SMA(30) crossover, always in the market (long above, short
below), sized at 0.95 x 5 x equity of notional (floored to 0.001 BTC), orders filled at the
next open. Fees 0.04 % of notional.

* plain  = ``bt.feeds.PandasData`` + ``bt.brokers.BackBroker`` (``setcommission(leverage=5)``,
  no margin model), no analyzers;
* stack  = ``ArrayFeed`` + ``MarginBroker(leverage=5, tiers="binance_btcusdt_perp")`` (+
  ``funding_rates=0.0001`` per 8 h when the broker has that param) + the four analyzers.

Data, built once into ``--cache`` before any timing: hourly bars are the real
``binance_um_BTCUSDT_1h.csv`` (from 2019-09-10, first N rows); one-minute bars (200k, 2M)
are SYNTHETIC (``data.synthetic_ohlcv(interval="1m")``, seed 20220509: one 2,000,000-bar
series, each row's data its first N bars), since the real 5m file holds only ~385k minutes.

Correctness: every configuration must give the same orders (date, size, price) and final
value in all its runs, and where two sides must agree (a run with and without analyzers;
``--baseline`` against the current code) they must agree exactly; otherwise the row prints
MISMATCH instead of a ratio. Plain and stack cannot agree (margin, tiers, funding, lots),
so their row prints both order counts and final values.

Rows (``--rows``, comma list; default all):

=========  =========================================================================
stack      full stack / plain, 30k hourly bars (time)
broker     MarginBroker / BackBroker, PandasData both, no analyzers, 30k hourly bars
analyzers  (stack - stack without analyzers) / bars, in µs, 30k hourly bars
rss        peak RSS growth per bar, 20k -> 200k one-minute bars, stack and plain [KiB]
big        peak RSS stack / plain at --big-bars one-minute bars
scale      stack time per bar at --big-bars / at 50k one-minute bars
sweep      8-leverage sweep (backtest.sweep, 2 workers) / 8 sequential plain runs,
           50k hourly bars
=========  =========================================================================
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
HOURLY_CSV = SHARED / "binance_um_BTCUSDT_1h.csv"
HOURLY_START = "2019-09-10"          # the contract's first days are flat 10000.0
SYNTHETIC_SEED = 20220509
LEVERAGE = 5.0
FRACTION = 0.95
COMMISSION = 0.0004
CASH = 100_000.0
FUNDING_RATE = 0.0001                # per 8 h, longs pay
TIERS = "binance_btcusdt_perp"
SWEEP_LEVERAGES = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)
ALL_ROWS = ("stack", "broker", "analyzers", "rss", "big", "scale", "sweep")
TARGETS = {"stack": "<= 0.60", "broker": "<= 1.00", "analyzers": "<= 5 µs",
           "rss": "stack <= plain", "big": "<= 1.00", "scale": "<= 1.10", "sweep": "<= 0.30"}


# ------------------------------------------------------------------------------------------
# data, built once
# ------------------------------------------------------------------------------------------
MINUTE_SERIES_BARS = 2_000_000      # every one-minute slice is a prefix of this one series


def data_path(cache: Path, kind: str, bars: int) -> Path:
    if kind == "minute":
        return cache / f"minute{_minute_series_bars(bars)}_{bars}.pkl"
    return cache / f"{kind}_{bars}.pkl"


def _minute_series_bars(bars: int) -> int:
    return max(MINUTE_SERIES_BARS, bars)


def build_data(cache: Path, needs: set[tuple[str, int]]) -> None:
    """Write each (kind, bars) frame as a pickle; kind 'hourly' (real) or 'minute' (synthetic)."""
    import warnings

    import pandas as pd

    sys.path.insert(0, str(REPO))
    from backtrader_leverage.data import load_csv, synthetic_ohlcv

    cache.mkdir(parents=True, exist_ok=True)
    missing = {(kind, bars) for kind, bars in needs if not data_path(cache, kind, bars).is_file()}
    if not missing:
        return
    hourly = None
    minute_bars = max([bars for kind, bars in missing if kind == "minute"], default=0)
    minute = None
    if minute_bars:
        started = time.perf_counter()
        minute = synthetic_ohlcv(bars=_minute_series_bars(minute_bars), interval="1m",
                                 seed=SYNTHETIC_SEED)
        print(f"built {len(minute):,} synthetic one-minute bars in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    for kind, bars in sorted(missing):
        if kind == "hourly":
            if hourly is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    hourly = load_csv(HOURLY_CSV)
                hourly = hourly.loc[pd.Timestamp(HOURLY_START, tz="UTC"):]
            frame = hourly.iloc[:bars]
        else:
            frame = minute.iloc[:bars]
        if len(frame) < bars:
            raise SystemExit(f"error: {kind} data has only {len(frame)} bars, {bars} asked")
        temporary = data_path(cache, kind, bars).with_suffix(".tmp")
        frame.to_pickle(temporary)
        temporary.replace(data_path(cache, kind, bars))


# ------------------------------------------------------------------------------------------
# one backtest in a fresh process
# ------------------------------------------------------------------------------------------
def worker(spec: dict) -> dict:
    """Run one configuration; returns timings, peak RSS and the results fingerprint."""
    import resource

    import pandas as pd

    if spec.get("code"):
        sys.path.insert(0, spec["code"])
    else:
        sys.path.insert(0, str(REPO))
    import backtrader as bt  # noqa: F401 - imported by both sides before measuring
    import backtrader_leverage  # noqa: F401

    frame = pd.read_pickle(spec["data"])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_loaded, cpu_loaded = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    if spec["kind"] == "sweep":
        outcome = _run_sweep(frame, spec)
    elif spec["kind"] == "plain8":
        outcome = [_run_one(frame, dict(spec, kind="plain", leverage=leverage))
                   for leverage in SWEEP_LEVERAGES]
        outcome = {"orders": sum(r["orders"] for r in outcome),
                   "digest": _digest([r["digest"] for r in outcome]),
                   "final_value": [r["final_value"] for r in outcome]}
    else:
        outcome = _run_one(frame, spec)
    seconds = time.perf_counter() - started
    if "run_seconds" in outcome:        # one backtest: time it without the results digest
        seconds = outcome.pop("run_seconds")
    own, children = resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    outcome.update(cpu_seconds=outcome.pop("run_cpu", own.ru_utime + own.ru_stime - cpu_loaded),
                   children_cpu_seconds=children.ru_utime + children.ru_stime)
    outcome.update(seconds=seconds, bars=len(frame), rss_loaded_kib=rss_loaded,
                   peak_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return outcome


def _digest(values) -> str:
    return hashlib.sha1(repr(values).encode()).hexdigest()[:16]


def _strategy_class():
    import math

    import backtrader as bt

    class AlwaysInSmaCross(bt.Strategy):
        """SMA(10)/SMA(30): long above, short below, 0.95 x leverage x equity of notional."""

        params = (("fast", 10), ("slow", 30), ("leverage", LEVERAGE), ("fraction", FRACTION),
                  ("lot", 0.001))

        def __init__(self):
            self.crossover = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast),
                                              bt.ind.SMA(period=self.p.slow))
            self.fills = []
            self.pending = None

        def notify_order(self, order):
            if order.status == order.Completed:
                self.fills.append((order.executed.dt, order.executed.size, order.executed.price))
            if self.pending is not None and order.ref == self.pending.ref and \
                    not order.alive():
                self.pending = None

        def next(self):
            if self.pending is not None:
                return
            cross = self.crossover[0]
            held = self.position.size
            if cross > 0 and held <= 0:
                direction = 1
            elif cross < 0 and held >= 0:
                direction = -1
            else:
                return
            equity = self.broker.getvalue()
            if equity <= 0:
                return
            size = math.floor(self.p.fraction * self.p.leverage * equity / self.data.close[0]
                              / self.p.lot) * self.p.lot
            self.pending = self.order_target_size(target=round(direction * size, 3))

    return AlwaysInSmaCross


def _run_one(frame, spec: dict) -> dict:
    import backtrader as bt

    leverage = spec.get("leverage", LEVERAGE)
    started = time.perf_counter()      # the backtest: feed, broker, cerebro.run (no digests)
    cpu_started = time.process_time()
    cerebro = bt.Cerebro(stdstats=False, **({"exactbars": spec["exactbars"]}
                                            if spec.get("exactbars") is not None else {}))
    if spec["feed"] == "pandas":
        cerebro.adddata(bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes,
                                            compression=_compression(frame)))
    else:
        from backtrader_leverage.data import ArrayFeed
        cerebro.adddata(ArrayFeed(dataname=frame))
    if spec["broker"] == "back":
        cerebro.broker = bt.brokers.BackBroker(cash=CASH)
        cerebro.broker.setcommission(commission=COMMISSION, leverage=leverage)
    else:
        cerebro.broker = _margin_broker(leverage)
    cerebro.addstrategy(_strategy_class(), leverage=leverage)
    if spec.get("analyzers"):
        from backtrader_leverage import (LiquidationAnalyzer, MarginAnalyzer,
                                         NegativeBalanceAnalyzer, RiskAnalyzer)
        for name, analyzer in (("liquidation", LiquidationAnalyzer), ("margin", MarginAnalyzer),
                               ("negative_balance", NegativeBalanceAnalyzer),
                               ("risk", RiskAnalyzer)):
            cerebro.addanalyzer(analyzer, _name=name)
    strategy = cerebro.run()[0]
    run_seconds, run_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    result = {"run_seconds": run_seconds, "run_cpu": run_cpu, "orders": len(strategy.fills),
              "digest": _digest(strategy.fills),
              "final_value": round(float(cerebro.broker.getvalue()), 6)}
    if spec.get("analyzers"):
        analyses = {name: analyzer.get_analysis() for name, analyzer in
                    strategy.analyzers.getitems()}
        result["analysis_digest"] = _digest(json.dumps(analyses, sort_keys=True, default=str))
    liquidations = getattr(cerebro.broker, "liquidations", None)
    result["liquidations"] = len(liquidations) if liquidations is not None else 0
    return result


def _compression(frame) -> int:
    spacing = (frame.index[1] - frame.index[0]).total_seconds()
    return max(1, int(round(spacing / 60)))


def funding_supported() -> bool:
    from backtrader_leverage.broker import MarginBroker
    return "funding_rates" in MarginBroker.params._getkeys()


def _margin_broker(leverage):
    from backtrader_leverage.broker import MarginBroker
    extra = {"funding_rates": FUNDING_RATE} if funding_supported() else {}
    broker = MarginBroker(cash=CASH, leverage=leverage, tiers=TIERS, **extra)
    broker.setcommission(commission=COMMISSION)
    return broker


def _run_sweep(frame, spec: dict) -> dict:
    import dataclasses
    import warnings

    from backtrader_leverage.backtest import BacktestConfig, sweep

    fields = {f.name for f in dataclasses.fields(BacktestConfig)}
    extra = {"funding_rate": FUNDING_RATE} if "funding_rate" in fields else \
        ({"funding_rates": FUNDING_RATE} if "funding_rates" in fields else {})
    configs = [BacktestConfig(strategy="sma_cross", leverage=leverage, cash=CASH,
                              commission=COMMISSION, tiers=TIERS,
                              strategy_params=(("fast", 10), ("slow", 30)), **extra)
               for leverage in SWEEP_LEVERAGES]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = sweep(frame, configs, workers=spec.get("workers", 2), progress=False)
    rows = [{k: v for k, v in r.row.items() if k != "seconds"} for r in results]
    errors = [row.get("error") for row in rows if row.get("error")]
    return {"orders": len(rows), "digest": _digest(json.dumps(rows, sort_keys=True, default=str)),
            "final_value": [row.get("final_value") for row in rows], "errors": errors,
            "funding": bool(extra)}


def run_worker_process(spec: dict) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                               capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"error: worker failed for {spec}:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------
# rows
# ------------------------------------------------------------------------------------------
class Row:
    def __init__(self, name, label, value, target, detail, ok=True):
        self.name, self.label, self.value, self.target, self.detail, self.ok = \
            name, label, value, target, detail, ok


def paired(spec_a: dict, spec_b: dict, pairs: int, log) -> list[tuple[dict, dict]]:
    """``pairs`` (A, B) results, alternating which runs first, each in a fresh process."""
    out = []
    for pair in range(pairs):
        first, second = (spec_a, spec_b) if pair % 2 == 0 else (spec_b, spec_a)
        one = run_worker_process(first)
        two = run_worker_process(second)
        a, b = (one, two) if pair % 2 == 0 else (two, one)
        log(f"  pair {pair + 1}: A {a['seconds']:.2f} s {a['peak_rss_kib'] / 1024:.0f} MiB | "
            f"B {b['seconds']:.2f} s {b['peak_rss_kib'] / 1024:.0f} MiB")
        out.append((a, b))
    return out


def consistent(results: list[dict]) -> bool:
    """All runs of one configuration gave the same orders and final value."""
    keys = ("digest", "final_value", "analysis_digest")
    return all(tuple(r.get(k) for k in keys) == tuple(results[0].get(k) for k in keys)
               for r in results)


def fingerprint(result: dict) -> str:
    value = result["final_value"]
    shown = f"{value:,.2f}" if isinstance(value, float) else \
        "[" + ", ".join(f"{v:,.0f}" for v in value) + "]"
    return f"{result['orders']} orders, final {shown}"


def median(values):
    return statistics.median(values)


def row_stack(args, log):
    plain = {"kind": "plain", "feed": "pandas", "broker": "back", "data": args.hourly30}
    stack = {"kind": "stack", "feed": "array", "broker": "margin", "analyzers": True,
             "data": args.hourly30}
    results = paired(stack, plain, args.pairs, log)
    return _time_ratio_row("stack", "full stack / plain, 30k hourly bars", results,
                           must_agree=False)


def row_broker(args, log):
    back = {"kind": "plain", "feed": "pandas", "broker": "back", "data": args.hourly30}
    margin = {"kind": "margin", "feed": "pandas", "broker": "margin", "data": args.hourly30}
    results = paired(margin, back, args.pairs, log)
    return _time_ratio_row("broker", "MarginBroker / BackBroker, PandasData, 30k hourly",
                           results, must_agree=False)


def _time_ratio_row(name, label, results, must_agree):
    a_runs, b_runs = [a for a, _ in results], [b for _, b in results]
    ok = consistent(a_runs) and consistent(b_runs)
    if must_agree:
        ok = ok and a_runs[0]["digest"] == b_runs[0]["digest"] and \
            a_runs[0]["final_value"] == b_runs[0]["final_value"]
    ratio = median([a["seconds"] / b["seconds"] for a, b in results])
    cpu_ratio = median([a["cpu_seconds"] / b["cpu_seconds"] for a, b in results])
    detail = (f"CPU-time ratio {cpu_ratio:.2f}; "
              f"A {median([a['seconds'] for a in a_runs]):.2f} s ({fingerprint(a_runs[0])}"
              f"{_liquidations(a_runs[0])}) / B {median([b['seconds'] for b in b_runs]):.2f} s "
              f"({fingerprint(b_runs[0])}{_liquidations(b_runs[0])})")
    return Row(name, label, f"{ratio:.2f}" if ok else "MISMATCH", TARGETS[name], detail, ok)


def _liquidations(result):
    count = result.get("liquidations")
    return f", {count} liquidations" if count else ""


def row_analyzers(args, log):
    bare = {"kind": "stack", "feed": "array", "broker": "margin", "analyzers": False,
            "data": args.hourly30}
    full = dict(bare, analyzers=True)
    results = paired(full, bare, args.pairs, log)
    a_runs, b_runs = [a for a, _ in results], [b for _, b in results]
    ok = consistent(a_runs) and consistent(b_runs) and \
        (a_runs[0]["digest"], a_runs[0]["final_value"]) == \
        (b_runs[0]["digest"], b_runs[0]["final_value"])
    micro = median([(a["seconds"] - b["seconds"]) / a["bars"] * 1e6 for a, b in results])
    cpu_micro = median([(a["cpu_seconds"] - b["cpu_seconds"]) / a["bars"] * 1e6
                        for a, b in results])
    detail = (f"by CPU time {cpu_micro:.1f} µs; with {median([a['seconds'] for a in a_runs]):.2f} s, without "
              f"{median([b['seconds'] for b in b_runs]):.2f} s over {a_runs[0]['bars']:,} bars; "
              f"same {fingerprint(a_runs[0])}")
    return Row("analyzers", "the four analyzers together, per bar",
               f"{micro:.1f} µs" if ok else "MISMATCH", TARGETS["analyzers"], detail, ok)


def row_rss(args, log):
    growth = {}
    for side, spec in (("stack", {"kind": "stack", "feed": "array", "broker": "margin",
                                  "analyzers": True}),
                       ("plain", {"kind": "plain", "feed": "pandas", "broker": "back"})):
        small, large = dict(spec, data=args.minute_small), dict(spec, data=args.minute_rss)
        log(f" {side}: {Path(small['data']).stem} vs {Path(large['data']).stem}")
        results = paired(large, small, args.pairs, log)
        if not (consistent([a for a, _ in results]) and consistent([b for _, b in results])):
            return Row("rss", "peak RSS growth per bar, 1m bars", "MISMATCH", TARGETS["rss"],
                       side, False)
        growth[side] = median([(a["peak_rss_kib"] - b["peak_rss_kib"]) / (a["bars"] - b["bars"])
                               for a, b in results])
    value = f"{growth['stack']:.2f} vs {growth['plain']:.2f} KiB"
    return Row("rss", f"peak RSS growth per bar, stack vs plain ({args.small_bars // 1000}k -> "
               f"{args.rss_bars // 1000}k one-minute bars)", value, TARGETS["rss"],
               f"ru_maxrss differences: {growth['stack'] * 1024:.0f} vs "
               f"{growth['plain'] * 1024:.0f} B a bar; one-minute bars are SYNTHETIC")


def row_big(args, log):
    stack = {"kind": "stack", "feed": "array", "broker": "margin", "analyzers": True,
             "data": args.minute_big}
    plain = {"kind": "plain", "feed": "pandas", "broker": "back", "data": args.minute_big}
    pairs = max(1, min(args.pairs, args.big_pairs))
    results = paired(stack, plain, pairs, log)
    ok = consistent([a for a, _ in results]) and consistent([b for _, b in results])
    ratio = median([a["peak_rss_kib"] / b["peak_rss_kib"] for a, b in results])
    a, b = results[0]
    detail = (f"stack {median([x['peak_rss_kib'] for x, _ in results]) / 1024:.0f} MiB, plain "
              f"{median([y['peak_rss_kib'] for _, y in results]) / 1024:.0f} MiB; time stack "
              f"{median([x['seconds'] for x, _ in results]):.1f} s / plain "
              f"{median([y['seconds'] for _, y in results]):.1f} s")
    args.big_results = [x for x, _ in results]
    return Row("big", f"{args.big_bars:,} one-minute bars: peak RSS stack / plain",
               f"{ratio:.2f}" if ok else "MISMATCH", TARGETS["big"], detail, ok)


def row_scale(args, log):
    stack = {"kind": "stack", "feed": "array", "broker": "margin", "analyzers": True}
    big, small = dict(stack, data=args.minute_big), dict(stack, data=args.minute_scale)
    pairs = max(1, min(args.pairs, args.big_pairs))
    results = paired(big, small, pairs, log)
    ok = consistent([a for a, _ in results]) and consistent([b for _, b in results])
    ratio = median([(a["seconds"] / a["bars"]) / (b["seconds"] / b["bars"]) for a, b in results])
    cpu_ratio = median([(a["cpu_seconds"] / a["bars"]) / (b["cpu_seconds"] / b["bars"])
                        for a, b in results])
    detail = (f"CPU-time ratio {cpu_ratio:.2f}; "
              f"{median([a['seconds'] / a['bars'] * 1e6 for a, _ in results]):.1f} µs/bar at "
              f"{args.big_bars:,} vs {median([b['seconds'] / b['bars'] * 1e6 for _, b in results]):.1f}"
              f" µs/bar at {args.scale_bars:,}")
    return Row("scale", f"time per bar at {args.big_bars // 1000}k / at "
               f"{args.scale_bars // 1000}k one-minute bars", f"{ratio:.2f}" if ok else "MISMATCH",
               TARGETS["scale"], detail, ok)


def row_sweep(args, log):
    sweep = {"kind": "sweep", "data": args.hourly50, "workers": args.workers}
    plain8 = {"kind": "plain8", "feed": "pandas", "broker": "back", "data": args.hourly50}
    results = paired(sweep, plain8, args.pairs, log)
    a_runs, b_runs = [a for a, _ in results], [b for _, b in results]
    ok = consistent(a_runs) and consistent(b_runs) and not a_runs[0].get("errors")
    ratio = median([a["seconds"] / b["seconds"] for a, b in results])
    # what 2 idle cores would give: the workers' CPU time shared by the workers, against
    # the plain runs' CPU time (the wall clock also counts the other jobs on the machine)
    cpu_ratio = median([a["children_cpu_seconds"] / args.workers / b["cpu_seconds"]
                        for a, b in results])
    detail = (f"sweep {median([a['seconds'] for a in a_runs]):.2f} s ({args.workers} workers, "
              f"sma_cross 10/30, tiers{', funding' if a_runs[0].get('funding') else ''}) / "
              f"8 plain {median([b['seconds'] for b in b_runs]):.2f} s; by CPU time "
              f"(workers' CPU / {args.workers} / plain CPU) {cpu_ratio:.2f}")
    return Row("sweep", "8-leverage sweep on 2 cores / 8 sequential plain runs, 50k hourly",
               f"{ratio:.2f}" if ok else "MISMATCH", TARGETS["sweep"], detail, ok)


def row_baseline(args, log):
    """Current code vs another checkout: same orders, final value and analyses; time ratio."""
    current = {"kind": "stack", "feed": "array", "broker": "margin", "analyzers": True,
               "data": args.hourly30}
    older = dict(current, code=str(Path(args.baseline).resolve()))
    results = paired(current, older, args.pairs, log)
    a_runs, b_runs = [a for a, _ in results], [b for _, b in results]
    same = all(a_runs[0].get(k) == b_runs[0].get(k)
               for k in ("digest", "final_value", "analysis_digest"))
    ok = consistent(a_runs) and consistent(b_runs) and same
    ratio = median([a["seconds"] / b["seconds"] for a, b in results])
    detail = (f"current {median([a['seconds'] for a in a_runs]):.2f} s / baseline "
              f"{median([b['seconds'] for b in b_runs]):.2f} s; {fingerprint(a_runs[0])}"
              f"{'; identical orders, value, analyses' if same else '; RESULTS DIFFER'}")
    return Row("baseline", f"stack now / stack at {args.baseline}", f"{ratio:.2f}" if ok
               else "MISMATCH", "identical results", detail, ok)


ROW_FUNCTIONS = {"stack": row_stack, "broker": row_broker, "analyzers": row_analyzers,
                 "rss": row_rss, "big": row_big, "scale": row_scale, "sweep": row_sweep}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ALL_ROWS),
                        help=f"comma list of {', '.join(ALL_ROWS)} (default: all)")
    parser.add_argument("--pairs", type=int, default=3, help="A/B pairs per row (default 3)")
    parser.add_argument("--big-bars", type=int, default=400_000,
                        help="bars of the 'big' and 'scale' rows (issue: 2000000; default 400000)")
    parser.add_argument("--big-pairs", type=int, default=1,
                        help="pairs of the 'big' and 'scale' rows (default 1)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "PERF_BENCH_CACHE", "/tmp/perf_bench_data")), help="where the data is built once")
    parser.add_argument("--baseline", help="another checkout: compare the stack's results and "
                                           "time against it (e.g. a git worktree of main)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    rows = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = [name for name in rows if name not in ALL_ROWS]
    if unknown:
        parser.error(f"unknown row {unknown[0]!r}; choose from {', '.join(ALL_ROWS)}")
    if not HOURLY_CSV.is_file():
        print(f"error: benchmark data not found: {HOURLY_CSV}", file=sys.stderr)
        return 2

    args.small_bars, args.rss_bars, args.scale_bars = 20_000, 200_000, 50_000
    needs = {("hourly", 30_000), ("hourly", 50_000)}
    if "rss" in rows:
        needs |= {("minute", args.small_bars), ("minute", args.rss_bars)}
    if "big" in rows or "scale" in rows:
        needs |= {("minute", args.big_bars), ("minute", args.scale_bars)}
    build_data(args.cache, needs)
    args.hourly30 = str(data_path(args.cache, "hourly", 30_000))
    args.hourly50 = str(data_path(args.cache, "hourly", 50_000))
    args.minute_small = str(data_path(args.cache, "minute", args.small_bars))
    args.minute_rss = str(data_path(args.cache, "minute", args.rss_bars))
    args.minute_big = str(data_path(args.cache, "minute", args.big_bars))
    args.minute_scale = str(data_path(args.cache, "minute", args.scale_bars))

    sys.path.insert(0, str(REPO))
    print(f"perf_bench: {os.cpu_count()} cores, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.pairs} pairs per row; "
          f"funding {'on (0.0001 per 8 h)' if funding_supported() else 'n/a (broker has none)'}"
          f", tiers {TIERS}, 5x", flush=True)
    log = (lambda text: print(text, flush=True))
    table = []
    for name in rows:
        log(f"row {name}:")
        table.append(ROW_FUNCTIONS[name](args, log))
    if args.baseline:
        log("row baseline:")
        table.append(row_baseline(args, log))
    print()
    print("| figure | measured | target | detail |")
    print("|---|---|---|---|")
    for row in table:
        print(f"| {row.label} | {row.value} | {row.target} | {row.detail} |")
    return 0 if all(row.ok for row in table) else 1


if __name__ == "__main__":
    sys.exit(main())
