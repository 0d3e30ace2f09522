"""backtrader-leverage: faithful leveraged-crypto backtests for backtrader.

The public surface, for a backtrader script of your own::

    from backtrader_leverage import MarginBroker, RiskAnalyzer
    cerebro.broker = MarginBroker(cash=10_000, leverage=10)
    cerebro.addanalyzer(RiskAnalyzer, _name="risk")

and a leverage sweep of any backtrader strategy, the same as ``backtrader-leverage sweep``::

    import backtrader_leverage as btl
    result = btl.sweep(MyCross, "btcusdt_1h.csv", [1, 5, 20])   # result.metrics: a DataFrame
    result.write("out/mine")                                   # report.html and the rest

Sub-packages hold the rest: :mod:`backtrader_leverage.broker` (the margin broker and its pure
margin math), :mod:`.analyzers`, :mod:`.data` (CSV, yfinance, feeds), :mod:`.strategies`
(the example strategies), :mod:`.backtest` (one setting, the sweep, the output folder) and
:mod:`.report` (the HTML risk report). The command line is :mod:`backtrader_leverage.cli`
(console script ``backtrader-leverage``).
"""
from pathlib import Path as _Path

__version__ = "0.2.0"

# In an installed copy the sub-packages sit inside this folder.  In a plain clone they are its
# siblings (broker/, data/, ... at the repository root, mapped by pyproject's package-dir), so
# run_backtest.py works from a clone without installing: only this package's search path grows,
# never sys.path, so the clone's generic folder names cannot shadow a user's own packages.
_here = _Path(__file__).resolve().parent
if not (_here / "broker").is_dir() and (_here.parent / "broker" / "broker.py").is_file():
    __path__.append(str(_here.parent))  # noqa: F821 - __path__ is the package's own

from .analyzers import (LiquidationAnalyzer, MarginAnalyzer, NegativeBalanceAnalyzer,  # noqa: E402
                        RiskAnalyzer)
from .broker import MarginBroker  # noqa: E402
from .data import ArrayFeed, DataError, load_csv, load_ohlcv  # noqa: E402
from .backtest import ruin  # noqa: E402
from .api import SweepResult, sweep  # noqa: E402

__all__ = ["__version__", "MarginBroker", "LiquidationAnalyzer", "MarginAnalyzer",
           "NegativeBalanceAnalyzer", "RiskAnalyzer", "load_csv", "load_ohlcv", "ArrayFeed",
           "DataError", "ruin", "sweep", "SweepResult"]
