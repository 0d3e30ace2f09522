"""Monte Carlo ruin: Wilson intervals, determinism by seed, monotone liquidation risk, the CLI."""
import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import backtrader_leverage
from backtrader_leverage import cli as run_backtest
from backtrader_leverage.backtest import BacktestConfig
from backtrader_leverage.backtest.ruin import (RUIN_KEYS, read_ruin, ruin, ruin_payloads,
                                               wilson_interval)
from backtrader_leverage.data import load_csv

PATHS = 40
LEVERAGES = (1.0, 3.0, 5.0, 10.0, 20.0)
RUIN_FILES = {"ruin.json", "ruin.csv", "ruin.npz", "report.html", "manifest.json"}
Z = 1.959963984540054


@pytest.fixture(scope="module")
def hourly_csv(shared_data, tmp_path_factory):
    """1,500 hourly bars of the real Binance USDⓈ-M BTCUSDT file from 2021-01-01, same format."""
    lines = (shared_data / "binance_um_BTCUSDT_1h.csv").read_text().splitlines()
    start = next(number for number, line in enumerate(lines) if line.startswith("2021-01-01T00"))
    path = tmp_path_factory.mktemp("data") / "btcusdt_um_1h_2021.csv"
    path.write_text("\n".join([lines[0]] + lines[start:start + 1500]) + "\n")
    return path


@pytest.fixture(scope="module")
def frame(hourly_csv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_csv(hourly_csv)


def configs(leverages=LEVERAGES, **overrides):
    return [BacktestConfig(strategy="buy_hold", leverage=leverage, **overrides)
            for leverage in leverages]


# -- Wilson interval, by hand -----------------------------------------------------------------
def test_wilson_interval_ten_of_forty():
    # p = 10/40 = 0.25, z² = 3.841459, z²/n = 0.0960365, denominator 1 + 0.0960365 = 1.0960365
    # centre = (0.25 + 3.841459/80) / 1.0960365 = 0.2980182 / 1.0960365 = 0.2719060
    # half   = 1.959964 * sqrt(0.25*0.75/40 + 3.841459/6400) / 1.0960365
    #        = 1.959964 * sqrt(0.0046875 + 0.00060023) / 1.0960365 = 0.1300341
    low, high = wilson_interval(10, 40)
    assert low == pytest.approx(0.2719060 - 0.1300341, abs=1e-6)     # 0.1418719
    assert high == pytest.approx(0.2719060 + 0.1300341, abs=1e-6)    # 0.4019401


def test_wilson_interval_at_the_edges():
    # 0 of 200: centre = half = (z²/400) / (1 + z²/200); high = z²/200 / (1 + z²/200)
    #         = 0.01920730 / 1.01920730 = 0.0188453
    assert wilson_interval(0, 200) == pytest.approx((0.0, 0.0188453), abs=1e-6)
    assert wilson_interval(0, 200)[0] == 0.0              # exactly, not 1e-18
    low, high = wilson_interval(200, 200)                 # the mirror image
    assert (low, high) == pytest.approx((1 - 0.0188453, 1.0), abs=1e-6) and high == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


# -- the runner --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pooled(frame):
    return ruin(frame, configs(), paths=PATHS, seed=7, workers=2, progress=False)


def test_rows_have_exactly_the_public_keys(pooled):
    assert [row["leverage"] for row in pooled.rows] == list(LEVERAGES)
    for row in pooled.rows:
        assert tuple(row) == RUIN_KEYS
        assert row["paths"] == PATHS
        low, high = row["p_liquidation_ci"]
        assert low <= row["p_liquidation"] <= high
        assert row["p_liquidation_ci"] == list(wilson_interval(round(row["p_liquidation"] * PATHS),
                                                               PATHS))
        assert row["final_p05"] <= row["final_median"] <= row["final_p95"]
        assert 0 <= row["max_drawdown_median"] <= 1


def test_liquidation_risk_does_not_fall_as_leverage_rises_for_buy_and_hold(pooled):
    shares = [row["p_liquidation"] for row in pooled.rows]
    assert shares == sorted(shares)
    assert shares[0] == 0.0            # 1x: the margin covers the whole notional
    assert shares[-1] > shares[1] > 0  # 20x is liquidated more often than 3x, on the same paths
    # common random numbers: on one path, a liquidation at a lower leverage implies one at
    # every higher leverage (buy and hold: the liquidation price only comes nearer)
    for lower, higher in zip(pooled.liquidated, pooled.liquidated[1:]):
        assert np.all(higher[lower])
    assert pooled.rows[0]["p_ruin"] == 0.0


def test_same_seed_same_numbers_whatever_the_backend_and_task_size(frame, pooled):
    # two of the five leverages again, in this process, in blocks of 7 paths instead of 10
    in_process = ruin(frame, configs((3.0, 20.0)), paths=PATHS, seed=7, workers=1,
                      progress=False, paths_per_task=7)
    for mine, theirs in ((0, 1), (1, 4)):
        assert in_process.rows[mine] == pooled.rows[theirs]
        np.testing.assert_array_equal(in_process.equity[mine], pooled.equity[theirs])
    other_seed = ruin(frame, configs((5.0,)), paths=10, seed=8, workers=1, progress=False)
    same_seed = ruin(frame, configs((5.0,)), paths=10, seed=7, workers=1, progress=False)
    assert not np.array_equal(other_seed.equity[0], same_seed.equity[0])
    np.testing.assert_array_equal(same_seed.equity[0], pooled.equity[2][:10])


def test_dask_gives_the_process_pool_numbers(frame):
    distributed = pytest.importorskip("dask.distributed")
    few = configs((3.0, 20.0))
    local = ruin(frame, few, paths=6, seed=3, workers=1, progress=False, paths_per_task=2)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        on_dask = ruin(frame, few, paths=6, seed=3, scheduler=client, progress=False,
                       paths_per_task=2)
    assert ruin_payloads(on_dask) == ruin_payloads(local)


def test_fan_percentiles_are_ordered_and_start_at_the_cash(pooled):
    for fan in pooled.fan():
        assert fan.shape[0] == 5
        assert np.all(np.diff(fan, axis=0) >= -1e-9)
        assert fan[:, 0] == pytest.approx(10_000.0, rel=0.01)   # first bar: fee paid, no move


def test_bad_arguments_raise_before_any_work(frame):
    for kwargs in ({"paths": 0}, {"seed": -1}, {"ruin_level": 1.0}, {"block_hours": 0}):
        with pytest.raises(ValueError):
            ruin(frame, configs((2.0,)), progress=False, **kwargs)
    with pytest.raises(ValueError, match="maximum"):
        ruin(frame, configs((200.0,), tiers="binance_btcusdt_perp"), paths=2, progress=False)


def test_package_exports_ruin():
    assert backtrader_leverage.ruin is ruin


# -- command line --------------------------------------------------------------------------------
def test_cli_writes_the_folder_and_is_deterministic(hourly_csv, tmp_path, capsys):
    outs = []
    for number, workers in enumerate(("2", "1")):
        out = tmp_path / f"ruin{number}"
        code = run_backtest.main(["ruin", "--csv", str(hourly_csv), "--strategy", "buy_hold",
                                  "--leverage", "3,20", "--paths", "8", "--seed", "4",
                                  "--workers", workers, "--out", str(out)])
        assert code == 0
        assert {path.name for path in out.iterdir()} == RUIN_FILES
        outs.append(out)
    for name in RUIN_FILES:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    printed = capsys.readouterr().out
    assert "P(liquidation) [95 % CI]" in printed and "report:" in printed
    rows = json.loads((outs[0] / "ruin.json").read_text())
    csv_lines = (outs[0] / "ruin.csv").read_text().splitlines()
    assert csv_lines[0].startswith("leverage,paths,p_liquidation,p_liquidation_ci_low")
    assert len(csv_lines) == 1 + len(rows)
    first = dict(zip(csv_lines[0].split(","), csv_lines[1].split(",")))
    assert math.isclose(float(first["p_ruin_ci_high"]), rows[0]["p_ruin_ci"][1])
    html = (outs[0] / "report.html").read_text()
    assert "Probability of ruin by leverage" in html and "Wilson" in html

    rebuilt = read_ruin(outs[0])
    assert rebuilt.rows == rows and rebuilt.settings["seed"] == 4
    assert [flags.mean() for flags in rebuilt.liquidated] == [row["p_liquidation"] for row in rows]
    report = (outs[0] / "report.html").read_bytes()
    assert run_backtest.main(["report", str(outs[0])]) == 0
    assert (outs[0] / "report.html").read_bytes() == report
    assert run_backtest.main(["report", str(outs[0]), "--static"]) == 0
    static = (outs[0] / "report.html").read_text()
    assert "<script" not in static and static.count("data:image/png;base64,") == 2


@pytest.mark.parametrize("argv, fragment", [
    (["--paths", "0"], "--paths"),
    (["--ruin-level", "1.5"], "--ruin-level"),
    (["--block-hours", "-3"], "--block-hours"),
    (["--seed", "x"], "--seed"),
    (["--leverage", "200", "--tiers", "binance_btcusdt_perp"], "maximum"),
    (["--param", "nope=1"], "nope"),
    (["--scheduler", "tcp://127.0.0.1:1"], "cannot reach the dask scheduler"),
])
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(argv, fragment, hourly_csv,
                                                             tmp_path, capsys):
    out = tmp_path / "out"
    code = run_backtest.main(["ruin", "--csv", str(hourly_csv), "--strategy", "buy_hold",
                              "--out", str(out), *argv])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0]
    assert not out.exists() or not any(out.iterdir())




@given(trials=st.integers(1, 5000), data=st.data())
def test_wilson_interval_holds_the_share(trials, data):
    successes = data.draw(st.integers(0, trials))
    low, high = wilson_interval(successes, trials)
    assert 0.0 <= low <= successes / trials <= high <= 1.0
    assert high - low <= 2 * Z * math.sqrt(0.25 / trials) + 1e-12   # never wider than p = 0.5


USER_STRATEGY = '''
import backtrader as bt


class HoldLong(bt.Strategy):
    """A user's own strategy: buy once with the plugin's sizer, hold."""

    def next(self):
        if not self.position and len(self) == 1:
            self.buy()
'''


def test_cli_ruin_runs_a_users_strategy_file_with_funding(hourly_csv, tmp_path, capsys):
    strategy = tmp_path / "my_strategy.py"
    strategy.write_text(USER_STRATEGY)
    common = ["ruin", "--csv", str(hourly_csv), "--strategy", f"{strategy}:HoldLong",
              "--leverage", "5", "--paths", "4", "--workers", "1"]
    assert run_backtest.main(common + ["--out", str(tmp_path / "plain")]) == 0
    # 0.1 % every 8 h, longs pay: the same paths end lower
    assert run_backtest.main(common + ["--funding-rate", "0.001",
                                       "--out", str(tmp_path / "funded")]) == 0
    plain = json.loads((tmp_path / "plain" / "ruin.json").read_text())[0]
    funded = json.loads((tmp_path / "funded" / "ruin.json").read_text())[0]
    assert funded["final_median"] < plain["final_median"]
