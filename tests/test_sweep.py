"""Sweep engine: one row per setting in order, same numbers on every backend, failures kept."""
import builtins

import numpy as np
import pytest

from backtrader_leverage.backtest import ROW_KEYS, BacktestConfig, SchedulerError, run_backtest, run_task, sweep
from backtrader_leverage.data import load_csv

BARS = 1500
LEVERAGES = (1.0, 5.0, 50.0)
TIMING_KEYS = {"seconds"}


@pytest.fixture(scope="module")
def frame(shared_data):
    return load_csv(shared_data / "binance_BTCUSDT_1h.csv").iloc[-BARS:]


def comparable(row):
    return {key: value for key, value in row.items() if key not in TIMING_KEYS}


def test_result_row_and_series_agree(frame):
    config = BacktestConfig(strategy="sma_cross", leverage=50.0)
    result = run_backtest(frame, config)
    row, series = result.row, result.series
    assert list(row) == list(ROW_KEYS) and row["error"] is None
    assert row["leverage"] == 50.0 and row["bars"] == BARS
    for key in ("equity", "drawdown", "margin_ratio"):
        assert len(series[key]) == BARS
    # final value is the last equity; total return = final / cash - 1
    assert series["equity"][-1] == pytest.approx(row["final_value"])
    assert row["total_return"] == pytest.approx(row["final_value"] / row["cash"] - 1)
    # drawdown = (running peak - equity) / running peak, the peak including the starting cash
    peak = np.maximum.accumulate(np.concatenate([[row["cash"]], series["equity"]]))[1:]
    assert series["drawdown"] == pytest.approx((peak - series["equity"]) / peak)
    assert row["max_drawdown"] == pytest.approx(series["drawdown"].max())
    # one marker per liquidation, and the 50x run on this slice does get liquidated
    assert row["liquidations"] == len(series["liquidation_time"]) > 0
    assert set(np.unique(series["liquidation_side"])) <= {-1, 1}
    assert row["time_to_first_liquidation"] > 0


def test_process_pool_matches_in_process_in_config_order(frame):
    configs = [BacktestConfig(leverage=leverage) for leverage in LEVERAGES]
    pooled = sweep(frame, configs, workers=2, progress=False)
    serial = sweep(frame, configs, workers=1, progress=False)
    assert [result.row["leverage"] for result in pooled] == list(LEVERAGES)
    assert [comparable(r.row) for r in pooled] == [comparable(r.row) for r in serial]
    for left, right in zip(pooled, serial):
        np.testing.assert_array_equal(left.series["equity"], right.series["equity"])


def test_empty_sweep_is_an_empty_list(frame):
    assert sweep(frame, [], workers=2, progress=False) == []


def test_failing_setting_keeps_its_row_with_error(frame):
    # the Binance BTCUSDT tier table allows at most 125x: 200x fails, 2x runs
    configs = [BacktestConfig(leverage=2.0, tiers="binance_btcusdt_perp"),
               BacktestConfig(leverage=200.0, tiers="binance_btcusdt_perp")]
    results = sweep(frame, configs, workers=2, progress=False)
    ok, failed = results
    assert ok.row["error"] is None and ok.series
    assert list(failed.row) == list(ROW_KEYS)
    assert "125" in failed.row["error"] and failed.row["leverage"] == 200.0
    assert failed.row["final_value"] is None and failed.series == {}


def test_run_task_never_raises(frame):
    result = run_task(frame, BacktestConfig(leverage=-1.0))
    assert "leverage" in result.row["error"] and not result.ok


@pytest.fixture(scope="module")
def local_cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_dask_local_cluster_gives_the_process_pool_numbers(frame, local_cluster):
    configs = [BacktestConfig(leverage=leverage) for leverage in LEVERAGES]
    pooled = sweep(frame, configs, workers=2, progress=False)
    on_dask = sweep(frame, configs, scheduler=local_cluster, progress=False)
    assert [comparable(r.row) for r in on_dask] == [comparable(r.row) for r in pooled]
    for left, right in zip(on_dask, pooled):
        np.testing.assert_array_equal(left.series["equity"], right.series["equity"])


def test_cli_scheduler_option_uses_the_same_task(frame, local_cluster, tmp_path, shared_data):
    import json

    from backtrader_leverage import cli as run_backtest
    lines = (shared_data / "binance_BTCUSDT_1h.csv").read_text().splitlines()
    csv_path = tmp_path / "tail.csv"
    csv_path.write_text("\n".join([lines[0]] + lines[-BARS:]) + "\n")
    out = tmp_path / "out"
    assert run_backtest.main(["sweep", "--csv", str(csv_path), "--leverage", "1,5,50",
                              "--scheduler", local_cluster.scheduler_address,
                              "--out", str(out)]) == 0
    rows = json.loads((out / "metrics.json").read_text())
    expected = sweep(frame, [BacktestConfig(leverage=lev) for lev in LEVERAGES], workers=1,
                     progress=False)
    for row, result in zip(rows, expected):
        # same data, same task: identical numbers (the symbol differs: it is the file stem)
        for key in ("leverage", "final_value", "total_return", "max_drawdown", "liquidations",
                    "deficit", "sharpe"):
            assert row[key] == result.row[key]


def test_progress_bar_counts_completed_settings(frame, capsys):
    sweep(frame, [BacktestConfig(leverage=1.0), BacktestConfig(leverage=2.0)], workers=1,
          progress=True)
    err = capsys.readouterr().err
    assert "sweep" in err and "2/2" in err


def test_missing_dask_names_the_install_command(frame, monkeypatch):
    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.startswith("dask"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(SchedulerError, match="pip install"):
        sweep(frame, [BacktestConfig()], scheduler="tcp://127.0.0.1:8786", progress=False)


def test_progress_bar_is_quiet_off_a_terminal_and_workers_default_to_cores(frame, capsys):
    import os

    from backtrader_leverage.backtest import default_workers
    sweep(frame, [BacktestConfig(leverage=1.0)], workers=1)      # stderr is not a TTY here
    assert capsys.readouterr().err == ""
    assert default_workers() == (os.cpu_count() or 1)
