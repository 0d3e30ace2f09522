"""run_backtest.py end to end: run, sweep, report, the no-argument demo, and bad input."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backtrader_leverage import cli as run_backtest
from backtrader_leverage.backtest.metrics import ROW_KEYS
from backtrader_leverage.strategies import STRATEGIES, BuyHold

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "run_backtest.py"
BARS = 1200
OUTPUT_FILES = {"report.html", "metrics.json", "metrics.csv", "series.npz", "summary.json",
                "liquidations.csv", "trades.csv", "manifest.json"}


@pytest.fixture(scope="module")
def small_csv(shared_data, tmp_path_factory):
    """The last BARS hourly bars of the real Binance BTCUSDT file, same format."""
    lines = (shared_data / "binance_BTCUSDT_1h.csv").read_text().splitlines()
    path = tmp_path_factory.mktemp("data") / "btcusdt_1h_tail.csv"
    path.write_text("\n".join([lines[0]] + lines[-BARS:]) + "\n")
    return path


def read_rows(out):
    return json.loads((out / "metrics.json").read_text())


def assert_one_error_line(capsys, *fragments):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in err[0]
    return err[0]


def test_run_writes_one_row_and_prints_a_summary(small_csv, tmp_path):
    out = tmp_path / "run"
    completed = subprocess.run([sys.executable, str(SCRIPT), "run", "--csv", str(small_csv),
                                "--leverage", "3", "--out", str(out)],
                               capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert {path.name for path in out.iterdir()} == OUTPUT_FILES
    (row,) = read_rows(out)
    assert row["leverage"] == 3.0 and row["error"] is None and row["bars"] == BARS
    assert row["source"] == "csv" and row["synthetic"] is False
    assert "final equity" in completed.stdout and str(out / "report.html") in completed.stdout
    assert "Traceback" not in completed.stderr


def test_sweep_rows_in_order_and_csv_matches_json(small_csv, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = run_backtest.main(["sweep", "--csv", str(small_csv), "--leverage", "1,5,50",
                              "--workers", "2", "--strategy", "donchian_breakout",
                              "--param", "entry_period=30", "--out", str(out)])
    assert code == 0
    rows = read_rows(out)
    assert [row["leverage"] for row in rows] == [1.0, 5.0, 50.0]
    assert all(list(row) == list(ROW_KEYS) for row in rows)
    assert all(row["strategy"] == "donchian_breakout" for row in rows)
    assert json.loads(rows[0]["strategy_params"]) == {"entry_period": 30}
    with open(out / "metrics.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows)
    for line, row in zip(table, rows):
        for key in ("leverage", "final_value", "total_return", "max_drawdown", "deficit"):
            assert float(line[key]) == pytest.approx(row[key], rel=1e-12)
        assert int(line["liquidations"]) == row["liquidations"]
    printed = capsys.readouterr().out
    assert "50x" in printed and "report:" in printed


def test_report_rebuilds_from_the_folder_alone(small_csv, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert run_backtest.main(["sweep", "--csv", str(small_csv), "--leverage", "2,10",
                              "--workers", "1", "--out", str(out)]) == 0
    first = (out / "report.html").read_text()
    (out / "report.html").unlink()
    assert run_backtest.main(["report", str(out)]) == 0
    assert (out / "report.html").read_text() == first
    assert str(out / "report.html") in capsys.readouterr().out


class FailsAtFiveX(BuyHold):
    """Buy and hold that raises in its first bar when run at 5x (a setting failing mid-run)."""

    def next(self):
        if self.broker.get_leverage(self.data) == 5.0:
            raise RuntimeError("this setting breaks at 5x")
        super().next()


def test_failing_setting_keeps_its_row_and_exits_1(small_csv, tmp_path, capsys, monkeypatch):
    out = tmp_path / "failing"
    monkeypatch.setitem(STRATEGIES, "fails_at_five_x", FailsAtFiveX)
    code = run_backtest.main(["sweep", "--csv", str(small_csv), "--leverage", "2,5",
                              "--strategy", "fails_at_five_x", "--workers", "1",
                              "--out", str(out)])
    assert code == 1
    ok, failed = read_rows(out)
    assert ok["error"] is None and ok["final_value"] is not None
    assert failed["leverage"] == 5.0 and "breaks at 5x" in failed["error"]
    assert failed["final_value"] is None
    assert {path.name for path in out.iterdir()} == OUTPUT_FILES
    assert "5x failed" in capsys.readouterr().err
    assert run_backtest.main(["report", str(out)]) == 0          # the rebuild itself succeeds


def test_leverage_above_the_tier_table_is_refused_before_any_work(small_csv, tmp_path, capsys):
    out = tmp_path / "tiers"
    # the BTCUSDT tier table's max leverage is 125x: 200x is refused up front, nothing runs
    code = run_backtest.main(["sweep", "--csv", str(small_csv), "--leverage", "2,200",
                              "--tiers", "binance_btcusdt_perp", "--workers", "2",
                              "--out", str(out)])
    assert code == 2
    assert_one_error_line(capsys, "--leverage 200", "maximum of 125x")
    assert not out.exists()


def test_no_arguments_runs_the_demo_offline(tmp_path):
    env = dict(os.environ)
    completed = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                               cwd=tmp_path, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr
    out = tmp_path / "out" / "demo"
    assert {path.name for path in out.iterdir()} == OUTPUT_FILES
    rows = read_rows(out)
    assert [row["leverage"] for row in rows] == [1.0, 2.0, 3.0, 5.0, 10.0, 20.0]
    assert str(out / "report.html") in completed.stdout
    # the bundled real BTCUSDT perpetual sample, with its funding and mark price
    assert "funding payments and mark-price liquidation on" in completed.stdout
    assert rows[0]["symbol"] == "BTCUSDT-PERP" and rows[0]["synthetic"] is False
    assert rows[0]["bars"] == 2 * 365 * 24 and rows[0]["data_start"].startswith("2021-01-01")
    assert rows[0]["funding"].startswith("binance_um_BTCUSDT_funding_8h_2021-2022.csv.gz (2190 ")
    assert rows[0]["trigger_price"].startswith("mark price (binance_um_BTCUSDT_mark_1h")
    assert all(row["funding_payments"] > 0 for row in rows)


@pytest.mark.parametrize("argv, fragments", [
    (["run", "--strategy", "nope"], ["--strategy", "nope"]),
    (["run", "--bogus-option"], ["--bogus-option"]),
    (["sweep", "--leverage", ""], ["leverage list is empty"]),
    (["sweep", "--leverage", ","], ["--leverage"]),
    (["sweep", "--leverage", "1,0,5"], ["--leverage", "> 0"]),
    (["run", "--leverage", "-2"], ["--leverage", "> 0"]),
    (["run", "--leverage", "nan"], ["--leverage"]),
    (["run", "--param", "no_such=1"], ["no_such"]),
    (["run", "--param", "fast=50", "--param", "slow=20"], ["fast < slow"]),
    (["run", "--strategy", "rsi_reversion", "--param", "period=abc"], ["period"]),
    (["run", "--tiers", "no_such_table"], ["--tiers"]),
    (["run", "--start", "2024-05-01", "--end", "2024-01-01"], ["after"]),
    (["frobnicate"], ["frobnicate"]),
])
def test_bad_input_is_one_line_and_exit_2(argv, fragments, small_csv, tmp_path, capsys):
    out = tmp_path / "out"
    needs_data = argv[0] in ("run", "sweep")
    extra = ["--csv", str(small_csv), "--out", str(out)] if needs_data else []
    assert run_backtest.main(argv + extra) == 2
    assert_one_error_line(capsys, *fragments)
    assert not out.exists()  # nothing created before the inputs are good


def test_unreadable_csv_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "missing.csv"
    assert run_backtest.main(["run", "--csv", str(missing), "--out", str(tmp_path / "a")]) == 2
    assert_one_error_line(capsys, "missing.csv")
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("this is,not\nmarket,data\n")
    assert run_backtest.main(["run", "--csv", str(garbage), "--out", str(tmp_path / "b")]) == 2
    assert_one_error_line(capsys, "garbage.csv")
    assert not (tmp_path / "b").exists()  # nothing created before the inputs are good


def test_unwritable_output_folder_is_one_line_and_exit_2(small_csv, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert run_backtest.main(["run", "--csv", str(small_csv),
                              "--out", str(blocker / "out")]) == 2
    assert_one_error_line(capsys, "cannot write to output folder")


def test_report_of_a_folder_without_results_is_exit_2(tmp_path, capsys):
    assert run_backtest.main(["report", str(tmp_path)]) == 2
    assert_one_error_line(capsys, "metrics.json")
    assert not (tmp_path / "report.html").exists()


def test_bad_input_has_no_traceback_through_the_real_entry_point(tmp_path):
    completed = subprocess.run([sys.executable, str(SCRIPT), "sweep", "--leverage", "0",
                                "--csv", "x.csv"], capture_output=True, text=True,
                               cwd=tmp_path, timeout=60)
    assert completed.returncode == 2
    assert completed.stderr.strip().count("\n") == 0
    assert completed.stderr.startswith("error: ") and "Traceback" not in completed.stderr


def test_help_lists_every_public_option(capsys):
    for command in ("run", "sweep"):
        with pytest.raises(SystemExit) as exit_info:
            run_backtest.main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for option in ("--strategy", "--csv", "--symbol", "--interval", "--start", "--end",
                       "--cash", "--leverage", "--out", "--commission", "--source",
                       "--maintenance-margin-rate", "--liquidation-fee-rate",
                       "--negative-balance"):
            assert option in text, (command, option)
    with pytest.raises(SystemExit):
        run_backtest.main(["sweep", "--help"])
    text = capsys.readouterr().out
    assert "--workers" in text and "--scheduler" in text


def test_symbol_from_the_synthetic_source_is_labelled_synthetic(tmp_path, capsys):
    out = tmp_path / "synthetic"
    code = run_backtest.main(["run", "--symbol", "BTC-USD", "--interval", "1h",
                              "--source", "synthetic", "--start", "2022-01-01",
                              "--end", "2022-02-01", "--leverage", "5", "--out", str(out)])
    assert code == 0
    (row,) = read_rows(out)
    assert row["synthetic"] is True and row["source"] == "synthetic"
    assert row["bars"] == 31 * 24                       # [2022-01-01, 2022-02-01) hourly
    assert "SYNTHETIC DATA" in capsys.readouterr().out
    assert "SYNTHETIC" in (out / "report.html").read_text().split("</title>")[0]


def test_symbol_with_an_empty_cache_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    from backtrader_leverage.data import CACHE_DIR_ENV_VAR
    monkeypatch.setenv(CACHE_DIR_ENV_VAR, str(tmp_path / "empty-cache"))
    out = tmp_path / "out"
    assert run_backtest.main(["run", "--symbol", "ETH-USD", "--source", "cache",
                              "--out", str(out)]) == 2
    assert_one_error_line(capsys, "ETH-USD", "--csv")
    assert not out.exists()  # nothing created before the inputs are good


def test_csv_range_is_start_inclusive_end_exclusive(small_csv, tmp_path):
    out = tmp_path / "range"
    assert run_backtest.main(["run", "--csv", str(small_csv), "--start", "2024-04-10",
                              "--end", "2024-04-11", "--strategy", "buy_hold",
                              "--out", str(out)]) == 0
    (row,) = read_rows(out)
    assert row["bars"] == 24                            # one day of hourly bars
    assert row["data_start"].startswith("2024-04-10T00:00")
    assert row["data_end"].startswith("2024-04-10T23:00")


def test_csv_interval_aggregates_the_file(small_csv, tmp_path):
    out = tmp_path / "4h"
    assert run_backtest.main(["run", "--csv", str(small_csv), "--interval", "4h",
                              "--out", str(out)]) == 0
    (row,) = read_rows(out)
    assert row["interval"] == "4h" and row["bars"] <= BARS // 4 + 1


def test_too_few_bars_for_the_look_back_is_exit_2(small_csv, tmp_path, capsys):
    # sma_cross with slow=50 needs 50 + 1 (a cross needs two slow-SMA values) + 1 = 52 bars
    out = tmp_path / "short"
    assert run_backtest.main(["run", "--csv", str(small_csv), "--start", "2024-04-10",
                              "--end", "2024-04-11", "--out", str(out)]) == 2
    assert_one_error_line(capsys, "needs at least 52 bars", "has 24")
    assert not out.exists()  # nothing created before the inputs are good
