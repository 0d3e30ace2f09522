"""The Python API: sweep leverages over any backtrader strategy from a notebook or a script.

    >>> import backtrader_leverage as btl
    >>> result = btl.sweep(MyCross, "btcusdt_1h.csv", [1, 5, 20])
    >>> result.metrics[["leverage", "final_value", "liquidations"]]
    >>> result.write("out/mine")          # the same output folder as the command line

Same engine, backends and defaults as ``backtrader-leverage sweep``: the settings are built
by :func:`backtest.config.build_configs` over :data:`backtest.config.DEFAULTS`, so the same
inputs give the same numbers (the metrics rows are identical, timing aside).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class SweepResult:
    """What :func:`sweep` returns.

    Attributes
    ----------
    metrics : pandas.DataFrame
        One row per setting (leverage, then margin mode), the columns of ``metrics.csv``
        (:data:`backtest.metrics.ROW_KEYS`) in that order.
    results : list of BacktestResult
        Per setting: ``row`` (the metrics dict), ``series`` (per-bar arrays: equity,
        drawdown, margin ratio per feed, liquidation markers, funding) and ``events``
        (liquidations and trades).
    configs : list of BacktestConfig
        The settings that ran.
    frames : list of pandas.DataFrame
        The feeds, in order (each named by ``attrs['symbol']``).
    """

    results: list
    configs: list
    frames: list
    workers: int | None = None
    scheduler: object = None
    metrics: pd.DataFrame = field(init=False)

    def __post_init__(self):
        from .backtest.metrics import ROW_KEYS
        self.metrics = pd.DataFrame([result.row for result in self.results],
                                    columns=list(ROW_KEYS))

    @property
    def rows(self) -> list:
        """The metrics rows as dicts (what ``metrics.json`` holds)."""
        return [result.row for result in self.results]

    def margin_modes(self) -> pd.DataFrame:
        """Isolated vs cross per leverage, for a sweep run with ``margin_mode=["isolated", "cross"]``.

        One row per leverage (:func:`backtest.compare.mode_comparison`): ``leverage``;
        ``isolated_<x>`` and ``cross_<x>`` for x in final_value, max_drawdown,
        liquidations, liquidation_loss (quote currency; drawdown a positive fraction);
        ``better`` ('isolated', 'cross', or missing when both ended the same or a run
        failed), ``difference`` (how much less the
        better mode lost, quote) and ``sentence``. Empty when only one mode ran.
        """
        from .backtest.compare import COMPARED, MODES, mode_comparison
        columns = ["leverage"] + [f"{mode}_{key}" for mode in MODES for key in COMPARED] + [
            "better", "difference", "sentence"]
        records = []
        for entry in mode_comparison(self.rows):
            record = {"leverage": entry["leverage"], "better": entry["better"],
                      "difference": entry["difference"], "sentence": entry["sentence"]}
            for mode in MODES:
                record.update({f"{mode}_{key}": entry[mode][key] for key in COMPARED})
            records.append(record)
        return pd.DataFrame(records, columns=columns)

    def write(self, folder, *, refine: bool = True, static: bool = False) -> dict:
        """Write the output folder (report.html, metrics.json/.csv, series.npz, summary.json,
        liquidations.csv, trades.csv), exactly as the command line does.

        ``refine`` bisects the safe leverage with extra runs (the CLI's default; ``--no-refine``
        is ``refine=False``); ``static`` draws PNG charts instead of plotly. Returns
        ``{file name: Path}``.
        """
        from .backtest import event_records, series_bundle, write_outputs
        from .cli import _safe_leverage
        from .report import render_report

        rows = self.rows
        bundle = series_bundle(self.frames, self.results)
        summary = _safe_leverage(self.frames, self.configs, rows, refine=refine,
                                 workers=self.workers, scheduler=self.scheduler)
        liquidations, trades = event_records(rows, self.results)
        html = render_report(rows, bundle, summary, liquidations, trades, static=static)
        return write_outputs(folder, rows, bundle, html, summary=summary,
                             liquidations=liquidations, trades=trades)


def sweep(strategy, data, leverages, *, strategy_params=None, feed_leverage=None,
          workers=None, scheduler=None, progress=None, start=None, end=None,
          **options) -> SweepResult:
    """Run ``strategy`` on ``data`` at every leverage; one row per setting.

    Parameters
    ----------
    strategy : bt.Strategy subclass or str
        A class, a registered name (``"sma_cross"``), ``"path/to/file.py:ClassName"`` or
        ``"package.module:ClassName"``. Worker processes import it again by that text, so a
        class must live in a file or an importable module (a class typed into a notebook
        runs with ``workers=1``, or in forked workers on Linux).
    data : DataFrame, str, Path, or a list / dict of them
        OHLCV frames (as ``load_csv`` / ``load_ohlcv`` return; a plain frame with
        open/high/low/close/volume columns and a DatetimeIndex works too) or CSV paths. A
        list gives several feeds in that order, named by each frame's ``attrs['symbol']``
        (a CSV's file stem); a dict names them by its keys.
    leverages : iterable of float
        Leverage of every feed, one setting each (``feed_leverage`` overrides some feeds).
    strategy_params : dict, optional
        The strategy's params (like ``--param``); unknown names raise ``ValueError``
        listing the valid ones.
    feed_leverage : dict, optional
        ``{feed name: leverage}`` (like ``--feed-leverage``).
    workers, scheduler, progress
        As :func:`backtest.sweep`: process pool of ``workers`` (default: cores; 1 = this
        process) or a dask scheduler address / Client; progress bar.
    start, end : str or Timestamp, optional
        [start, end) range in UTC applied to every feed (like ``--start`` / ``--end``).
    **options
        Any other field of :class:`backtest.config.BacktestConfig`, with the command line's
        defaults: ``cash=10000``, ``commission=0.0004``, ``maintenance_margin_rate=0.005``,
        ``tiers=None``, ``liquidation_fee_rate=None``, ``negative_balance='absorb'``,
        ``lot_size=0.001``, ``exposure='scaled'``, ``percents=90``, ``margin_mode='isolated'``,
        ``funding_rate=None``, ... ``margin_mode`` may name both modes
        (``["isolated", "cross"]`` or ``"isolated,cross"``, like ``--margin-mode``): every
        leverage then runs in each (rows leverage first, then mode) and
        :meth:`SweepResult.margin_modes` compares them. ``feed_tiers`` is
        ``{feed name: tier table}`` (like ``--feed-tiers``).

    Raises ``ValueError`` / ``TypeError`` (bad strategy, param, option or feed name) and
    ``DataError`` (unreadable data) before anything runs.
    """
    from .backtest import sweep as run_sweep
    from .backtest.config import build_configs
    from .backtest.feeds import feed_names

    frames = _frames(data, start, end)
    names = feed_names(frames)
    modes = _margin_modes(options.pop("margin_mode", None))
    configs = [config for leverage in leverages for mode in modes
               for config in build_configs(strategy, [leverage], strategy_params=strategy_params,
                                           feed_leverage=feed_leverage, margin_mode=mode,
                                           **dict(options))]
    if not configs:
        raise ValueError("no leverage given: pass e.g. [1, 5, 20]")
    for option, pairs in (("feed_leverage", configs[0].feed_leverage),
                          ("feed_tiers", configs[0].feed_tiers)):
        unknown = sorted(set(dict(pairs)) - set(names))
        if unknown:
            raise ValueError(f"{option}: no feed named {unknown[0]!r}; the feeds are "
                             f"{', '.join(names)}")
    results = run_sweep(frames, configs, workers=workers, scheduler=scheduler,
                        progress=progress)
    return SweepResult(results=results, configs=configs, frames=frames, workers=workers,
                       scheduler=scheduler)


def _margin_modes(value) -> list:
    """``margin_mode`` as a list of modes: None -> the default, 'a,b' or ['a', 'b'] -> both."""
    from .backtest.config import DEFAULTS, MARGIN_MODES
    if value is None:
        return [DEFAULTS.margin_mode]
    modes = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value)
    bad = [mode for mode in modes if mode not in MARGIN_MODES]
    if bad or not modes or len(set(modes)) != len(modes):
        raise ValueError(f"margin_mode must be one of {MARGIN_MODES} or a list of them, each "
                         f"once; got {value!r}")
    return modes


def _frames(data, start, end) -> list:
    """The feeds of ``data`` as validated, named frames (see :func:`sweep`)."""
    from .backtest.feeds import named

    if isinstance(data, dict):
        items = [(str(name), value) for name, value in data.items()]
    elif isinstance(data, (pd.DataFrame, str, Path)):
        items = [(None, data)]
    else:
        items = [(None, value) for value in data]
    if not items:
        raise ValueError("no price data: give a frame, a CSV path, or a list of them")
    frames = []
    for name, value in items:
        frame = _frame(value, start, end)
        frames.append(named(frame, name) if name else frame)
    return frames


def _frame(value, start, end) -> pd.DataFrame:
    from .data import load_csv, select_range
    from .data.frames import finalize_frame

    if isinstance(value, (str, Path)):
        frame = load_csv(value)
    elif isinstance(value, pd.DataFrame):
        frame = value if value.attrs.get("source") else finalize_frame(
            value, symbol=value.attrs.get("symbol"), source="frame", label="frame")
    else:
        raise TypeError(f"price data must be a DataFrame or a CSV path, got "
                        f"{type(value).__name__}")
    if start is not None or end is not None:
        frame = select_range(frame, _utc(start), _utc(end))
    return frame


def _utc(value):
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
