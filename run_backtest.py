#!/usr/bin/env python
"""Leveraged crypto backtests from a clone: ``python run_backtest.py {run,sweep,report} ...``.

The same command as the installed console script ``backtrader-leverage``; the code is in
:mod:`backtrader_leverage.cli`. Works with or without ``pip install .``: when the package is
not installed, the clone's copy is loaded without putting the repository root on ``sys.path``.
"""
import importlib.util
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent


def _load_package():
    # Python puts this script's folder first on sys.path; drop it, so that the clone's generic
    # folders (strategies/, data/, ...) never shadow a user's modules of the same name.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT]
    spec = importlib.util.find_spec("backtrader_leverage")
    if spec is None:
        init = _ROOT / "backtrader_leverage" / "__init__.py"
        spec = importlib.util.spec_from_file_location(
            "backtrader_leverage", init, submodule_search_locations=[str(init.parent)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["backtrader_leverage"] = module
        spec.loader.exec_module(module)


_load_package()
from backtrader_leverage.cli import *  # noqa: E402,F401,F403  (tests call run_backtest.main)
from backtrader_leverage.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
