"""Monte Carlo probability of ruin: one strategy on many bootstrapped paths, per leverage.

One history is one path. :func:`ruin` draws ``paths`` synthetic histories from the data by
the stationary block bootstrap (:mod:`backtest.bootstrap`) and runs the strategy on every
one of them at every leverage, with the same margin broker as a sweep.

* **Common random numbers.** Path ``k`` is drawn from ``SeedSequence(seed, spawn_key=(k,))``
  whatever task, worker or backend draws it, so every leverage runs on the same paths and
  the same seed gives identical numbers with any backend and worker count.
* **Tasks.** One task is (a block of :data:`PATHS_PER_TASK` consecutive paths, one
  leverage): work spreads evenly over the workers, and one task runs several backtests in
  one process without re-importing anything. A task keeps per path only what the
  statistics need: the final equity, the minimum equity, the maximum drawdown, whether a
  liquidation happened, and the equity at :data:`FAN_POINTS` checkpoints for the fan chart.
* **Backends.** In-process (``workers=1``), a local process pool (the frame handed to each
  worker once by the pool initializer, as in :mod:`backtest.sweep`), or dask.distributed
  (``scheduler``; the frame scattered once).

Per-leverage row (``ruin.json``, ``ruin.csv``; :data:`RUIN_KEYS`)
-----------------------------------------------------------------
======================  =================================================================
key                     meaning [unit]
======================  =================================================================
leverage                leverage [x]
paths                   number of paths [count]
p_liquidation           share of paths with at least one liquidation [fraction]
p_liquidation_ci        Wilson 95 % interval of ``p_liquidation``: [low, high] [fraction]
p_ruin                  share of paths whose equity, marked at a bar's close, fell below
                        ``ruin_level`` x starting cash at any bar [fraction]
p_ruin_ci               Wilson 95 % interval of ``p_ruin`` [fraction]
final_p05, final_median, final_p95
                        5th, 50th, 95th percentile of the final equity [quote currency]
max_drawdown_median     median over paths of the deepest fall from a running peak of
                        closing equity [positive fraction, 1 = everything]
======================  =================================================================
Percentiles are numpy's linear interpolation between order statistics.
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

from ..data import ArrayFeed
from ..data.intervals import infer_interval_seconds, interval_seconds
from ..strategies.spec import check_params, load_strategy, min_bars
from .bootstrap import BarBootstrap, mean_block_bars, path_generator
from .config import BacktestConfig
from .exposure import add_exposure
from .feeds import feed_names
from .metrics import data_identity
from .results import OutputError
from .single import apply_feed_tiers, apply_perpetual_data, make_broker
from .sweep import dask_client, default_workers

RUIN_KEYS = ("leverage", "paths", "p_liquidation", "p_liquidation_ci", "p_ruin", "p_ruin_ci",
             "final_p05", "final_median", "final_p95", "max_drawdown_median")
DEFAULT_PATHS = 200
DEFAULT_BLOCK_HOURS = 24.0
DEFAULT_SEED = 0
DEFAULT_RUIN_LEVEL = 0.1
PATHS_PER_TASK = 10         # paths one task runs in one process [count]
FAN_POINTS = 120            # equity checkpoints kept per path for the fan chart [count]
FAN_PERCENTILES = (5, 25, 50, 75, 95)
WILSON_Z_95 = 1.959963984540054   # standard normal quantile at 97.5 %


class RuinError(RuntimeError):
    """A path's backtest failed (one-line message naming the leverage and the paths)."""


def wilson_interval(successes: int, trials: int, z: float = WILSON_Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: (low, high), fractions in [0, 1].

    centre = (p + z²/2n) / (1 + z²/n);  half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n),
    with p = successes / n. 0 successes of 200 at 95 % gives (0, 0.01884); 0 trials gives
    (0, 1): nothing is known.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    z_squared = z * z
    denominator = 1.0 + z_squared / trials
    centre = (share + z_squared / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z_squared / (4 * trials * trials)) \
        / denominator
    # exact at the edges (centre - half is 0 in exact arithmetic, ~1e-18 in floats)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def block_length_bars(frame: pd.DataFrame, block_hours: float) -> float:
    """Mean block length in bars of ``frame``: ``block_hours`` over its bar interval."""
    seconds = interval_seconds(frame.attrs["interval"]) if frame.attrs.get("interval") else None
    if not seconds:
        seconds = infer_interval_seconds(frame.index)
    if not seconds:
        raise ValueError("cannot tell the bar interval of a frame with fewer than 2 bars")
    return mean_block_bars(block_hours, seconds)


def checkpoint_bars(bars: int, points: int = FAN_POINTS) -> np.ndarray:
    """Bar numbers whose equity the fan chart keeps: evenly spaced, first and last included."""
    return np.unique(np.linspace(0, bars - 1, min(points, bars)).round().astype(np.int64))


# -- one task: a block of paths at one leverage -------------------------------------------
@dataclass(frozen=True)
class RuinTask:
    """Paths ``first_path .. first_path + path_count - 1`` of ``seed`` at ``config``."""

    config: BacktestConfig
    leverage_number: int
    first_path: int
    path_count: int
    seed: int
    mean_block: float
    ruin_level: float


@dataclass
class PathBlock:
    """Per-path statistics of one task, arrays of ``path_count`` in path order.

    liquidated / ruined: bool; final_equity [quote]; max_drawdown [positive fraction];
    checkpoint_equity: (path_count, checkpoints) closing equity at :func:`checkpoint_bars`.
    """

    leverage_number: int
    first_path: int
    liquidated: np.ndarray
    ruined: np.ndarray
    final_equity: np.ndarray
    max_drawdown: np.ndarray
    checkpoint_equity: np.ndarray


class _EquityRecorder(bt.Analyzer):
    """Closing equity of every bar into one preallocated array (a task's scratch space)."""

    params = (("bars", 0),)

    def start(self):
        self.values = np.full(int(self.p.bars), np.nan)
        self.count = 0

    def next(self):
        if self.count < len(self.values):
            self.values[self.count] = self.strategy.broker.getvalue()
            self.count += 1

    def get_analysis(self):
        return {"bars": self.count}


def path_frame(frame: pd.DataFrame, path: dict) -> pd.DataFrame:
    """A drawn path as an OHLCV frame on ``frame``'s own timestamps, with its attrs.

    Only the OHLCV columns: a mark-price series of the real data does not belong to a
    resampled path (liquidation follows the path's own prices); a funding series in the
    attrs applies by the real timestamps.
    """
    synthetic = pd.DataFrame(path, index=frame.index)
    synthetic.attrs.update(frame.attrs)
    return synthetic


def run_ruin_task(frame: pd.DataFrame, task: RuinTask) -> PathBlock:
    """Run ``task.config`` on each of the task's paths; raise on the first failure."""
    config = task.config
    strategy_class = load_strategy(config.strategy)
    params = dict(config.strategy_params)
    bootstrap = BarBootstrap.from_arrays(frame["open"], frame["high"], frame["low"],
                                         frame["close"], frame["volume"],
                                         mean_block=task.mean_block)
    bars = len(frame)
    name = feed_names([frame])[0]
    checkpoints = checkpoint_bars(bars)
    count = task.path_count
    block = PathBlock(task.leverage_number, task.first_path,
                      liquidated=np.zeros(count, dtype=bool), ruined=np.zeros(count, dtype=bool),
                      final_equity=np.zeros(count), max_drawdown=np.zeros(count),
                      checkpoint_equity=np.zeros((count, len(checkpoints))))
    for offset in range(count):
        path = bootstrap.draw(path_generator(task.seed, task.first_path + offset))
        synthetic = path_frame(frame, path)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(ArrayFeed(dataname=synthetic), name=name)
        broker = make_broker(config)
        data = cerebro.datas[0]
        if name in dict(config.feed_leverage):
            broker.set_leverage(data, config.leverage_of(name))
        cerebro.broker = broker
        apply_feed_tiers(broker, cerebro.datas, config)
        apply_perpetual_data(broker, data, synthetic, config)   # funding by the real times
        cerebro.addstrategy(add_exposure(cerebro, strategy_class, config.exposure,
                                         config.percents), **params)
        cerebro.addanalyzer(_EquityRecorder, _name="equity", bars=bars)
        recorder = cerebro.run()[0].analyzers.getbyname("equity")
        equity = recorder.values
        if recorder.count != bars:
            raise RuntimeError(f"the strategy saw {recorder.count} bars, the path has {bars}")
        peak = np.maximum.accumulate(equity)
        with np.errstate(divide="ignore", invalid="ignore"):
            drawdown = np.where(peak > 0, 1.0 - equity / peak, 1.0)
        block.liquidated[offset] = len(broker.liquidations) > 0
        block.ruined[offset] = bool(np.any(equity < task.ruin_level * config.cash))
        block.final_equity[offset] = broker.getvalue()
        block.max_drawdown[offset] = float(np.clip(drawdown, 0.0, 1.0).max())
        block.checkpoint_equity[offset] = equity[checkpoints]
    return block


# -- the runner ------------------------------------------------------------------------------
@dataclass
class RuinResult:
    """What :func:`ruin` found.

    rows : one dict per leverage with :data:`RUIN_KEYS`, in the order of the configs.
    time : checkpoint bar times [int64 ns since epoch, UTC].
    equity : per leverage, (paths, checkpoints) closing equity at those times [quote].
    settings : seed, paths, block_hours, mean_block_bars, ruin_level (JSON-ready).
    liquidated, ruined : per leverage, a bool array over the paths (path k at index k).
    identity : data identity and the shared setting (strategy, cash, fees, margin), for the
        report (JSON-ready).
    """

    rows: list
    time: np.ndarray
    equity: list
    settings: dict
    identity: dict
    liquidated: list
    ruined: list

    def fan(self, percentiles=FAN_PERCENTILES) -> list:
        """Per leverage, an array (len(percentiles), checkpoints) of equity percentiles."""
        return [np.percentile(equity, percentiles, axis=0) for equity in self.equity]


def ruin(frame: pd.DataFrame, configs, *, paths: int = DEFAULT_PATHS,
         block_hours: float = DEFAULT_BLOCK_HOURS, seed: int = DEFAULT_SEED,
         ruin_level: float = DEFAULT_RUIN_LEVEL, workers: int | None = None, scheduler=None,
         progress: bool | None = None, paths_per_task: int = PATHS_PER_TASK) -> RuinResult:
    """Probability of liquidation and of ruin per leverage, over bootstrapped paths.

    Parameters
    ----------
    frame : pandas.DataFrame
        Validated OHLCV frame (``data.load_csv`` / ``load_ohlcv``); paths are drawn from it.
    configs : list of BacktestConfig
        One per leverage (the same strategy and margin settings, as for :func:`sweep`).
    paths : int
        Synthetic paths per leverage, >= 1 (the same paths for every leverage).
    block_hours : float
        Mean block length of the stationary bootstrap [hours], converted to bars with the
        frame's interval.
    seed : int
        Seed of every path (>= 0): the same seed gives the same result.
    ruin_level : float
        Ruin = closing equity below ``ruin_level`` x starting cash at any bar [fraction].
    workers, scheduler, progress
        As for :func:`backtest.sweep.sweep`; the progress bar counts tasks.
    paths_per_task : int
        Paths one task runs; does not change the result.
    """
    configs = list(configs)
    _check_arguments(frame, configs, paths, block_hours, seed, ruin_level, paths_per_task)
    mean_block = block_length_bars(frame, block_hours)
    tasks = [RuinTask(config=config, leverage_number=number, first_path=first,
                      path_count=min(paths_per_task, paths - first), seed=int(seed),
                      mean_block=mean_block, ruin_level=float(ruin_level))
             for first in range(0, paths, paths_per_task)
             for number, config in enumerate(configs)]
    bar = _progress_bar(len(tasks), progress)
    try:
        if scheduler is not None:
            blocks = _run_dask(frame, tasks, scheduler, bar)
        else:
            workers = default_workers() if workers is None else int(workers)
            if workers < 1:
                raise ValueError(f"workers must be >= 1, got {workers}")
            if workers == 1 or len(tasks) == 1:
                blocks = _run_in_process(frame, tasks, bar)
            else:
                blocks = _run_process_pool(frame, tasks, min(workers, len(tasks)), bar)
    finally:
        bar.close()
    settings = {"seed": int(seed), "paths": int(paths), "block_hours": float(block_hours),
                "mean_block_bars": mean_block, "ruin_level": float(ruin_level)}
    return _collect(frame, configs, blocks, paths, settings)


def _check_arguments(frame, configs, paths, block_hours, seed, ruin_level, paths_per_task):
    if not configs:
        raise ValueError("ruin needs at least one setting (leverage)")
    for name, value in (("paths", paths), ("paths_per_task", paths_per_task)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if not (isinstance(ruin_level, (int, float)) and 0 < ruin_level < 1):
        raise ValueError(f"ruin_level must be a fraction in (0, 1), got {ruin_level!r}")
    if not (isinstance(block_hours, (int, float)) and math.isfinite(block_hours)
            and block_hours > 0):
        raise ValueError(f"block_hours must be > 0, got {block_hours!r}")
    if len(frame) < 2:
        raise ValueError(f"ruin needs at least 2 bars, the data has {len(frame)}")
    for config in configs:
        config.validate()
        strategy_class = load_strategy(config.strategy)
        check_params(strategy_class, dict(config.strategy_params))
        needed = min_bars(strategy_class, dict(config.strategy_params))
        if len(frame) < needed:
            raise ValueError(f"{config.strategy} needs at least {needed} bars with these "
                             f"params; the data has {len(frame)}")
        make_broker(config)   # a leverage above the tier table's maximum fails here


def _collect(frame, configs, blocks, paths, settings) -> RuinResult:
    """Rows and fan arrays from the task blocks, in path order (backend-independent)."""
    checkpoints = checkpoint_bars(len(frame))
    index = frame.index.tz_convert("UTC") if frame.index.tz is not None else frame.index
    time = index.as_unit("ns").asi8.astype(np.int64)[checkpoints]
    rows, equity, liquidated_paths, ruined_paths = [], [], [], []
    for number, config in enumerate(configs):
        mine = sorted((block for block in blocks if block.leverage_number == number),
                      key=lambda block: block.first_path)
        liquidated = np.concatenate([block.liquidated for block in mine])
        ruined = np.concatenate([block.ruined for block in mine])
        final = np.concatenate([block.final_equity for block in mine])
        drawdown = np.concatenate([block.max_drawdown for block in mine])
        equity.append(np.concatenate([block.checkpoint_equity for block in mine]))
        liquidated_paths.append(liquidated)
        ruined_paths.append(ruined)
        if len(final) != paths:
            raise RuinError(f"leverage {config.leverage:g}x: {len(final)} of {paths} paths ran")
        low_high_final = np.percentile(final, [5, 50, 95])
        rows.append({
            "leverage": float(config.leverage),
            "paths": int(paths),
            "p_liquidation": float(liquidated.mean()),
            "p_liquidation_ci": list(wilson_interval(int(liquidated.sum()), paths)),
            "p_ruin": float(ruined.mean()),
            "p_ruin_ci": list(wilson_interval(int(ruined.sum()), paths)),
            "final_p05": float(low_high_final[0]),
            "final_median": float(low_high_final[1]),
            "final_p95": float(low_high_final[2]),
            "max_drawdown_median": float(np.median(drawdown)),
        })
    shared = configs[0].to_dict()
    shared.pop("leverage")
    identity = {**shared, **data_identity(frame)}
    return RuinResult(rows=rows, time=time, equity=equity, settings=settings, identity=identity,
                      liquidated=liquidated_paths, ruined=ruined_paths)


def ruin_table(rows: list, *, ruin_level: float) -> str:
    """Readable text table of the ruin rows: probabilities with their intervals, equity."""
    def percent(value):
        return f"{value * 100:.1f} %"

    header = (f"{'leverage':>9} {'paths':>6} {'P(liquidation) [95 % CI]':>28} "
              f"{f'P(equity < {ruin_level:g}x start)':>28} {'final p05':>12} "
              f"{'median':>12} {'p95':>12} {'median max DD':>14}")
    lines = [header, "-" * len(header)]
    for row in rows:
        liquidation = (f"{percent(row['p_liquidation'])} [{percent(row['p_liquidation_ci'][0])}"
                       f", {percent(row['p_liquidation_ci'][1])}]")
        ruined = (f"{percent(row['p_ruin'])} [{percent(row['p_ruin_ci'][0])}, "
                  f"{percent(row['p_ruin_ci'][1])}]")
        lines.append(f"{row['leverage']:>8g}x {row['paths']:>6} {liquidation:>28} "
                     f"{ruined:>28} {row['final_p05']:>12,.0f} {row['final_median']:>12,.0f} "
                     f"{row['final_p95']:>12,.0f} {percent(row['max_drawdown_median']):>14}")
    return "\n".join(lines)


def _task_failed(task: RuinTask, error: BaseException) -> RuinError:
    last = task.first_path + task.path_count - 1
    message = " ".join(str(error).split()) or type(error).__name__
    return RuinError(f"leverage {task.config.leverage:g}x, paths {task.first_path}-{last}: "
                     f"{type(error).__name__}: {message}")


def _run_in_process(frame, tasks, bar) -> list:
    blocks = []
    for task in tasks:
        try:
            blocks.append(run_ruin_task(frame, task))
        except Exception as error:  # noqa: BLE001 - reported with the task that failed
            raise _task_failed(task, error) from None
        bar.update(1)
    return blocks


_WORKER_FRAME = None  # the frame, set once per worker process by the pool initializer


def _install_frame(frame) -> None:
    global _WORKER_FRAME
    _WORKER_FRAME = frame


def _run_on_installed_frame(task: RuinTask) -> PathBlock:
    return run_ruin_task(_WORKER_FRAME, task)


def _run_process_pool(frame, tasks, workers, bar) -> list:
    blocks = []
    with ProcessPoolExecutor(max_workers=workers, initializer=_install_frame,
                             initargs=(frame,)) as pool:
        futures = {pool.submit(_run_on_installed_frame, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                try:
                    blocks.append(future.result())
                except Exception as error:  # noqa: BLE001 - incl. a dead worker process
                    raise _task_failed(futures[future], error) from None
                bar.update(1)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return blocks


def _run_dask(frame, tasks, scheduler, bar) -> list:
    with dask_client(scheduler) as client:
        from dask.distributed import as_completed as dask_as_completed

        frame_future = client.scatter(frame, broadcast=True, hash=False)
        futures = {client.submit(run_ruin_task, frame_future, task, pure=False): task
                   for task in tasks}
        blocks = []
        for future in dask_as_completed(futures, loop=client.loop):
            try:
                blocks.append(future.result())
            except Exception as error:  # noqa: BLE001 - a lost worker or a failing path
                for pending in futures:
                    pending.cancel()
                raise _task_failed(futures[future], error) from None
            bar.update(1)
        return blocks


def _progress_bar(total: int, progress: bool | None):
    from tqdm import tqdm
    if progress is None:
        progress = sys.stderr.isatty()
    return tqdm(total=total, desc="ruin", unit="task", disable=not progress, file=sys.stderr)


# -- the output folder -----------------------------------------------------------------------
RUIN_JSON = "ruin.json"
RUIN_CSV = "ruin.csv"
RUIN_NPZ = "ruin.npz"
CSV_COLUMNS = ("leverage", "paths", "p_liquidation", "p_liquidation_ci_low",
               "p_liquidation_ci_high", "p_ruin", "p_ruin_ci_low", "p_ruin_ci_high",
               "final_p05", "final_median", "final_p95", "max_drawdown_median")
# A fixed zip entry time, so the same result gives the same bytes (numpy stamps the clock).
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


def ruin_payloads(result: RuinResult) -> dict:
    """``{file name: bytes}`` of ruin.json, ruin.csv and ruin.npz; same result, same bytes.

    ``ruin.npz``: ``time`` (checkpoint times, int64 ns UTC), ``equity/{i}`` (paths x
    checkpoints closing equity of row ``i``, float64, quote currency), ``liquidated/{i}``
    and ``ruined/{i}`` (bool per path) and ``meta`` (JSON text: ``settings`` and
    ``identity`` of :class:`RuinResult`).
    """
    rows_json = json.dumps(result.rows, indent=2, allow_nan=False).encode() + b"\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in result.rows:
        writer.writerow([row["leverage"], row["paths"], row["p_liquidation"],
                         *row["p_liquidation_ci"], row["p_ruin"], *row["p_ruin_ci"],
                         row["final_p05"], row["final_median"], row["final_p95"],
                         row["max_drawdown_median"]])
    meta = json.dumps({"settings": result.settings, "identity": result.identity},
                      sort_keys=True, allow_nan=False)
    arrays = {"time": np.asarray(result.time, dtype=np.int64), "meta": np.array(meta)}
    for number, equity in enumerate(result.equity):
        arrays[f"equity/{number}"] = np.asarray(equity, dtype=np.float64)
        arrays[f"liquidated/{number}"] = np.asarray(result.liquidated[number], dtype=bool)
        arrays[f"ruined/{number}"] = np.asarray(result.ruined[number], dtype=bool)
    return {RUIN_JSON: rows_json, RUIN_CSV: buffer.getvalue().encode(),
            RUIN_NPZ: _deterministic_npz(arrays)}


def read_ruin(out_dir) -> RuinResult:
    """The :class:`RuinResult` stored in a ruin output folder; ``OutputError`` if unreadable."""
    path = Path(out_dir)
    try:
        rows = json.loads((path / RUIN_JSON).read_text())
        with np.load(path / RUIN_NPZ, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            time = archive["time"]
            equity = [archive[f"equity/{number}"] for number in range(len(rows))]
            liquidated = [archive[f"liquidated/{number}"] for number in range(len(rows))]
            ruined = [archive[f"ruined/{number}"] for number in range(len(rows))]
    except FileNotFoundError as error:
        raise OutputError(f"{path} is not a ruin output folder: {error.filename} is missing "
                          "(create one with 'run_backtest.py ruin')") from None
    except (OSError, ValueError, KeyError) as error:
        raise OutputError(f"cannot read {path}: {' '.join(str(error).split())}") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) and set(row) == set(RUIN_KEYS)
                                             for row in rows):
        raise OutputError(f"{path / RUIN_JSON} is not a list of ruin rows ({', '.join(RUIN_KEYS)})")
    return RuinResult(rows=rows, time=time, equity=equity, settings=meta["settings"],
                      identity=meta["identity"], liquidated=liquidated, ruined=ruined)


def _deterministic_npz(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            payload = io.BytesIO()
            np.lib.format.write_array(payload, np.asanyarray(array), allow_pickle=False)
            archive.writestr(entry, payload.getvalue())
    return buffer.getvalue()
