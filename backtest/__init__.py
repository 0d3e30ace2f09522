"""Backtests as data: one setting -> a metrics row + per-bar series; a sweep of settings.

Public names::

    BacktestConfig                      # one setting (strategy, leverage, fees, margin params)
    run_backtest(frame, config)         # -> BacktestResult(row, series); raises on failure
    run_task(frame, config)             # same, never raises (the sweep's task function)
    sweep(frame, configs, workers=None, scheduler=None, progress=None)  # -> [BacktestResult]
    write_outputs / read_outputs        # the output folder (metrics.json/.csv, series.npz)
    ruin(frame, configs, paths=200, block_hours=24, seed=0, ruin_level=0.1, ...)
                                        # -> RuinResult: Monte Carlo P(liquidation), P(ruin)
    read_report_inputs(dir)             # + summary.json, liquidations.csv, trades.csv
    safe_leverage_summary(rows, run)    # the safe leverage and best settings (summary.json)
"""
from .config import BacktestConfig
from .metrics import ROW_KEYS
from .results import (OutputError, event_records, read_outputs, read_report_inputs,
                      series_bundle, write_outputs)
from .safe_leverage import safe_leverage_summary
from .single import BacktestResult, run_backtest, run_task
from .sweep import SchedulerError, default_workers, sweep
from .ruin import RuinError, RuinResult, ruin, wilson_interval  # noqa: E402 - after sweep

__all__ = ["BacktestConfig", "BacktestResult", "ROW_KEYS", "run_backtest", "run_task", "sweep",
           "default_workers", "SchedulerError", "OutputError", "series_bundle", "write_outputs",
           "read_outputs", "ruin", "RuinResult", "RuinError", "wilson_interval",
           "read_report_inputs", "event_records", "safe_leverage_summary"]
