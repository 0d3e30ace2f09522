"""The plugin used as a user would: from a project of their own, with generic folder names.

The project below has its own ``strategies/`` (a namespace package: no ``__init__.py``, like
a real Binance bot's), ``data/`` and ``analyzers/``; its script imports both those and
``backtrader_leverage`` and runs in a subprocess whose current folder is the project, with
the installed package (this repository's root is not on ``sys.path``). Then the console
script sweeps the project's own strategy by file path and by module name.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = Path(sys.executable).parent / "backtrader-leverage"
BARS = 1500

STRATEGY = '''
import backtrader as bt

from analyzers.counter import BarCounter  # noqa: F401  (the project's own analyzers package)


class BasicRsi(bt.Strategy):
    params = (("period", 14), ("low", 30), ("high", 70))

    def __init__(self):
        self.rsi = bt.ind.RSI(self.data.close, period=self.p.period, safediv=True)

    def next(self):
        if not self.position and self.rsi[0] < self.p.low:
            self.buy()
        elif self.position and self.rsi[0] > self.p.high:
            self.close()
'''
COUNTER = '''
import backtrader as bt


class BarCounter(bt.Analyzer):
    def start(self):
        self.bars = 0

    def next(self):
        self.bars += 1

    def get_analysis(self):
        return {"bars": self.bars}
'''
LOADER = '''
import pandas as pd


def load(path):
    frame = pd.read_csv(path, index_col="date", parse_dates=True)
    frame.index = frame.index.tz_convert(None)
    return frame
'''
SCRIPT = '''
import importlib.util
import json
import sys

import backtrader as bt

from analyzers.counter import BarCounter
from data.loader import load
from strategies.basic_rsi import BasicRsi

import backtrader_leverage
from backtrader_leverage import LiquidationAnalyzer, MarginBroker

cerebro = bt.Cerebro(stdstats=False)
cerebro.adddata(bt.feeds.PandasData(dataname=load("data/btcusdt_1h.csv")))
cerebro.addstrategy(BasicRsi)
cerebro.addsizer(bt.sizers.PercentSizer, percents=500)
cerebro.broker = MarginBroker(cash=10_000, leverage=10)
cerebro.addanalyzer(BarCounter, _name="bars")
cerebro.addanalyzer(LiquidationAnalyzer, _name="liquidations")
strategy = cerebro.run()[0]
print(json.dumps({
    "strategies": importlib.util.find_spec("strategies").submodule_search_locations[0],
    "data": importlib.util.find_spec("data").origin,
    "analyzers": importlib.util.find_spec("analyzers").submodule_search_locations[0],
    "package": backtrader_leverage.__file__,
    "version": backtrader_leverage.__version__,
    "sys_path": sys.path,
    "bars": strategy.analyzers.bars.get_analysis()["bars"],
    "liquidations": strategy.analyzers.liquidations.get_analysis()["count"],
    "value": cerebro.broker.getvalue(),
}))
'''


@pytest.fixture(scope="module")
def project(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("user_project")
    (root / "strategies").mkdir()                       # no __init__.py
    (root / "strategies" / "basic_rsi.py").write_text(STRATEGY)
    (root / "analyzers").mkdir()                        # no __init__.py either
    (root / "analyzers" / "counter.py").write_text(COUNTER)
    (root / "data").mkdir()
    (root / "data" / "__init__.py").write_text("")
    (root / "data" / "loader.py").write_text(LOADER)
    lines = (shared_data / "binance_um_BTCUSDT_1h.csv").read_text().splitlines()
    (root / "data" / "btcusdt_1h.csv").write_text("\n".join([lines[0]] + lines[-BARS:]) + "\n")
    (root / "run_mine.py").write_text(SCRIPT)
    return root


def clean_env():
    import os
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def test_user_script_imports_its_own_packages_and_the_plugin(project):
    done = subprocess.run([sys.executable, "run_mine.py"], cwd=project, capture_output=True,
                          text=True, timeout=120, env=clean_env())
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(seen["strategies"]) == project / "strategies"
    assert Path(seen["analyzers"]) == project / "analyzers"
    assert Path(seen["data"]) == project / "data" / "__init__.py"
    assert str(REPO) not in [str(Path(entry).resolve()) for entry in seen["sys_path"] if entry]
    assert Path(seen["package"]).name == "__init__.py"
    assert seen["version"]
    assert seen["bars"] == BARS and seen["value"] > 0


@pytest.mark.parametrize("spec", ["strategies/basic_rsi.py:BasicRsi",
                                  "strategies.basic_rsi:BasicRsi"])
def test_console_script_sweeps_the_projects_strategy(project, spec, tmp_path):
    out = tmp_path / "sweep"
    done = subprocess.run([str(CONSOLE_SCRIPT), "sweep", "--strategy", spec, "--csv",
                           "data/btcusdt_1h.csv", "--leverage", "1,10", "--param", "period=10",
                           "--workers", "2", "--no-refine", "--out", str(out)],
                          cwd=project, capture_output=True, text=True, timeout=300,
                          env=clean_env())
    assert done.returncode == 0, done.stderr
    rows = json.loads((out / "metrics.json").read_text())
    assert [row["leverage"] for row in rows] == [1.0, 10.0]
    for row in rows:
        assert row["error"] is None and row["strategy_class"] == "BasicRsi"
        assert Path(row["strategy_file"]) == (project / "strategies" / "basic_rsi.py").resolve()
        assert row["sized_orders"] > 0
    assert "BasicRsi" in done.stdout
