#!/usr/bin/env python
"""Leveraged crypto backtests from the command line: run, sweep leverages, build the risk report.

Usage (every option: ``python run_backtest.py {run,sweep,ruin,report} --help``)::

    python run_backtest.py                      # demo: sma_cross sweep, bundled BTCUSDT perp sample
    python run_backtest.py run   --csv FILE --leverage 5 --out out/run
    python run_backtest.py sweep --csv FILE --leverage 1,2,3,5,10,20 --out out/sweep
    python run_backtest.py ruin  --csv FILE --strategy buy_hold --paths 200 --out out/ruin
    python run_backtest.py sweep --strategy my_strategies.py:MyCross --csv BTC=btc.csv \
        --csv ETH=eth.csv --feed-leverage ETH=3 --leverage 1,5,20 --out out/mine
    python run_backtest.py report out/sweep     # rebuild report.html from the folder alone

Output folder: ``report.html``, ``metrics.json`` (a list, one object per setting),
``metrics.csv`` (the same rows) and ``series.npz`` (per-bar series of the plots).

Exit codes: 0 every setting ran (or the report was rebuilt); 1 at least one setting failed
(its row has ``error``, the others are written); 2 bad input (one ``error: ...`` line on
stderr, nothing written); 130 interrupted with Ctrl-C (nothing written).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

from .backtest.config import EXPOSURE_MODES, NEGATIVE_BALANCE_POLICIES

EXIT_OK, EXIT_SETTING_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_SYMBOL = "BTC-USD"
DEFAULT_INTERVAL = "1d"
DEFAULT_SWEEP_LEVERAGES = "1,2,3,5,10,20"
MAX_REFINE_POINTS = 3          # leverages tried at once per refining round
DEFAULT_OUT = Path("out")
SOURCES = ("auto", "yfinance", "cache", "synthetic", "ccxt")
DEFAULT_EXCHANGE = "binanceusdm"


class CliError(Exception):
    """Bad input: printed as one ``error: ...`` line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line instead of usage + message + exit."""

    def error(self, message):
        raise CliError(f"{message} (see '{self.prog} --help')")


# -- argument parsing -----------------------------------------------------------------------
def _checked_float(text: str, accept, allowed: str) -> float:
    """``text`` as a finite float for which ``accept(value)`` holds, else an argparse error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and accept(value)):
        raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _checked_float(text, lambda value: value > 0, "a finite number > 0")


def _fraction(text: str) -> float:
    return _checked_float(text, lambda value: 0 <= value < 1, "a fraction in [0, 1)")


def _open_fraction(text: str) -> float:
    return _checked_float(text, lambda value: 0 < value < 1, "a fraction in (0, 1)")


def _funding_rate(text: str) -> float:
    return _checked_float(text, lambda value: abs(value) <= 0.05,
                          "a fraction within ±0.05 per interval (0.0001 = 0.01 %)")


def parse_leverages(text: str) -> list[float]:
    """'1,2,5' -> [1.0, 2.0, 5.0]; each leverage finite and > 0, at least one."""
    parts = [part.strip() for part in str(text).split(",")]
    if not any(parts):
        raise CliError("--leverage: the leverage list is empty; give e.g. --leverage 1,2,5,10")
    leverages = []
    for part in parts:
        if not part:
            raise CliError(f"--leverage: empty item in {text!r}; give e.g. --leverage 1,2,5,10")
        try:
            leverages.append(_positive_float(part))
        except argparse.ArgumentTypeError as error:
            raise CliError(f"--leverage: leverage {error}") from None
    return leverages


def _parse_param(text: str) -> tuple[str, object]:
    """'fast=10' -> ('fast', 10); values: int, float, true/false, none, else text."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    raw = raw.strip()
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return name.strip(), lowered == "true"
    if lowered in ("none", "null", ""):
        return name.strip(), None
    for convert in (int, float):
        try:
            return name.strip(), convert(raw)
        except ValueError:
            pass
    return name.strip(), raw


def _parse_feed_leverage(text: str) -> tuple[str, float]:
    """'ETH-USD=3' -> ('ETH-USD', 3.0); the leverage finite and > 0."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected FEED=LEVERAGE, got {text!r}")
    return name.strip(), _positive_float(raw.strip())


def _parse_feed_tiers(text: str) -> tuple[str, str]:
    """'ETH-USD=binance_ethusdt_perp' -> ('ETH-USD', 'binance_ethusdt_perp'): feed and table."""
    name, sep, table = text.partition("=")
    if not sep or not name.strip() or not table.strip():
        raise argparse.ArgumentTypeError(f"expected FEED=NAME|FILE, got {text!r}")
    return name.strip(), table.strip()


def _split_csv_option(text: str) -> tuple[str | None, str]:
    """'ETH-USD=eth.csv' -> ('ETH-USD', 'eth.csv'); a plain path -> (None, path).

    The text is a NAME=FILE pair only when it is not itself an existing file and the part
    before the first '=' is not a path.
    """
    name, sep, path = text.partition("=")
    if sep and name.strip() and path and not Path(text).exists() and \
            "/" not in name and "\\" not in name:
        return name.strip(), path
    return None, text


def _program_name() -> str:
    """How the user called us: ``run_backtest.py`` from a clone, else the console script."""
    called = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return called if called == "run_backtest.py" else "backtrader-leverage"


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of ``run``, ``sweep`` and ``report``."""
    from .backtest.config import DEFAULTS
    from .strategies import STRATEGIES

    parser = _Parser(prog=_program_name(), description=(
        "Leveraged crypto backtests with an isolated-margin broker: run one setting, sweep "
        "leverages in parallel, and write a self-contained HTML risk report. With no "
        "arguments: a demo sweep of sma_cross over the bundled BTCUSDT perpetual sample "
        "(2021-2022, 1h) with funding and the mark price on."))
    commands = parser.add_subparsers(dest="command", metavar="{run,sweep,ruin,report}")
    common = _Parser(add_help=False)
    _add_data_options(common)
    _add_account_options(common, list(STRATEGIES), DEFAULTS)
    _add_margin_options(common, DEFAULTS)

    run = commands.add_parser("run", parents=[common], help="one backtest at one leverage",
                              description="One backtest; prints a summary and writes the "
                              "output folder with one row.")
    run.add_argument("--leverage", type=_positive_float, default=DEFAULTS.leverage,
                     help=f"leverage of every feed, > 0 (default {DEFAULTS.leverage:g})")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT / "run", metavar="DIR",
                     help="output folder (default out/run)")
    _add_static_option(run)
    run.set_defaults(handler=command_run)

    sweep = commands.add_parser("sweep", parents=[common], help="one strategy over many leverages",
                                description="The same strategy over a list of leverages, in "
                                "parallel processes with the data loaded once.")
    sweep.add_argument("--leverage", default=DEFAULT_SWEEP_LEVERAGES, metavar="LIST",
                       help=f"comma-separated leverages, each applied to every feed (default "
                       f"{DEFAULT_SWEEP_LEVERAGES})")
    sweep.add_argument("--out", type=Path, default=DEFAULT_OUT / "sweep", metavar="DIR",
                       help="output folder (default out/sweep)")
    sweep.add_argument("--workers", type=int, default=None, metavar="N",
                       help="worker processes (default: number of cores; 1 = in this process; "
                       "ignored with --scheduler)")
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run the settings on a "
                       "dask.distributed scheduler instead of local processes (needs "
                       "'pip install distributed'; workers must import this project)")
    sweep.add_argument("--no-refine", dest="refine", action="store_false",
                       help="skip the bisection that refines the highest leverage without "
                       "liquidation between the grid's last safe and first liquidated leverage "
                       "(extra backtests, one after another)")
    _add_static_option(sweep)
    sweep.set_defaults(handler=command_sweep)

    _add_ruin_parser(commands, common)

    report = commands.add_parser("report", help="rebuild report.html from an output folder",
                                 description="Rebuild DIR/report.html from DIR/metrics.json "
                                 "and DIR/series.npz, without re-running anything.")
    report.add_argument("dir", type=Path, metavar="DIR", help="output folder of run, sweep "
                        "or ruin")
    _add_static_option(report)
    report.set_defaults(handler=command_report)
    return parser


def _whole_number(low: int):
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text!r}")
        return value
    return convert


def _add_ruin_parser(commands, common) -> None:
    from .backtest.ruin import (DEFAULT_BLOCK_HOURS, DEFAULT_PATHS, DEFAULT_RUIN_LEVEL,
                                DEFAULT_SEED)
    ruin = commands.add_parser(
        "ruin", parents=[common], help="Monte Carlo probability of liquidation and ruin",
        description="The strategy on many synthetic histories (a stationary block bootstrap "
        "of the data's bars, the same paths for every leverage): per leverage the "
        "probability of a liquidation and of ruin with Wilson 95 % intervals, and "
        "percentiles of the final equity. Writes ruin.json, ruin.csv, ruin.npz and "
        "report.html.")
    ruin.add_argument("--leverage", default=DEFAULT_SWEEP_LEVERAGES, metavar="LIST",
                      help=f"comma-separated leverages (default {DEFAULT_SWEEP_LEVERAGES})")
    ruin.add_argument("--paths", type=_whole_number(1), default=DEFAULT_PATHS, metavar="N",
                      help=f"synthetic paths per leverage (default {DEFAULT_PATHS})")
    ruin.add_argument("--block-hours", type=_positive_float, default=DEFAULT_BLOCK_HOURS,
                      metavar="B", help="mean block length of the bootstrap in hours, "
                      f"whatever the bar interval (default {DEFAULT_BLOCK_HOURS:g})")
    ruin.add_argument("--seed", type=_whole_number(0), default=DEFAULT_SEED, metavar="S",
                      help=f"random seed; the same seed gives the same files (default "
                      f"{DEFAULT_SEED})")
    ruin.add_argument("--ruin-level", type=_open_fraction, default=DEFAULT_RUIN_LEVEL,
                      metavar="F", help="ruin = equity below F x starting cash at any bar "
                      f"(default {DEFAULT_RUIN_LEVEL:g})")
    ruin.add_argument("--out", type=Path, default=DEFAULT_OUT / "ruin", metavar="DIR",
                      help="output folder (default out/ruin)")
    ruin.add_argument("--workers", type=int, default=None, metavar="N",
                      help="worker processes (default: number of cores; 1 = in this process; "
                      "ignored with --scheduler)")
    ruin.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run the tasks on a "
                      "dask.distributed scheduler instead of local processes")
    _add_static_option(ruin)
    ruin.set_defaults(handler=command_ruin)


def _add_static_option(command) -> None:
    command.add_argument("--static", action="store_true", help="PNG charts (matplotlib) "
                         "instead of the interactive ones: a smaller page with no script, for "
                         "e-mail and CI artifacts")


def _add_data_options(common) -> None:
    data = common.add_argument_group("data")
    source = data.add_mutually_exclusive_group()
    source.add_argument("--csv", metavar="[NAME=]FILE", action="append", help="OHLCV CSV file "
                        "(Yahoo, yfinance, Binance, ccxt or date,open,high,low,close,volume; "
                        "format auto-detected); repeat it for several feeds, in that order. "
                        "The feed is named NAME, else the file stem")
    source.add_argument("--symbol", metavar="TICKER[,TICKER]", help=f"yfinance ticker(s) such "
                        f"as BTC-USD or BTC-USD,ETH-USD, one feed each (default "
                        f"{DEFAULT_SYMBOL} when --csv is not given)")
    data.add_argument("--format", choices=("yahoo", "yfinance", "binance", "ccxt", "ohlcv"),
                      help="CSV format when auto-detection is not wanted")
    data.add_argument("--interval", help=f"bar interval, e.g. 1h, 4h, 1d: for --symbol the "
                      f"bars to load (default {DEFAULT_INTERVAL}); for --csv the file's bars are "
                      "aggregated to it (a whole multiple of the file's interval)")
    data.add_argument("--start", help="first bar to use (inclusive), ISO date/time in UTC, "
                      "e.g. 2022-01-01")
    data.add_argument("--end", help="end of the range (exclusive), ISO date/time in UTC")
    data.add_argument("--source", choices=SOURCES, default="auto", help="where --symbol data "
                      "comes from: auto = cache then yfinance; synthetic = generated demo series; "
                      "ccxt = an exchange's perpetual klines through ccxt, e.g. --symbol "
                      "BTC/USDT:USDT (default auto)")
    data.add_argument("--exchange", default=DEFAULT_EXCHANGE, metavar="ID",
                      help=f"ccxt exchange id for --source ccxt (default {DEFAULT_EXCHANGE})")
    data.add_argument("--csv-interval", metavar="INTERVAL", help="the --csv file's own bar "
                      "interval, e.g. 1h, when it cannot be inferred (a one-row file); default: "
                      "from the spacing of the bars")
    data.add_argument("--refresh", action="store_true", help="--symbol: download the whole "
                      "range again even when it is cached (replaces a corrupt cache file)")
    _add_perpetual_options(common)


def _add_perpetual_options(common) -> None:
    perpetual = common.add_argument_group(
        "perpetual funding and mark price (off by default: funding not modelled, liquidation "
        "on the trade price)")
    funding = perpetual.add_mutually_exclusive_group()
    funding.add_argument("--funding-rate", type=_funding_rate, metavar="RATE",
                         help="constant funding rate per interval, a fraction (0.0001 = 0.01 %%; "
                         "longs pay when positive), at 00:00, 08:00, 16:00 UTC")
    funding.add_argument("--funding-csv", action="append", metavar="[SYMBOL=]FILE",
                         help="funding-rate history CSV (Binance bulk calc_time,"
                         "funding_interval_hours,last_funding_rate; ccxt timestamp,fundingRate; "
                         "or time,rate); with several feeds SYMBOL=FILE, repeated")
    funding.add_argument("--funding", choices=("ccxt",), help="funding-rate history from the "
                         "exchange (with --source ccxt)")
    perpetual.add_argument("--funding-interval-hours", type=_positive_float, default=8.0,
                           metavar="H", help="hours between funding times for --funding-rate "
                           "(default 8)")
    mark = perpetual.add_mutually_exclusive_group()
    mark.add_argument("--mark-csv", action="append", metavar="[SYMBOL=]FILE",
                      help="mark-price klines CSV (kline layout); liquidation then triggers on "
                      "the mark price, and equity is marked on it; with several feeds "
                      "SYMBOL=FILE, repeated")
    mark.add_argument("--mark", choices=("ccxt",), help="mark-price klines from the exchange "
                      "(with --source ccxt)")


def _add_account_options(common, strategy_names, defaults) -> None:
    trading = common.add_argument_group("strategy and account")
    trading.add_argument("--strategy", default=defaults.strategy, metavar="SPEC",
                         help=f"a registered strategy ({', '.join(strategy_names)}), or any "
                         "backtrader Strategy as path/to/file.py:ClassName or "
                         f"package.module:ClassName (default {defaults.strategy})")
    trading.add_argument("--param", action="append", type=_parse_param, default=[],
                         metavar="NAME=VALUE", help="strategy param, repeatable, e.g. "
                         "--param fast=10 --param stop_loss=0.05 (the class's params)")
    trading.add_argument("--exposure", choices=EXPOSURE_MODES, default=defaults.exposure,
                         help="scaled: orders placed without a size get notional = percents %% "
                         "x equity x leverage (the example strategies size that way "
                         "themselves); as_is: the strategy's own sizes, so leverage changes "
                         f"only margin and liquidation distance (default {defaults.exposure})")
    trading.add_argument("--percents", type=_positive_float, default=defaults.percents,
                         help="with --exposure scaled: margin per order, percent of equity "
                         f"(default {defaults.percents:g})")
    trading.add_argument("--cash", type=_positive_float, default=defaults.cash,
                         help=f"starting wallet in quote currency (default {defaults.cash:g})")
    trading.add_argument("--commission", type=_fraction, default=defaults.commission,
                         help=f"taker fee as a fraction of notional (default "
                         f"{defaults.commission:g} = {defaults.commission * 100:g}%%)")


def _add_margin_options(common, defaults) -> None:
    margin = common.add_argument_group("margin")
    margin.add_argument("--feed-leverage", action="append", type=_parse_feed_leverage,
                        default=[], metavar="FEED=LEVERAGE", help="leverage of one feed instead "
                        "of --leverage, repeatable, e.g. --feed-leverage ETH-USD=3")
    margin.add_argument("--feed-tiers", action="append", type=_parse_feed_tiers, default=[],
                        metavar="FEED=NAME|FILE", help="tier table of one feed instead of "
                        "--tiers, repeatable, e.g. --feed-tiers ETH-USD=binance_ethusdt_perp")
    margin.add_argument("--maintenance-margin-rate", "--mmr", dest="maintenance_margin_rate",
                        type=_open_fraction, default=defaults.maintenance_margin_rate,
                        metavar="RATE", help="flat maintenance margin rate, fraction of "
                        f"notional in (0, 1); the maximum leverage is 1 / RATE (default "
                        f"{defaults.maintenance_margin_rate:g}: "
                        f"{1 / defaults.maintenance_margin_rate:g}x)")
    margin.add_argument("--tiers", metavar="NAME|FILE", help="maintenance-margin tier table "
                        "instead of the flat rate: a name in broker/tiers (e.g. "
                        "binance_btcusdt_perp) or a JSON/CSV file; its max leverage applies")
    margin.add_argument("--liquidation-fee-rate", type=_fraction,
                        default=defaults.liquidation_fee_rate, metavar="RATE",
                        help="liquidation clearance fee, fraction of notional; default: "
                        "exchange style (the whole remaining isolated margin)")
    margin.add_argument("--negative-balance", choices=NEGATIVE_BALANCE_POLICIES,
                        default=defaults.negative_balance,
                        help="losses past the bankruptcy price: absorb = the insurance fund "
                        "pays; carry = the wallet goes negative (default absorb)")
    margin.add_argument("--lot-size", type=_positive_float, default=defaults.lot_size,
                        help=f"order size grid in base units (default {defaults.lot_size:g})")
    margin.add_argument("--margin-mode", default=defaults.margin_mode, metavar="MODE[,MODE]",
                        help="isolated (margin locked per position) or cross (the wallet "
                        "backs every position); sweep takes 'isolated,cross' to run every "
                        "leverage in both and compare them (default isolated)")


# -- commands -------------------------------------------------------------------------------
def command_run(args) -> int:
    parse_margin_modes(args.margin_mode, several=False)
    args.refine = False
    return _run_settings(args, [args.leverage], workers=1, scheduler=None)


def command_sweep(args) -> int:
    leverages = parse_leverages(args.leverage)
    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers must be >= 1, got {args.workers}")
    return _run_settings(args, leverages, workers=args.workers, scheduler=args.scheduler)


def command_ruin(args) -> int:
    """Bootstrap paths, run every leverage on them, write ruin.json/.csv/.npz and the report."""
    from .backtest import default_workers
    from .backtest.results import REPORT_HTML, prepare_output_dir, write_files_atomically
    from .backtest.ruin import ruin, ruin_payloads, ruin_table
    from .backtest.single import make_broker
    from .backtest.sweep import check_scheduler
    from .report.ruin import render_ruin_report

    leverages = parse_leverages(args.leverage)
    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers must be >= 1, got {args.workers}")
    configs = configs_from_args(args, leverages,
                                parse_margin_modes(args.margin_mode, several=False))
    _check_tiers(args.tiers)
    for config in configs:
        try:
            config.validate()
            make_broker(config)          # a leverage above the tier table's maximum fails here
        except ValueError as error:
            raise CliError(f"--leverage {config.leverage:g}: {error}") from None
    check_scheduler(args.scheduler)              # a bad address before loading data
    frame = load_frame(args)
    _check_feeds([frame], configs[0])
    if len(frame) < 2:
        raise CliError(f"ruin needs at least 2 bars; the data has {len(frame)}: widen "
                       "--start/--end")
    prepare_output_dir(args.out)                 # the inputs are good: now the folder
    _announce_data(frame)
    backend = (f"dask scheduler {args.scheduler}" if args.scheduler else
               f"{args.workers or default_workers()} worker process(es)")
    print(f"ruin: {args.paths} paths x {len(configs)} leverages, mean block "
          f"{args.block_hours:g} h, seed {args.seed}, on {backend}")
    started = time.perf_counter()
    result = ruin(frame, configs, paths=args.paths, block_hours=args.block_hours,
                  seed=args.seed, ruin_level=args.ruin_level, workers=args.workers,
                  scheduler=args.scheduler)
    seconds = time.perf_counter() - started
    payloads = ruin_payloads(result)
    payloads[REPORT_HTML] = render_ruin_report(result, static=args.static).encode("utf-8")
    written = write_files_atomically(args.out, payloads, replace_all=True)
    print(ruin_table(result.rows, ruin_level=args.ruin_level))
    print(f"{args.paths * len(configs)} backtests of {len(frame)} bars in {seconds:.1f} s")
    print(f"report: {written[REPORT_HTML].resolve()}  (ruin.json, ruin.csv, ruin.npz beside it)")
    return EXIT_OK


def command_report(args) -> int:
    from .backtest import read_report_inputs
    from .backtest.results import REPORT_HTML, write_files_atomically
    from .report import render_report

    if not (args.dir / "metrics.json").exists() and (args.dir / "ruin.json").exists():
        from .backtest.results import verify_manifest
        from .backtest.ruin import read_ruin
        from .report.ruin import render_ruin_report
        verify_manifest(args.dir, skip=(REPORT_HTML,))
        html = render_ruin_report(read_ruin(args.dir), static=args.static)
    else:
        inputs = read_report_inputs(args.dir)
        html = render_report(inputs["rows"], inputs["bundle"], inputs["summary"],
                             inputs["liquidations"], inputs["trades"], static=args.static)
    written = write_files_atomically(args.dir, {REPORT_HTML: html.encode("utf-8")})
    print(f"report: {written[REPORT_HTML].resolve()}")
    return EXIT_OK


def command_demo() -> int:
    """No arguments: sweep sma_cross over the bundled BTCUSDT perpetual sample, funding and mark on."""
    from .data import load_perpetual_sample

    print("No arguments given: running the demo, a leverage sweep of sma_cross "
          f"({DEFAULT_SWEEP_LEVERAGES}x) on the bundled real Binance BTCUSDT perpetual sample "
          "(1h, 2021-2022) with its funding payments and mark-price liquidation on. See "
          f"'{_program_name()} --help' for your own runs (synthetic data: --source synthetic).")
    frame = load_perpetual_sample()
    args = build_parser().parse_args(["sweep", "--out", str(DEFAULT_OUT / "demo")])
    return _run_settings(args, parse_leverages(DEFAULT_SWEEP_LEVERAGES), workers=None,
                         scheduler=None, frames=[frame])


# -- shared flow ----------------------------------------------------------------------------
def _run_settings(args, leverages, *, workers, scheduler, frames=None) -> int:
    from .backtest import default_workers, event_records, series_bundle, sweep, write_outputs
    from .backtest.compare import mode_comparison
    from .backtest.results import REPORT_HTML, prepare_output_dir
    from .backtest.sweep import check_scheduler
    from .report import render_report
    from .sizers import row_refusal_summary

    configs = configs_from_args(args, leverages,
                                parse_margin_modes(args.margin_mode, several=True))
    _check_tiers(args.tiers)
    for name, table in configs[0].feed_tiers:
        _check_tiers(table, f"--feed-tiers {name}={table}")
    _check_settings(args, configs)
    _check_first_order(args, configs)
    check_scheduler(scheduler)                   # a bad address before loading data
    if frames is None:
        _check_perpetual_options(args)
        frames = load_frames(args)
        _check_feeds(frames, configs[0])
        frames = attach_perpetual_to_feeds(args, frames)
    else:
        _check_feeds(frames, configs[0])
    prepare_output_dir(args.out)                 # the inputs are good: now the folder
    for frame in frames:
        _announce_data(frame)
    print(perpetual_line(configs[0], frames[0]))
    print(_strategy_line(configs[0]))
    if len(configs) > 1:
        backend = (f"dask scheduler {scheduler}" if scheduler else
                   f"{min(workers or default_workers(), len(configs))} worker process(es)")
        print(f"sweep: {len(configs)} settings on {backend}")
    results = sweep(frames, configs, workers=workers, scheduler=scheduler)
    rows = [result.row for result in results]
    bundle = series_bundle(frames, results)
    summary = _safe_leverage(frames, configs, rows, refine=getattr(args, "refine", True),
                             workers=workers, scheduler=scheduler)
    liquidations, trades = event_records(rows, results)
    html = render_report(rows, bundle, summary, liquidations, trades,
                         static=getattr(args, "static", False))
    written = write_outputs(args.out, rows, bundle, html, summary=summary,
                            liquidations=liquidations, trades=trades)
    print(run_summary(rows[0]) if len(rows) == 1 and not rows[0]["error"] else summary_table(rows))
    comparison = mode_comparison(rows)
    if comparison:
        print(comparison_table(comparison))
    print(summary["headline"])
    for note in summary["notes"]:
        print(note)
    for note in filter(None, map(row_refusal_summary, rows)):
        print(note)
    for row in rows:
        if row["error"]:
            print(f"error: leverage {row['leverage']:g}x failed: {row['error']}", file=sys.stderr)
    print(f"report: {written[REPORT_HTML].resolve()}  (metrics.json, metrics.csv, series.npz, "
          "summary.json, liquidations.csv, trades.csv beside it)")
    return EXIT_SETTING_FAILED if any(row["error"] for row in rows) else EXIT_OK


def parse_margin_modes(text: str, *, several: bool) -> list[str]:
    """'isolated,cross' -> ['isolated', 'cross']; each once; one only unless ``several``."""
    from .backtest.config import MARGIN_MODES
    modes = [part.strip() for part in str(text).split(",")]
    for mode in modes:
        if mode not in MARGIN_MODES:
            raise CliError(f"--margin-mode: {mode!r} is not one of {', '.join(MARGIN_MODES)}")
    if len(set(modes)) != len(modes):
        raise CliError(f"--margin-mode: {text!r} names a mode twice")
    if len(modes) > 1 and not several:
        raise CliError("--margin-mode: this command takes one mode; compare modes with "
                       "sweep --margin-mode isolated,cross")
    return modes


def _safe_leverage(frames, configs, rows, *, refine: bool, workers=None, scheduler=None) -> dict:
    """summary.json: the safe leverage, refined by re-running the backtest unless told not to.

    With several workers (or a dask scheduler) each refining round runs that many
    leverages at once (at most :data:`MAX_REFINE_POINTS`), on the sweep's own backends.
    """
    import dataclasses

    from .backtest import default_workers, run_task, safe_leverage_summary, sweep
    from .backtest.safe_leverage import grid_boundary

    mode = configs[0].margin_mode             # several modes: the first one's leverages
    rows = [row for row in rows if row.get("margin_mode", mode) == mode]
    run = run_many = None
    points = 1
    if refine and len(rows) > 1:
        low, high = grid_boundary(rows)
        if low is not None and high is not None:
            points = MAX_REFINE_POINTS if scheduler else \
                max(1, min(MAX_REFINE_POINTS, workers or default_workers()))
            print(f"refine: between {low['leverage']:g}x (no liquidation) and "
                  f"{high['leverage']:g}x (liquidated), {points} leverage(s) per round; "
                  "--no-refine skips it")

            def run(leverage):
                return run_task(frames, dataclasses.replace(configs[0], leverage=leverage)).row

            def run_many(leverages):
                tried = [dataclasses.replace(configs[0], leverage=value) for value in leverages]
                return [result.row for result in sweep(frames, tried, workers=len(tried),
                                                       scheduler=scheduler, progress=False)]
    summary = safe_leverage_summary(rows, run, run_many=run_many, points_per_round=points)
    if len({config.margin_mode for config in configs}) > 1:
        summary["margin_mode"] = mode
        summary["notes"].insert(0, f"The safe leverage is that of margin mode {mode} (the "
                                   "first of --margin-mode).")
    return summary


def configs_from_args(args, leverages, margin_modes=("isolated",)) -> list:
    """The settings the options ask for, built by the same function as the Python API:
    one per leverage and margin mode (leverage first)."""
    from .backtest.config import build_configs
    from .strategies.spec import StrategySpecError

    options = {name: getattr(args, name) for name in (
        "cash", "commission", "maintenance_margin_rate", "tiers", "liquidation_fee_rate",
        "negative_balance", "lot_size", "exposure", "percents")}
    options["funding_rate"] = getattr(args, "funding_rate", None)
    options["funding_interval_hours"] = getattr(args, "funding_interval_hours",
                                                options.get("funding_interval_hours", 8.0))
    try:
        return [config for leverage in leverages for mode in margin_modes
                for config in build_configs(args.strategy, [leverage],
                                            strategy_params=dict(args.param),
                                            feed_leverage=dict(args.feed_leverage),
                                            feed_tiers=dict(getattr(args, "feed_tiers", [])),
                                            margin_mode=mode, **options)]
    except StrategySpecError as error:
        raise CliError(str(error)) from None
    except ValueError as error:
        raise CliError(f"--param: {args.strategy}: {error}") from None


def _strategy_line(config) -> str:
    """'strategy: MyCross in /path/my.py, params {...}, exposure scaled (percents 90)'."""
    from .strategies.spec import describe
    class_name, source = describe(config.strategy)
    params = json.dumps(dict(config.strategy_params), default=repr)
    percents = f" (LeverageSizer {config.percents:g} %)" if config.exposure == "scaled" else ""
    return (f"strategy: {class_name} in {source or config.strategy}, params {params}, "
            f"exposure {config.exposure}{percents}")


def _check_feeds(frames, config) -> None:
    """Unique feed names, --feed-leverage naming only them, and enough bars for the strategy."""
    from .backtest.feeds import feed_names
    from .strategies.spec import load_strategy, min_bars

    try:
        names = feed_names(frames)
    except ValueError as error:
        raise CliError(str(error)) from None
    for option, pairs in (("--feed-leverage", config.feed_leverage),
                          ("--feed-tiers", config.feed_tiers)):
        for name, _ in pairs:
            if name not in names:
                raise CliError(f"{option} {name}: no feed of that name; the feeds are "
                               f"{', '.join(names)}")
    strategy_class = load_strategy(config.strategy)
    needed = min_bars(strategy_class, dict(config.strategy_params))
    for name, frame in zip(names, frames):
        if len(frame) < needed:
            label = config.strategy if ":" not in config.strategy else strategy_class.__name__
            of = f" {name}" if len(frames) > 1 else ""
            raise CliError(f"{label} needs at least {needed} bars with these params; the data"
                           f"{of} has {len(frame)}: widen --start/--end or shorten the "
                           "look-back")


def _check_tiers(tiers, option=None) -> None:
    """Bad input if the tier table cannot be read (a leverage above its max fails that row)."""
    if tiers is None:
        return
    from .broker import MarginBroker
    try:
        MarginBroker(tiers=tiers)
    except (OSError, ValueError) as error:
        raise CliError(f"{option or f'--tiers {tiers}'}: {' '.join(str(error).split())}") from None


def _check_settings(args, configs) -> None:
    """Bad input if a setting cannot run at all: a leverage above the margin table's maximum
    (the broker would refuse every order), or any value the broker refuses."""
    from .backtest.single import make_broker
    from .broker import MarginBroker

    table = MarginBroker(tiers=args.tiers,
                         maintenance_margin_rate=args.maintenance_margin_rate).tiers_for(None)
    maximum = table[0].max_leverage
    allowed_by = (f"the --tiers {args.tiers} table" if args.tiers else
                  f"--mmr {args.maintenance_margin_rate:g} (1 / mmr: above it a position would "
                  "open past its liquidation price)")
    for config in configs:
        if config.leverage > maximum:
            raise CliError(f"--leverage {config.leverage:g} is above the maximum of "
                           f"{maximum:g}x allowed by {allowed_by}")
        for feed, leverage in getattr(config, "feed_leverage", ()):
            if leverage > maximum:
                raise CliError(f"--feed-leverage {feed}={leverage:g} is above the maximum of "
                               f"{maximum:g}x allowed by {allowed_by}")
        try:
            config.validate()
            make_broker(config)
        except ValueError as error:
            raise CliError(f"--leverage {config.leverage:g}: "
                           f"{' '.join(str(error).split())}") from None


def _check_first_order(args, configs) -> None:
    """Bad input if a leverage's first order cannot open in its tier bracket at this size.

    The example strategies (and LeverageSizer, with percents / 100 as the fraction) size the
    first order at fraction x cash of margin, so its notional is
    fraction x cash x leverage; a bracket with a lower maximum leverage would refuse every
    order of the run. Leverages above the table's own maximum are left to the broker's
    check.
    """
    from .backtest.exposure import SCALED, strategy_scales_itself
    if args.tiers is None or configs[0].exposure != SCALED:   # as_is: notional not x leverage
        return
    from .broker import MarginBroker
    from .broker import margin as margin_math
    from .strategies.spec import load_strategy

    tiers = MarginBroker(tiers=args.tiers).tiers_for(None)
    strategy_class = load_strategy(configs[0].strategy)
    if strategy_scales_itself(strategy_class):
        fraction = dict(configs[0].strategy_params).get("fraction", strategy_class.params.fraction)
    else:                                   # LeverageSizer: percents % of equity as margin
        fraction = configs[0].percents / 100.0
    margin = fraction * args.cash
    for config in configs:
        leverage = config.leverage
        notional = margin * leverage
        if leverage > tiers[0].max_leverage or margin_math.bracket_allows(notional, leverage, tiers):
            continue
        bracket = margin_math.tier_for_notional(tiers, notional)
        best = margin_math.max_openable_leverage(margin, tiers)
        raise CliError(
            f"--leverage {leverage:g}: the first order ({fraction:g} x {args.cash:,.0f} cash x "
            f"{leverage:g} = {notional:,.0f} notional) falls in the --tiers {args.tiers} bracket "
            f"{bracket.notional_floor:,.0f}-{bracket.notional_cap:,.0f}, whose maximum is "
            f"{bracket.max_leverage:g}x, so every order would be refused; the maximum leverage "
            f"at this size is {math.floor(best * 100) / 100:g}x (or lower --cash / "
            "--param fraction)")


def load_frames(args) -> list:
    """The validated OHLCV frames the options ask for, one per feed, in the order given.

    Each is loaded once and shared by every setting; its ``attrs['symbol']`` names the feed
    (``--csv NAME=FILE``, else the file stem; the ticker for ``--symbol``).
    """
    from .data import load_ohlcv

    start, end = _timestamp(args.start, "--start"), _timestamp(args.end, "--end")
    if start is not None and end is not None and start > end:
        raise CliError(f"--start {args.start} is after --end {args.end}")
    if not args.csv:
        symbols = [part.strip() for part in (args.symbol or DEFAULT_SYMBOL).split(",")]
        if not all(symbols):
            raise CliError(f"--symbol: empty ticker in {args.symbol!r}; give e.g. "
                           "--symbol BTC-USD,ETH-USD")
        return [load_ohlcv(symbol, interval=args.interval or DEFAULT_INTERVAL,
                           start=args.start, end=args.end, source=args.source,
                           exchange=getattr(args, "exchange", DEFAULT_EXCHANGE),
                           refresh=getattr(args, "refresh", False))
                for symbol in symbols]
    return [_load_csv_feed(args, text, start, end) for text in args.csv]


def load_frame(args):
    """The one frame of a command that takes a single feed (``ruin``)."""
    frames = load_frames(args)
    if len(frames) != 1:
        raise CliError(f"{args.command} takes one feed; got {len(frames)} (one --csv, or "
                       "one --symbol)")
    return frames[0]


def _load_csv_feed(args, text, start, end):
    import pandas as pd
    from .backtest.feeds import named
    from .data import DataGapWarning, load_csv, resample_ohlcv, select_range
    from .data.loader import range_text

    name, path = _split_csv_option(text)
    windowed = start is not None or end is not None
    with warnings.catch_warnings():
        if windowed:  # gaps are reported for the window below, not for the whole file
            warnings.simplefilter("ignore", DataGapWarning)
        frame = load_csv(path, format=args.format, interval=getattr(args, "csv_interval", None))
    if windowed:                                 # [start, end), as load_ohlcv, before resampling
        frame = select_range(frame, start, end, label=Path(path).name)
    if args.interval:                            # coarser bars than the file's: aggregate them
        frame = resample_ohlcv(frame, args.interval, start=start, end=end)
        for partial in frame.attrs["dropped_partial_bars"]:
            print(f"note: dropped the partial {frame.attrs['interval']} bar at "
                  f"{pd.Timestamp(partial)} (--start/--end cut it short)")
    if windowed and frame.empty:
        raise CliError(f"{path} has no bars {range_text(args.start, args.end)}")
    return named(frame, name) if name else frame


def _check_perpetual_options(args) -> None:
    """Bad combinations of the funding / mark options, before any data is loaded."""
    uses_ccxt = getattr(args, "funding", None) == "ccxt" or getattr(args, "mark", None) == "ccxt"
    if uses_ccxt and (args.source != "ccxt" or args.csv is not None):
        raise CliError("--funding ccxt / --mark ccxt take the exchange's data: use them with "
                       "--source ccxt --symbol BTC/USDT:USDT (or give --funding-csv / --mark-csv)")


def _per_feed_files(option: str, items, names) -> dict:
    """{feed name: file} of a repeatable '[SYMBOL=]FILE' option; one feed may omit SYMBOL."""
    files = {}
    for item in items or []:
        symbol, path = _mark_item(item)
        if symbol is None:
            if len(names) > 1:
                raise CliError(f"{option} {item}: with several feeds say which one it is for, "
                               f"SYMBOL=FILE (feeds: {', '.join(names)})")
            symbol = names[0]
        if symbol not in names:
            raise CliError(f"{option} {item}: no feed named {symbol!r} (feeds: "
                           f"{', '.join(names)})")
        if symbol in files:
            raise CliError(f"{option}: two files for {symbol}; give one per feed")
        files[symbol] = path
    return files


def _mark_item(item: str) -> tuple[str | None, str]:
    """'FILE' -> (None, FILE); 'SYMBOL=FILE' -> (SYMBOL, FILE)."""
    symbol, sep, path = item.partition("=")
    if sep and symbol and not Path(item).is_file():
        return symbol.strip(), path
    return None, item


def attach_perpetual_to_feeds(args, frames) -> list:
    """Every feed's frame with the mark price and funding the options give it (may be none).

    ``--mark-csv`` / ``--funding-csv`` take ``SYMBOL=FILE`` per feed when there are several;
    ``--mark ccxt`` / ``--funding ccxt`` load each feed's own symbol; ``--funding-rate`` is
    the same constant for every feed (in the config).
    """
    from .backtest.feeds import feed_names
    names = feed_names(frames)
    marks = _per_feed_files("--mark-csv", getattr(args, "mark_csv", None), names)
    fundings = _per_feed_files("--funding-csv", getattr(args, "funding_csv", None), names)
    return [attach_perpetual_data(args, frame, mark_csv=marks.get(name),
                                  funding_csv=fundings.get(name))
            for frame, name in zip(frames, names)]


def attach_perpetual_data(args, frame, *, mark_csv=None, funding_csv=None):
    """One feed's frame with its mark price and funding: the files given, or ``--mark ccxt`` /
    ``--funding ccxt`` for the feed's symbol."""
    import pandas as pd
    from .data import (load_funding_csv, load_funding_rates, load_mark_csv, load_mark_ohlcv,
                       resample_ohlcv, with_perpetual_data)
    from .data.intervals import interval_seconds

    mark = funding = None
    symbol = str(frame.attrs.get("symbol") or args.symbol or DEFAULT_SYMBOL)
    if mark_csv:
        mark = load_mark_csv(mark_csv)
        if frame.attrs.get("interval") and mark.attrs.get("interval") != frame.attrs["interval"]:
            mark = resample_ohlcv(mark, frame.attrs["interval"])   # the trade bars' --interval
    elif getattr(args, "mark", None) == "ccxt":
        interval = frame.attrs.get("interval") or "1h"
        end = frame.index[-1] + pd.Timedelta(seconds=interval_seconds(interval) or 3600)
        mark = load_mark_ohlcv(symbol, interval, frame.index[0], end, exchange=args.exchange)
    if funding_csv:
        funding = load_funding_csv(funding_csv)
    elif getattr(args, "funding", None) == "ccxt":
        day = pd.Timedelta(days=1)
        funding = load_funding_rates(symbol, frame.index[0] - day, frame.index[-1] + day,
                                     exchange=args.exchange)
    if mark is None and funding is None:
        return frame
    if mark is not None:
        covered = mark.index.isin(frame.index).sum()
        if not covered:
            raise CliError(f"the mark price ({_source_name(mark)}) has no bar at the data's "
                           f"times ({frame.index[0]} -> {frame.index[-1]})")
        if covered < len(frame):
            print(f"note: the mark price of {symbol} has {covered} of the {len(frame)} bars; "
                  "the trade price is used on the others")
    if funding is not None:
        inside = ((funding.index >= frame.index[0]) & (funding.index <= frame.index[-1])).sum()
        if not inside:
            raise CliError(f"the funding rates ({_source_name(funding)}) have no settlement in "
                           f"the data's range ({frame.index[0]} -> {frame.index[-1]})")
    return with_perpetual_data(frame, mark=mark, funding=funding)


def _source_name(data) -> str:
    attrs = data.attrs
    return Path(attrs["path"]).name if attrs.get("path") else str(attrs.get("source"))


def perpetual_line(config, frame) -> str:
    """'perpetual: funding …; liquidation trigger: …' for the settings the run uses."""
    from .backtest.metrics import perpetual_settings
    settings = perpetual_settings(config, frame)
    funding = settings["funding"]
    funding = funding if funding.startswith("funding") else f"funding {funding}"
    return f"perpetual: {funding}; liquidation on the {settings['trigger_price']}"


def _timestamp(text, option):
    import pandas as pd
    if text is None:
        return None
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise CliError(f"{option}: not a date/time: {text!r} (use e.g. 2022-01-01 or "
                       "2022-01-01T12:00)") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _announce_data(frame) -> None:
    attrs = frame.attrs
    line = (f"data: {attrs.get('symbol')} {attrs.get('interval')} from {attrs.get('source')}, "
            f"{frame.index[0]} -> {frame.index[-1]}, {len(frame)} bars")
    print(line)
    if attrs.get("synthetic"):
        print("*" * 78 + "\n*** SYNTHETIC DATA: generated demo prices, not market history. "
              "Results say\n*** nothing about any real asset. Use --csv FILE or --symbol "
              "TICKER for real data.\n" + "*" * 78)


def run_summary(row) -> str:
    """Readable block for one setting: equity, return, risk, liquidations and deficits.

    An undefined ratio reads 'n/a (reason)'; margin lost includes the clearance fees (they
    are part of it, not added to it); a wallet that never went below zero says so instead
    of 'worst balance 0.00'.
    """
    from .backtest.exposure import exposure_note
    from .report import format_value as fmt
    from .report.format import na_text, strategy_label

    def ratio(key, kind="ratio"):
        reason = row.get(f"{key}_reason")
        return na_text(reason) if row.get(key) is None and reason else fmt(row.get(key), kind)

    worst = row.get("worst_balance")
    wallet = ("never below zero" if worst is not None and worst >= 0
              else f"lowest {fmt(worst, 'money')}")
    lines = [
        ("final equity", f"{fmt(row['final_value'], 'money')} (start {fmt(row['cash'], 'money')})"),
        ("total return", f"{fmt(row['total_return'], 'percent')}   CAGR {ratio('cagr', 'percent')}"),
        ("max drawdown", fmt(row["max_drawdown"], "percent")),
        ("Sharpe / Sortino / Calmar", " / ".join(ratio(key)
                                                 for key in ("sharpe", "sortino", "calmar"))),
        ("liquidations", f"{fmt(row['liquidations'], 'count')}   margin lost "
                         f"{fmt(row['margin_lost'], 'money')} (clearance fees "
                         f"{fmt(row['liquidation_fees'], 'money')} of it), first after "
                         f"{fmt(row['time_to_first_liquidation'], 'duration')}"),
        ("deficits", f"{fmt(row['deficit'], 'money')}   absorbed "
                     f"{fmt(row['absorbed_deficit'], 'money')}, wallet {wallet}"),
        ("worst margin ratio", f"{fmt(row['worst_margin_ratio'], 'percent')}   closest to "
                               f"liquidation {fmt(row['closest_distance'], 'percent')}, margin "
                               f"calls {fmt(row['margin_calls'], 'count')}"),
        ("trades", f"{fmt(row.get('trades'), 'count')}   orders refused "
                   f"{fmt(row.get('orders_rejected'), 'count')}"),
        ("funding paid", f"{fmt(row.get('funding_paid'), 'money')} in "
                         f"{fmt(row.get('funding_payments'), 'count')} payments ("
                         f"{row.get('funding') or 'funding not modelled'})"),
        ("exposure", exposure_note([row])),
    ]
    by_feed = json.loads(row.get("liquidations_by_feed") or "{}")
    if len(by_feed) > 1:
        lines.insert(5, ("liquidations by feed", fmt(row["liquidations_by_feed"], "feeds")))
    title = f"{strategy_label(row)} at {fmt(row['leverage'], 'leverage')}"
    return "\n".join([title] + [f"  {label:<26}{text}" for label, text in lines])


def summary_table(rows) -> str:
    """Readable text table: one line per setting (leverage, equity, return, risk, liquidations)."""
    from .report import format_value
    several_modes = len({row.get("margin_mode") for row in rows}) > 1
    mode_header = f"{'mode':>9} " if several_modes else ""
    several = any(len(json.loads(row.get("liquidations_by_feed") or "{}")) > 1 for row in rows)
    header = (f"{'leverage':>9} {mode_header}{'final equity':>14} {'return':>10} {'max DD':>9} "
              f"{'liquidations':>12} {'margin lost':>12} {'deficit':>10} {'funding paid':>12}  "
              f"{'by feed  ' if several else ''}error")
    lines = [header, "-" * len(header)]
    for row in rows:
        mode = f"{row.get('margin_mode') or '':>9} " if several_modes else ""
        by_feed = f"{format_value(row['liquidations_by_feed'], 'feeds')}  " if several else ""
        lines.append(
            f"{format_value(row['leverage'], 'leverage'):>9} {mode}"
            f"{format_value(row['final_value'], 'money'):>14} "
            f"{format_value(row['total_return'], 'percent'):>10} "
            f"{format_value(row['max_drawdown'], 'percent'):>9} "
            f"{format_value(row['liquidations'], 'count'):>12} "
            f"{format_value(row['margin_lost'], 'money'):>12} "
            f"{format_value(row['deficit'], 'money'):>10} "
            f"{format_value(row.get('funding_paid'), 'money'):>12}  {by_feed}{row['error'] or ''}")
    return "\n".join(lines)


def comparison_table(entries) -> str:
    """Isolated vs cross per leverage (``backtest.compare.mode_comparison``) and one sentence each."""
    from .report import format_value
    header = (f"{'leverage':>9} {'final equity iso / cross':>27} {'max DD iso / cross':>21} "
              f"{'liquidations':>13} {'lost to liquidations':>23}")
    lines = ["isolated vs cross margin", header, "-" * len(header)]
    for entry in entries:
        iso, cross = entry["isolated"], entry["cross"]
        lines.append(
            f"{format_value(entry['leverage'], 'leverage'):>9} "
            f"{format_value(iso['final_value'], 'money') + ' / ' + format_value(cross['final_value'], 'money'):>27} "
            f"{format_value(iso['max_drawdown'], 'percent') + ' / ' + format_value(cross['max_drawdown'], 'percent'):>21} "
            f"{format_value(iso['liquidations'], 'count') + ' / ' + format_value(cross['liquidations'], 'count'):>13} "
            f"{format_value(iso['liquidation_loss'], 'money') + ' / ' + format_value(cross['liquidation_loss'], 'money'):>23}")
    lines.extend(entry["sentence"] for entry in entries)
    return "\n".join(lines)


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 a setting failed, 2 bad input)."""
    from .backtest import OutputError, SchedulerError
    from .backtest.ruin import RuinError
    from .data import DataError

    argv = sys.argv[1:] if argv is None else list(argv)
    previous_showwarning = warnings.showwarning
    warnings.showwarning = _one_line_warnings
    try:
        if not argv:
            return command_demo()
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise CliError("choose a command: run, sweep, ruin or report (see "
                           f"'{_program_name()} --help')")
        return args.handler(args)
    except (CliError, DataError, OutputError, SchedulerError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuinError as error:
        print(f"error: {' '.join(str(error).split())} (nothing was written)", file=sys.stderr)
        return EXIT_SETTING_FAILED
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = previous_showwarning


if __name__ == "__main__":
    sys.exit(main())
