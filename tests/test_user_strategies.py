"""Any backtrader strategy: --strategy file.py:Class / module:Class, --param, exposure modes,
the LeverageSizer arithmetic, bad specs, and the Python API against the command line."""
import json
import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import backtrader_leverage as btl
from backtrader_leverage import ArrayFeed, MarginBroker
from backtrader_leverage import cli as run_backtest
from backtrader_leverage.backtest import BacktestConfig, run_backtest as run_one
from backtrader_leverage.backtest.metrics import ROW_KEYS
from backtrader_leverage.data import load_csv
from backtrader_leverage.sizers import LeverageSizer
from backtrader_leverage.strategies.spec import StrategySpecError, load_strategy

BARS = 2000
# Long-only SMA cross placing orders without a size; and one that passes its own sizes.
USER_FILE = '''
import backtrader as bt


class MyCross(bt.Strategy):
    params = (("fast", 10), ("slow", 30))

    def __init__(self):
        cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))
        self.cross = cross

    def next(self):
        if self.cross[0] > 0 and not self.position:
            self.buy()
        elif self.cross[0] < 0 and self.position:
            self.close()


class FixedSizeCross(MyCross):
    def next(self):
        if self.cross[0] > 0 and not self.position:
            self.buy(size=0.05)
        elif self.cross[0] < 0 and self.position:
            self.close()


def not_a_strategy():
    return 1
'''


@pytest.fixture(scope="module")
def btc_csv(shared_data, tmp_path_factory):
    """The last BARS hourly bars of the Binance BTCUSDT perpetual, same format."""
    lines = (shared_data / "binance_um_BTCUSDT_1h.csv").read_text().splitlines()
    path = tmp_path_factory.mktemp("data") / "btcusdt_perp_1h.csv"
    path.write_text("\n".join([lines[0]] + lines[-BARS:]) + "\n")
    return path


@pytest.fixture(scope="module")
def user_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("project") / "my_strategies.py"
    path.write_text(USER_FILE)
    return path


def read_rows(out):
    return json.loads((out / "metrics.json").read_text())


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and "Traceback" not in err[0]
    return err[0]


# -- specs ------------------------------------------------------------------------------------
def test_file_spec_sweeps_on_the_process_pool(btc_csv, user_file, tmp_path):
    out = tmp_path / "mine"
    assert run_backtest.main(["sweep", "--strategy", f"{user_file}:MyCross", "--csv",
                              str(btc_csv), "--leverage", "1,5,20", "--param", "fast=12",
                              "--workers", "2", "--out", str(out)]) == 0
    rows = read_rows(out)
    assert [row["leverage"] for row in rows] == [1.0, 5.0, 20.0]
    for row in rows:
        assert row["error"] is None and row["strategy_class"] == "MyCross"
        assert row["strategy_file"] == str(user_file.resolve())
        assert row["strategy"] == f"{user_file.resolve()}:MyCross"
        assert json.loads(row["strategy_params"]) == {"fast": 12}
        assert row["exposure"] == "scaled" and row["sized_orders"] > 0
        assert row["explicit_orders"] == 0
    html = (out / "report.html").read_text()
    assert "MyCross (my_strategies.py)" in html and str(user_file.resolve()) in html
    assert "LeverageSizer sized" in html


def test_backtraders_own_ma_crossover(btc_csv, tmp_path, capsys):
    out = tmp_path / "bt"
    assert run_backtest.main(["sweep", "--strategy", "backtrader.strategies:MA_CrossOver",
                              "--csv", str(btc_csv), "--leverage", "1,10", "--workers", "1",
                              "--param", "fast=20", "--out", str(out)]) == 0
    rows = read_rows(out)
    assert all(row["strategy_class"] == "MA_CrossOver" and row["error"] is None for row in rows)
    assert rows[0]["strategy_file"].endswith("sma_crossover.py")
    assert rows[1]["sized_orders"] > 0                     # it calls buy() / sell() sizeless


@pytest.mark.parametrize("spec, fragments", [
    ("{dir}/missing.py:MyCross", ["no such file", "missing.py"]),
    ("{file}:Nope", ["defines no 'Nope'", "FixedSizeCross, MyCross"]),
    ("{file}:not_a_strategy", ["not_a_strategy", "not a backtrader Strategy"]),
    ("no_such_module_xyz:Cls", ["no module named 'no_such_module_xyz'"]),
    ("nonsense", ["not a registered strategy", "path/to/file.py:ClassName"]),
])
def test_bad_specs_are_one_line_and_exit_2(spec, fragments, btc_csv, user_file, tmp_path,
                                           capsys):
    out = tmp_path / "never"
    spec = spec.format(dir=tmp_path, file=user_file)
    assert run_backtest.main(["run", "--strategy", spec, "--csv", str(btc_csv),
                              "--out", str(out)]) == 2
    line = one_error_line(capsys)
    for fragment in fragments:
        assert fragment in line
    assert not out.exists()


def test_an_error_inside_the_users_file_names_its_line(btc_csv, tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("import backtrader as bt\n\nVALUE = 1\nundefined_name + VALUE\n")
    assert run_backtest.main(["run", "--strategy", f"{broken}:X", "--csv", str(btc_csv),
                              "--out", str(tmp_path / "never")]) == 2
    line = one_error_line(capsys)
    assert "NameError" in line and "undefined_name" in line and "broken.py, line 4" in line
    syntax = tmp_path / "syntax.py"
    syntax.write_text("class X(:\n    pass\n")
    assert run_backtest.main(["run", "--strategy", f"{syntax}:X", "--csv", str(btc_csv),
                              "--out", str(tmp_path / "never")]) == 2
    assert "SyntaxError" in (line := one_error_line(capsys)) and "syntax.py, line 1" in line
    assert not (tmp_path / "never").exists()


def test_unknown_param_of_a_user_strategy_lists_the_valid_ones(btc_csv, user_file, tmp_path,
                                                               capsys):
    assert run_backtest.main(["run", "--strategy", f"{user_file}:MyCross", "--param",
                              "fats=3", "--csv", str(btc_csv),
                              "--out", str(tmp_path / "never")]) == 2
    line = one_error_line(capsys)
    assert "MyCross has no param 'fats'" in line and "fast, slow" in line


# -- exposure ---------------------------------------------------------------------------------
def test_leverage_sizer_arithmetic():
    # equity 10,000, percents 90, leverage 5, close 20,000:
    # notional = 0.9 x 10,000 x 5 = 45,000; size = 45,000 / 20,000 = 2.25 BTC
    index = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    frame = pd.DataFrame({"open": 20_000.0, "high": 20_000.0, "low": 20_000.0,
                          "close": 20_000.0, "volume": 1.0}, index=index)

    class BuyOnce(bt.Strategy):
        def next(self):
            if len(self) == 1:
                self.order = self.buy()

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ArrayFeed(dataname=frame))
    cerebro.broker = MarginBroker(cash=10_000, leverage=5)
    cerebro.addsizer(LeverageSizer, percents=90)
    cerebro.addstrategy(BuyOnce)
    strategy = cerebro.run()[0]
    assert strategy.order.size == pytest.approx(0.9 * 10_000 * 5 / 20_000)     # 2.25


def test_exposure_modes_on_a_sizer_strategy(btc_csv, user_file):
    frame = load_csv(btc_csv)
    spec = f"{user_file}:MyCross"
    scaled = {lev: run_one(frame, BacktestConfig(strategy=spec, leverage=lev)) for lev in (1, 5)}
    # scaled: the first entry (same bar, same equity 10,000, close C) has
    # size = 0.9 x 10,000 x L / C, so 5x holds five times the 1x size (lot 0.001)
    first = {lev: result.events["trades"][0] for lev, result in scaled.items()}
    assert first[1]["entry_dt"] == first[5]["entry_dt"]
    assert first[5]["size"] == pytest.approx(5 * first[1]["size"], abs=0.005)
    # as_is: backtrader's default sizer, 1 unit whatever the leverage (1 BTC needs 10x
    # here: 10,000 of wallet against ~60,000 of notional), so 10x and 20x enter alike
    as_is = {lev: run_one(frame, BacktestConfig(strategy=spec, leverage=lev, exposure="as_is"))
             for lev in (10, 20)}
    entries = {lev: result.events["trades"][0] for lev, result in as_is.items()}
    assert entries[10]["size"] == entries[20]["size"] == 1.0
    assert entries[10]["entry_dt"] == entries[20]["entry_dt"]
    assert all(r.row["sized_orders"] > 0 and r.row["exposure"] == "as_is" for r in as_is.values())


def test_explicit_sizes_are_counted_and_reported(btc_csv, user_file, tmp_path):
    out = tmp_path / "fixed"
    assert run_backtest.main(["sweep", "--strategy", f"{user_file}:FixedSizeCross", "--csv",
                              str(btc_csv), "--leverage", "2,20", "--workers", "1",
                              "--out", str(out)]) == 0
    rows = read_rows(out)
    assert all(row["explicit_orders"] > 0 and row["sized_orders"] == 0 for row in rows)
    html = (out / "report.html").read_text()
    assert "scaled could not apply to" in html and "passed explicit sizes" in html


def test_example_strategies_keep_their_own_leverage_scaled_sizing(btc_csv):
    frame = load_csv(btc_csv)
    scaled = run_one(frame, BacktestConfig(strategy="buy_hold", leverage=3.0))
    as_is = run_one(frame, BacktestConfig(strategy="buy_hold", leverage=3.0, exposure="as_is"))
    assert scaled.row["strategy_scales_sizes"] is True and scaled.row["exposure"] == "scaled"
    # buy_hold's first entry at the first close C: size = 0.9 x 10,000 x 3 / C (scaled) or
    # 0.9 x 10,000 / C (as_is), each floored to the 0.001 lot
    close = frame["close"].iloc[0]
    first_scaled, first_as_is = scaled.events["trades"][0], as_is.events["trades"][0]
    assert first_scaled["size"] == pytest.approx(math.floor(0.9 * 10_000 * 3 / close * 1000) / 1000)
    assert first_as_is["size"] == pytest.approx(math.floor(0.9 * 10_000 / close * 1000) / 1000)
    assert "as_is: BuyHold's own sizes (notional = fraction × equity" in \
        btl.backtest.exposure.exposure_note([as_is.row])


# -- the Python API ---------------------------------------------------------------------------
def test_api_gives_the_cli_numbers(btc_csv, user_file, tmp_path):
    out = tmp_path / "cli"
    assert run_backtest.main(["sweep", "--strategy", f"{user_file}:MyCross", "--csv",
                              str(btc_csv), "--leverage", "1,5,20", "--workers", "2",
                              "--no-refine", "--out", str(out)]) == 0
    cli_table = pd.read_csv(out / "metrics.csv")
    klass = load_strategy(f"{user_file}:MyCross")          # the class object, as a user has it
    result = btl.sweep(klass, btc_csv, [1, 5, 20], workers=2)
    assert list(result.metrics.columns) == list(ROW_KEYS) == list(cli_table.columns)
    assert len(result.results) == 3
    written = result.write(tmp_path / "api", refine=False)
    api_table = pd.read_csv(written["metrics.csv"])
    pd.testing.assert_frame_equal(api_table.drop(columns=["seconds"]),
                                  cli_table.drop(columns=["seconds"]))
    assert (tmp_path / "api" / "report.html").is_file()
    # the in-memory frame matches what it wrote
    assert np.allclose(result.metrics["final_value"], api_table["final_value"])


def test_api_takes_frames_by_name_and_checks_options(btc_csv):
    frame = load_csv(btc_csv)
    result = btl.sweep("sma_cross", {"BTC": frame}, [2], workers=1, feed_leverage={"BTC": 3})
    (row,) = result.rows
    assert row["symbol"] == "BTC" and json.loads(row["feed_leverage"]) == {"BTC": 3.0}
    with pytest.raises(ValueError, match="no feed named 'ETH'"):
        btl.sweep("sma_cross", {"BTC": frame}, [2], feed_leverage={"ETH": 3})
    with pytest.raises(TypeError, match="unknown option 'cahs'"):
        btl.sweep("sma_cross", frame, [2], cahs=5)
    with pytest.raises(StrategySpecError):
        btl.sweep("nope.py:X", frame, [2])


def test_a_strategy_file_is_reimported_by_dask_workers(btc_csv, user_file):
    # dask starts its worker processes fresh (spawn): they import the class from its path
    distributed = pytest.importorskip("dask.distributed")
    from backtrader_leverage.backtest import sweep
    from backtrader_leverage.backtest.config import build_configs

    frame = load_csv(btc_csv)
    configs = build_configs(f"{user_file}:MyCross", [1, 5])
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        on_dask = sweep(frame, configs, scheduler=cluster, progress=False)
    in_process = sweep(frame, configs, workers=1, progress=False)

    def comparable(row):
        return {key: value for key, value in row.items() if key != "seconds"}
    assert all(result.row["error"] is None for result in on_dask)
    assert [comparable(r.row) for r in on_dask] == [comparable(r.row) for r in in_process]
