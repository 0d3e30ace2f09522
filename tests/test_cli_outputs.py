"""The output folder: atomic writes, read-back, and the series file layout."""
import json
import os

import numpy as np
import pytest

from backtrader_leverage.backtest import ROW_KEYS, OutputError, read_outputs
from backtrader_leverage.backtest import results
from backtrader_leverage.backtest.results import write_files_atomically, write_outputs


def test_a_failed_write_leaves_neither_files_nor_temp_files(tmp_path, monkeypatch):
    real_write = results._write_file
    calls = []

    def failing_write(path, payload):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(path, payload)

    monkeypatch.setattr(results, "_write_file", failing_write)
    with pytest.raises(OutputError, match="No space left"):
        write_files_atomically(tmp_path / "out", {"metrics.json": b"[]", "metrics.csv": b""})
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []  # no folder, no staging


def test_outputs_round_trip(tmp_path):
    rows = [dict.fromkeys(ROW_KEYS), dict.fromkeys(ROW_KEYS)]
    rows[0].update(strategy="sma_cross", leverage=2.0, final_value=12_345.5)
    rows[1].update(strategy="sma_cross", leverage=200.0, error="ValueError: too high")
    time = np.arange(4, dtype=np.int64) * 3_600_000_000_000
    equity = np.array([10_000.0, 11_000.0, 12_000.0, 12_345.5], np.float32)  # ends at final_value
    bundle = {"time": time, "close": np.array([1.0, 2.0, 3.0, 4.0]),
              "0/equity": equity, "0/drawdown": np.zeros(4, np.float32),
              "0/margin_ratio": np.full(4, np.nan, np.float32),
              "0/liquidation_time": time[:1], "0/liquidation_price": np.array([2.5]),
              "0/liquidation_side": np.array([1], np.int8)}
    written = write_outputs(tmp_path, rows, bundle, "<html></html>")
    assert sorted(written) == ["metrics.csv", "metrics.json", "report.html", "series.npz"]
    read_rows, read_bundle = read_outputs(tmp_path)
    assert read_rows == rows == json.loads((tmp_path / "metrics.json").read_text())
    assert sorted(read_bundle) == sorted(bundle)
    np.testing.assert_array_equal(read_bundle["time"], time)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_reading_a_folder_without_results_names_the_missing_file(tmp_path):
    with pytest.raises(OutputError, match="metrics.json"):
        read_outputs(tmp_path)


def test_reading_rows_from_another_program_is_refused(tmp_path):
    write_outputs(tmp_path, [{"leverage": 1.0}], {"time": np.zeros(1, np.int64),
                                                  "close": np.ones(1)}, None)
    with pytest.raises(OutputError, match="row 0 lacks"):
        read_outputs(tmp_path)
