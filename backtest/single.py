"""One backtest: price frame(s) + :class:`BacktestConfig` -> one metrics row + per-bar series.

:func:`run_task` is the only function the sweep backends call (process pool and dask):
it never raises, a failure becomes a row whose ``error`` holds the one-line reason.

Per-bar series (numpy arrays, one value per step of the clock: the bars of the frame, or
with several feeds the union of their bar times, see :mod:`backtest.feeds`)
-----------------------------------------------------------------------------------------
====================  ===================================================================
key                   meaning [unit]
====================  ===================================================================
equity                broker value at the bar's close [quote currency]
drawdown              (running peak - equity) / running peak [positive fraction]
margin_ratio          first feed's maintenance margin / position equity at the bar's
                      adverse extreme [fraction; 1.0 = liquidation; NaN when flat]
margin_ratio_by_feed  the same for every feed, shape (feeds, clock steps)
liquidation_time      one entry per liquidation: bar time [int64 ns since epoch, UTC]
liquidation_price     fill price of each liquidation [quote currency]
liquidation_side      +1 long, -1 short, per liquidation
liquidation_feed      index of the liquidated feed (order of the frames), per liquidation
funding               cumulative funding paid up to the bar's close [quote currency, positive
                      = paid; 0 throughout when funding is not modelled]
====================  ===================================================================
The bar times and closes are the frames' own, so they are not repeated here.

Per-event lists (``BacktestResult.events``, JSON-ready dicts; the output folder keeps them
as ``liquidations.csv`` and ``trades.csv``): ``liquidations`` (the ``LiquidationAnalyzer``
events) and ``trades`` (the ``TradeListAnalyzer`` round trips).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import backtrader as bt
import numpy as np
import pandas as pd

from ..broker import MarginBroker
from ..data import ArrayFeed, funding_series_from_attrs, mark_frame_from_columns
from ..analyzers import (FundingAnalyzer, LiquidationAnalyzer, MarginAnalyzer,
                         NegativeBalanceAnalyzer, RefusalAnalyzer, RiskAnalyzer,
                         TradeListAnalyzer)
from ..strategies.spec import load_strategy, min_bars

from .config import BacktestConfig
from .exposure import add_exposure
from .feeds import as_frames, clock, feed_names
from .metrics import error_row, metrics_row

ANALYZERS = {"liquidation": LiquidationAnalyzer, "margin": MarginAnalyzer,
             "negative_balance": NegativeBalanceAnalyzer, "risk": RiskAnalyzer,
             "refusal": RefusalAnalyzer, "trades": TradeListAnalyzer,
             "funding": FundingAnalyzer}


@dataclass
class BacktestResult:
    """What one setting produced: a metrics row (always), its series and event lists
    (``{"liquidations": [...], "trades": [...]}``; both empty on error)."""

    row: dict
    series: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.row.get("error") is None


def make_feed(frame: pd.DataFrame):
    """The fast numpy-backed feed of the data package for a validated OHLCV frame."""
    return ArrayFeed(dataname=frame)


def make_broker(config: BacktestConfig):
    """A ``MarginBroker`` set up from ``config`` (fees set the backtrader way).

    The per-feed ``feed_leverage`` overrides are set by :func:`run_backtest` once the feeds
    exist (``set_leverage`` takes the feed).
    """
    broker = MarginBroker(
        cash=config.cash,
        leverage=config.leverage,
        maintenance_margin_rate=config.maintenance_margin_rate,
        tiers=config.tiers,
        liquidation_fee_rate=config.liquidation_fee_rate,
        negative_balance=config.negative_balance,
        lot_size=config.lot_size,
        margin_mode=config.margin_mode,
    )
    broker.setcommission(commission=config.commission)
    return broker


def apply_feed_tiers(broker, feeds, config: BacktestConfig) -> None:
    """``broker.set_tiers`` for each (feed name, table) of ``config.feed_tiers``.

    ``feeds``: the cerebro feeds; a name that matches none is a ValueError listing them.
    """
    by_name = {getattr(feed, "_name", None) or "": feed for feed in feeds}
    for name, tiers in config.feed_tiers:
        if name not in by_name:
            raise ValueError(f"feed tiers for {name!r}: no such feed (feeds: "
                             f"{', '.join(sorted(n for n in by_name if n)) or 'unnamed'})")
        broker.set_tiers(by_name[name], tiers)


def apply_perpetual_data(broker, data, frame: pd.DataFrame, config: BacktestConfig) -> None:
    """Funding and mark price of ``data``: ``config.funding_rate``, else the frame's own.

    The frame carries them when made with ``data.with_perpetual_data`` (mark columns,
    ``attrs['funding']``).
    """
    if config.funding_rate is not None:
        broker.set_funding_rates(data, config.funding_rate)
    else:
        series = funding_series_from_attrs(frame.attrs)
        if series is not None:
            broker.set_funding_rates(data, series)
    mark = mark_frame_from_columns(frame)
    if mark is not None:
        broker.set_mark_price(data, mark)


def run_backtest(frames, config: BacktestConfig) -> BacktestResult:
    """Run ``config.strategy`` on the frame(s) with a margin broker; raise on any failure.

    ``frames`` is one validated OHLCV frame or a list of them: one feed each, named by
    :func:`backtest.feeds.feed_names`, in that order.
    """
    config.validate()
    frames = as_frames(frames)
    names = feed_names(frames)
    unknown = sorted(set(dict(config.feed_leverage)) - set(names))
    if unknown:
        raise ValueError(f"feed_leverage names an unknown feed {unknown[0]!r}; the feeds are "
                         f"{', '.join(names)}")
    strategy_class = load_strategy(config.strategy)
    params = dict(config.strategy_params)
    bars = len(clock(frames))
    needed = min_bars(strategy_class, params)
    shortest = min(len(frame) for frame in frames)
    if shortest < needed:
        raise ValueError(f"{strategy_class.__name__} needs at least {needed} bars with these "
                         f"params; the data has {shortest}")
    started = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False)
    for frame, name in zip(frames, names):
        cerebro.adddata(make_feed(frame), name=name)
    broker = make_broker(config)
    for data, name in zip(cerebro.datas, names):
        if name in dict(config.feed_leverage):
            broker.set_leverage(data, config.leverage_of(name))
    cerebro.broker = broker
    apply_feed_tiers(broker, cerebro.datas, config)
    for data, frame in zip(cerebro.datas, frames):
        apply_perpetual_data(broker, data, frame, config)
    counted = add_exposure(cerebro, strategy_class, config.exposure, config.percents)
    cerebro.addstrategy(counted, **params)
    for name, analyzer in ANALYZERS.items():
        cerebro.addanalyzer(analyzer, _name=name)
    strategy = cerebro.run()[0]
    analyzers = {name: strategy.analyzers.getbyname(name) for name in ANALYZERS}
    analyses = {name: analyzer.get_analysis() for name, analyzer in analyzers.items()}
    orders = {"sized_orders": strategy.sized_orders, "explicit_orders": strategy.explicit_orders}
    row = metrics_row(config, frames, cerebro.broker.getvalue(), analyses,
                      seconds=time.perf_counter() - started, orders=orders)
    events = {"liquidations": analyses["liquidation"]["events"],
              "trades": analyses["trades"]["trades"]}
    series = _series(analyzers, bars, names)
    series["funding"] = cumulative_funding(analyzers["funding"].series(), clock(frames))
    return BacktestResult(row=row, series=series, events=events)


def run_task(frames, config: BacktestConfig) -> BacktestResult:
    """:func:`run_backtest` that never raises: errors become the row's ``error`` field."""
    try:
        return run_backtest(frames, config)
    except Exception as error:  # noqa: BLE001 - one failing setting must not sink a sweep
        message = " ".join(str(error).split()) or type(error).__name__
        return BacktestResult(row=error_row(config, frames, f"{type(error).__name__}: {message}"))


def cumulative_funding(payments: dict, index: pd.DatetimeIndex) -> np.ndarray:
    """Funding paid up to each bar's close (quote, positive = paid), from the payments.

    A payment at time t belongs to the last bar starting at or before t.
    """
    bar_times = index.tz_convert("UTC").tz_localize(None).as_unit("ms").asi8 \
        if index.tz is not None else index.as_unit("ms").asi8
    times = np.asarray(payments["time"], dtype="datetime64[ms]").astype(np.int64)
    bars = np.clip(np.searchsorted(bar_times, times, side="right") - 1, 0, max(len(index) - 1, 0))
    per_bar = np.bincount(bars, weights=-np.asarray(payments["amount"], dtype=np.float64),
                          minlength=len(index)) if len(index) else np.empty(0)
    return np.cumsum(per_bar)


def _series(analyzers: dict, bars: int, names: list) -> dict:
    """The per-bar and per-liquidation arrays of the module docstring, from the analyzers."""
    risk = analyzers["risk"].series()
    margin_ratios = analyzers["margin"].series()["margin_ratio"]
    liquidations = analyzers["liquidation"].series()
    equity = np.asarray(risk["equity"], dtype=np.float64)
    if len(equity) != bars:
        raise RuntimeError(f"analyzers saw {len(equity)} bars, the data has {bars}")
    by_feed = np.vstack([np.asarray(margin_ratios.get(name, np.full(bars, np.nan)),
                                    dtype=np.float64) for name in names])
    feed_index = {name: number for number, name in enumerate(names)}
    return {
        "equity": equity,
        "drawdown": np.asarray(risk["drawdown"], dtype=np.float64),
        "margin_ratio": by_feed[0],
        "margin_ratio_by_feed": by_feed,
        "liquidation_time": np.asarray(liquidations["time"], dtype="datetime64[ns]")
                              .astype(np.int64),
        "liquidation_price": np.asarray(liquidations["fill_price"], dtype=np.float64),
        "liquidation_side": np.asarray(liquidations["side"]).astype(np.int8),
        "liquidation_feed": np.array([feed_index.get(str(name), -1)
                                      for name in liquidations["data"]], dtype=np.int16),
    }
