"""Strategy specs: a text that names any backtrader strategy, for the CLI, the API and workers.

A spec is one of::

    sma_cross                           # a registered name (see strategies/__init__.py)
    path/to/my_strategies.py:MyCross    # a class in a Python file
    backtrader.strategies:MA_CrossOver  # a class in an importable module

The sweep hands the spec text (never the class) to its worker processes and dask workers,
which resolve it again with :func:`load_strategy`; :func:`normalize_spec` makes a file path
absolute first, so a worker with another current folder finds the same file.

A file is imported under a private module name, with its own folder and the current folder
put on ``sys.path`` (as ``python my_strategies.py`` and ``python -m`` would), so it can
import its siblings and the packages of the project it is run from (a ``strategies/``
folder, with or without ``__init__.py``). A module name is looked up in the current folder
first, then on ``sys.path``.

Every failure is a :class:`StrategySpecError` (a ``ValueError``) with a one-line message:
a missing file, a class the file does not define, a class that is not a ``bt.Strategy``, or
an error raised while importing the user's file (its own message and line).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from pathlib import Path

import backtrader as bt

FILE_SUFFIX = ".py"
_PRIVATE_PREFIX = "backtrader_leverage_user_"


class StrategySpecError(ValueError):
    """The strategy spec cannot be resolved to a ``bt.Strategy`` class (one-line message)."""


def is_registered(spec: str) -> bool:
    """True when ``spec`` is a name of the built-in registry."""
    from . import STRATEGIES
    return spec in STRATEGIES


def split_spec(spec: str) -> tuple[str, str]:
    """'a/b.py:Cls' -> ('a/b.py', 'Cls'); the last ':' splits (Windows drive letters stay)."""
    target, sep, class_name = str(spec).rpartition(":")
    if not sep or not target or not class_name:
        raise StrategySpecError(_unknown_message(spec))
    return target, class_name


def normalize_spec(spec) -> str:
    """The spec with a file path made absolute; a registered name or module spec unchanged.

    A class (not a text) is accepted too: its module's file gives ``file.py:Class``, or
    ``module:Class`` when the module is importable by name (a class defined in ``__main__``
    or a notebook becomes its file's path when it has one).
    """
    if inspect.isclass(spec):
        return _spec_of_class(spec)
    spec = str(spec).strip()
    if is_registered(spec):
        return spec
    target, class_name = split_spec(spec)
    if _looks_like_file(target):
        return f"{Path(target).expanduser().resolve()}:{class_name}"
    return f"{target}:{class_name}"


def load_strategy(spec) -> type:
    """The ``bt.Strategy`` subclass ``spec`` names; raises :class:`StrategySpecError`."""
    if inspect.isclass(spec):
        _require_strategy(spec, spec.__name__, getattr(spec, "__module__", "?"))
        return spec
    spec = str(spec).strip()
    from . import STRATEGIES
    if spec in STRATEGIES:
        return STRATEGIES[spec]
    if spec in _BY_SPEC:
        return _BY_SPEC[spec]
    target, class_name = split_spec(spec)
    if _looks_like_file(target):
        module, where = _import_file(Path(target).expanduser()), Path(target).name
    else:
        module, where = _import_module(target), target
    klass = getattr(module, class_name, None)
    if klass is None:
        found = strategy_classes(module)
        listed = f"its bt.Strategy classes: {', '.join(found)}" if found else \
            "it defines no bt.Strategy class"
        raise StrategySpecError(f"--strategy {spec}: {where} defines no {class_name!r}; {listed}")
    _require_strategy(klass, class_name, where)
    return klass


def describe(spec) -> tuple[str, str | None]:
    """(class name, source file or None) of the strategy ``spec`` names, for reports."""
    klass = load_strategy(spec)
    try:
        source = inspect.getsourcefile(klass) or inspect.getfile(klass)
    except (TypeError, OSError):
        source = None
    return klass.__name__, (str(Path(source).resolve()) if source else None)


def strategy_classes(module) -> list[str]:
    """Names of the ``bt.Strategy`` subclasses a module defines or imports, sorted."""
    return sorted(name for name, value in vars(module).items()
                  if inspect.isclass(value) and issubclass(value, bt.Strategy)
                  and value is not bt.Strategy and not name.startswith("_"))


def param_names(klass) -> list[str]:
    """The names of a strategy class's params, sorted."""
    return sorted(klass.params._getkeys())


def check_params(klass, params: dict) -> None:
    """Raise ``ValueError`` for a param the class does not have (listing those it has).

    The example strategies also range-check values (their ``check_params``).
    """
    if hasattr(klass, "check_params"):
        klass.check_params(**params)
        return
    known = param_names(klass)
    unknown = sorted(set(params) - set(known))
    if unknown:
        has = f"it has {', '.join(known)}" if known else "it has no params"
        raise ValueError(f"{klass.__name__} has no param {unknown[0]!r}; {has}")


def min_bars(klass, params: dict) -> int:
    """Fewest bars the strategy needs (the example strategies know it; others: 1)."""
    if hasattr(klass, "min_bars"):
        return int(klass.min_bars(**params))
    return 1


# -- internals ------------------------------------------------------------------------------
def _looks_like_file(target: str) -> bool:
    return target.endswith(FILE_SUFFIX) or os.sep in target or "/" in target


def _unknown_message(spec) -> str:
    from . import STRATEGIES
    return (f"--strategy {spec}: not a registered strategy ({', '.join(STRATEGIES)}) and not "
            "path/to/file.py:ClassName or package.module:ClassName")


def _require_strategy(klass, class_name: str, where: str) -> None:
    if not (inspect.isclass(klass) and issubclass(klass, bt.Strategy)):
        kind = type(klass).__name__ if not inspect.isclass(klass) else f"class {klass.__name__}"
        raise StrategySpecError(f"{class_name} in {where} is not a backtrader Strategy "
                                f"(a subclass of bt.Strategy); it is a {kind}")


def _module_name_for(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    stem = "".join(char if char.isalnum() else "_" for char in path.stem)
    return f"{_PRIVATE_PREFIX}{stem}_{digest}"


def _import_file(path: Path):
    path = path.resolve()
    if not path.is_file():
        raise StrategySpecError(f"--strategy: no such file {path}")
    name = _module_name_for(path)
    if name in sys.modules:
        return sys.modules[name]
    # The file may import its siblings (as when run directly) and the packages of the
    # project it is run from (the current folder, as with 'python -m').
    for folder in (os.getcwd(), str(path.parent)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module           # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException as error:       # noqa: BLE001 - the user's own error, reported in one line
        del sys.modules[name]
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        raise StrategySpecError(f"--strategy: importing {path.name} failed: "
                                f"{_user_error(error, path)}") from None
    return module


def _import_module(name: str):
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)          # like 'python -m': the current folder's modules first
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and (name == error.name or name.startswith(error.name + ".")):
            raise StrategySpecError(f"--strategy: no module named {name!r} (looked in the "
                                    "current folder and sys.path)") from None
        raise StrategySpecError(f"--strategy: importing {name} failed: "
                                f"{_user_error(error, None)}") from None
    except Exception as error:  # noqa: BLE001 - the user's own error, reported in one line
        raise StrategySpecError(f"--strategy: importing {name} failed: "
                                f"{_user_error(error, None)}") from None


def _user_error(error: BaseException, path: Path | None) -> str:
    """'NameError: name 'x' is not defined (my.py, line 7)': the user's frame, one line."""
    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, SyntaxError) and error.lineno:
        where = Path(error.filename).name if error.filename else (path.name if path else "?")
        return f"SyntaxError: {error.msg} ({where}, line {error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    user = [frame for frame in frames if path is None or Path(frame.filename) == path]
    user = [frame for frame in user if "importlib" not in frame.filename]
    location = f" ({Path(user[-1].filename).name}, line {user[-1].lineno})" if user else ""
    return f"{type(error).__name__}: {message}{location}"


def _spec_of_class(klass) -> str:
    """Spec text of a class; remembered in :data:`_BY_SPEC` so this process (and forked
    workers) use the very same class object, while other workers import it by the text."""
    from . import STRATEGIES
    for name, registered in STRATEGIES.items():
        if registered is klass:
            return name
    _require_strategy(klass, klass.__name__, getattr(klass, "__module__", "?"))
    module_name = klass.__module__
    module = sys.modules.get(module_name)
    source = getattr(module, "__file__", None)
    if _importable(module_name):
        spec = f"{module_name}:{klass.__qualname__}"
    elif source:                        # a script's __main__, or a file loaded by path
        spec = f"{Path(source).resolve()}:{klass.__qualname__}"
    else:                               # a notebook cell: only this process knows it
        spec = f"{module_name}:{klass.__qualname__}"
    _BY_SPEC[spec] = klass
    return spec


def _importable(module_name: str) -> bool:
    if module_name == "__main__" or module_name.startswith(_PRIVATE_PREFIX):
        return False
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


#: classes given as objects (API), by their spec text
_BY_SPEC: dict[str, type] = {}
