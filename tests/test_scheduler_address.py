"""``sweep --scheduler ADDRESS`` checks the address before loading any data.

A bad address used to print the right line only after the data was loaded, then
hang 20 s and print ``Exception ignored in Client.__del__ ... TimeoutError``.
Now it is one ``error:`` line, exit 2, in a few seconds, no data loaded, nothing
else on stderr (run through the real entry point, so interpreter shutdown noise
would show).
"""
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("dask.distributed")

SCRIPT = Path(__file__).resolve().parent.parent / "run_backtest.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("address, fragment", [
    ("garbage", "missing port number"),
    (f"tcp://127.0.0.1:{free_port()}", "refused"),
    ("tcp://127.0.0.1:notaport", "port"),
])
def test_bad_scheduler_is_one_line_fast_before_loading_data(address, fragment, shared_data,
                                                            tmp_path):
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "sweep", "--csv", str(shared_data / "binance_BTCUSDT_1h.csv"),
         "--start", "2022-01-01", "--end", "2022-02-01", "--leverage", "1,2",
         "--scheduler", address, "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert completed.returncode == 2
    err = completed.stderr.strip().splitlines()
    assert len(err) == 1, completed.stderr
    assert err[0].startswith(f"error: cannot reach the dask scheduler {address}")
    assert fragment in err[0]
    assert "data:" not in completed.stdout          # refused before the data was loaded
    assert elapsed < 15, elapsed                     # no 20 s close() hang
    assert not (tmp_path / "out").exists()


def test_sweep_api_refuses_a_bad_address_without_noise(capfd):
    from backtrader_leverage.backtest import BacktestConfig, SchedulerError, sweep
    import pandas as pd
    frame = pd.DataFrame()
    with pytest.raises(SchedulerError, match="missing port number"):
        sweep(frame, [BacktestConfig(), BacktestConfig(leverage=2.0)], scheduler="garbage",
              progress=False)
    import gc
    gc.collect()
    assert "Exception ignored" not in capfd.readouterr().err
