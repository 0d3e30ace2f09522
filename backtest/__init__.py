"""Backtests as data: one setting -> a metrics row + per-bar series; a sweep of settings.

Public names::

    BacktestConfig                      # one setting (strategy, leverage, fees, margin params)
    run_backtest(frame, config)         # -> BacktestResult(row, series); raises on failure
    run_task(frame, config)             # same, never raises (the sweep's task function)
    sweep(frame, configs, workers=None, scheduler=None, progress=None)  # -> [BacktestResult]
    write_outputs / read_outputs        # the output folder (metrics.json/.csv, series.npz)
    ruin(frame, configs, paths=200, block_hours=24, seed=0, ruin_level=0.1, ...)
                                        # -> RuinResult: Monte Carlo P(liquidation), P(ruin)
"""
from .config import BacktestConfig
from .metrics import ROW_KEYS
from .results import OutputError, read_outputs, series_bundle, write_outputs
from .single import BacktestResult, run_backtest, run_task
from .sweep import SchedulerError, default_workers, sweep
from .ruin import RuinError, RuinResult, ruin, wilson_interval  # noqa: E402 - after sweep

__all__ = ["BacktestConfig", "BacktestResult", "ROW_KEYS", "run_backtest", "run_task", "sweep",
           "default_workers", "SchedulerError", "OutputError", "series_bundle", "write_outputs",
           "read_outputs", "ruin", "RuinResult", "RuinError", "wilson_interval"]
