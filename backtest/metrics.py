"""The metrics row: one flat, JSON-ready dict per setting, always with the same keys.

``metrics.json`` is a list of these rows and ``metrics.csv`` has the same rows, columns in
:data:`ROW_KEYS` order. A failed setting has the same keys, ``None`` for every result, and
``error`` set to a one-line reason; a successful one has ``error`` = ``None``.

=========================  ============================================================
key                        meaning [unit]
=========================  ============================================================
strategy                   strategy spec: registry name, /abs/path/file.py:Class or module:Class
strategy_class             name of the strategy class
strategy_file              source file of the strategy class (absolute path), None if unknown
leverage                   leverage of every feed without a feed_leverage override [x]
cash                       starting wallet [quote currency]
final_value                broker value after the last bar [quote currency]
total_return               final_value / cash - 1 [fraction; below -1 = ended in debt]
cagr                       compound annual growth, 365-day year [fraction]
max_drawdown               deepest fall from a running peak [positive fraction, 1 = ruin]
volatility                 annualised stdev of bar returns [fraction]
sharpe, sortino, calmar    risk-adjusted ratios (risk-free rate 0) [dimensionless]
var_95, cvar_95            historical daily VaR / CVaR at 95 % [return, negative = loss]
<ratio>_reason             why ``cagr``, ``sharpe``, ``sortino``, ``calmar``, ``var_95`` or
                           ``cvar_95`` is None (see :func:`undefined_reasons`), else None
ruined                     equity fell below the ruin threshold [bool]
liquidations               number of liquidations [count]
margin_lost                margin lost to liquidations (cross: wallet lost) [quote currency]
liquidation_fees           clearance fees paid on liquidations [quote currency]
deficit                    losses beyond bankruptcy price, absorbed or carried [quote]
absorbed_deficit           part of ``deficit`` paid by the insurance fund [quote currency]
worst_balance              min(0, lowest wallet balance) [quote currency]
time_to_first_liquidation  first liquidated position's life, open -> liquidation [s]
first_liquidation_dt       bar time of the first liquidation [ISO-8601 UTC]
worst_margin_ratio         highest maintenance margin / position equity [fraction]
closest_distance           smallest distance to the liquidation price [fraction]
margin_calls               margin-ratio warning levels crossed upward [count]
funding_paid               net perpetual funding paid [quote currency; positive = paid,
                           negative = received; 0 when funding is not modelled]
funding_payments           funding payments made or received [count]
entries_refused            entries the sizer refused because the stop lay at or beyond the
                           liquidation price (``sizer=risk``) [count]
orders_rejected            orders the broker refused (balance, tier, below the lot) [count]
rejections                 those refusals by reason, as JSON text ('{"tier": 3}')
trades                     positions opened, flat to flat, incl. one still open [count]
all_orders_rejected        orders were placed and every one was refused, or the sizer refused
                           every entry (``entries_refused``) [bool]: the setting never
                           traded, so it is left out of the "best" choices
liquidations_by_feed       liquidations per feed, JSON text {"feed name": count} (every feed)
sized_orders               opening orders sized by LeverageSizer (no size given) [count]
explicit_orders            opening orders with the strategy's own size [count]
commission                 taker fee [fraction of notional]
maintenance_margin_rate    [fraction of notional] (flat rate; unused with ``tiers``)
tiers                      tier table name or path, None = flat maintenance margin rate
liquidation_fee_rate       [fraction of notional], None = exchange style
negative_balance           'absorb' or 'carry'
margin_mode                'isolated' or 'cross'
feed_tiers                 per-feed tier tables {feed: table} as JSON text ('{}' = none)
funding                    which funding was charged: 'funding not modelled', a constant
                           rate ('0.0001 per 8 h') or the funding series' source
trigger_price              what liquidation triggers on: 'trade price' or 'mark price (<source>)'
strategy_params            strategy params overriding the defaults, as JSON text
feed_leverage              per-feed leverage overrides, JSON text {"feed name": leverage}
exposure                   'scaled' or 'as_is' (see backtest.exposure)
percents                   LeverageSizer margin per order [percent of equity]
strategy_scales_sizes      the strategy sizes by fraction x equity x leverage itself [bool]
symbol, source, synthetic  data identity (source: csv, yfinance, cache or synthetic); with
                           several feeds: the feed names joined by ',' (in order), the
                           distinct sources joined by ',', synthetic if any feed is
interval                   bar length label ('1h', '1d'); distinct labels joined by ','
data_start, data_end       first and last bar of any feed [ISO-8601 UTC]
bars                       steps of the clock: bars, or the union of the feeds' bar times
seconds                    wall time of the backtest [s]
error                      None, or the one-line reason the setting failed
=========================  ============================================================
"""
from __future__ import annotations

import json
import math

import pandas as pd

from .config import BacktestConfig
from .feeds import as_frames, clock, feed_names

RESULT_KEYS = (
    "final_value", "total_return", "cagr", "cagr_reason", "max_drawdown", "volatility",
    "sharpe", "sharpe_reason", "sortino", "sortino_reason", "calmar", "calmar_reason",
    "var_95", "var_95_reason", "cvar_95", "cvar_95_reason", "ruined", "liquidations",
    "margin_lost", "liquidation_fees", "deficit", "absorbed_deficit", "worst_balance",
    "time_to_first_liquidation", "first_liquidation_dt", "worst_margin_ratio",
    "closest_distance", "margin_calls", "orders_rejected", "rejections", "trades",
    "all_orders_rejected", "entries_refused", "funding_paid", "funding_payments",
    "liquidations_by_feed", "sized_orders", "explicit_orders",
)
#: ratios that can be undefined, each with a ``<key>_reason`` beside it in the row
REASONED_KEYS = ("cagr", "sharpe", "sortino", "calmar", "var_95", "cvar_95")
#: shortest window [days] for which an annualised figure (CAGR, Calmar) is shown
MIN_ANNUALISED_DAYS = 30
#: fewest daily returns for Sharpe, Sortino, VaR and CVaR
MIN_DAILY_RETURNS = 30
REASON_RUINED = "ruined"
REASON_SHORT_WINDOW = f"window shorter than {MIN_ANNUALISED_DAYS} days"
REASON_FEW_RETURNS = f"fewer than {MIN_DAILY_RETURNS} daily returns"
SETTING_KEYS = ("commission", "maintenance_margin_rate", "tiers", "liquidation_fee_rate",
                "negative_balance", "strategy_params", "margin_mode", "feed_tiers",
                "funding", "trigger_price", "feed_leverage", "exposure", "percents",
                "strategy_scales_sizes")
IDENTITY_KEYS = ("symbol", "source", "synthetic", "interval", "data_start", "data_end", "bars")
ROW_KEYS = ("strategy", "strategy_class", "strategy_file", "leverage", "cash") + RESULT_KEYS + \
    SETTING_KEYS + IDENTITY_KEYS + ("seconds", "error")


def undefined_reasons(risk: dict) -> dict:
    """``{ratio key: reason or None}``: which ratios a row must show as n/a, and why.

    ``risk`` is a ``RiskAnalyzer`` analysis. In order of precedence:

    - ``ruined`` (equity fell below the ruin threshold): Sharpe, Sortino, Calmar, VaR and
      CVaR describe a curve that stopped meaning anything (a 50x buy-and-hold that lost
      91.8 % is flat after its liquidation: Sharpe +0.86, VaR 0.0). CAGR stays: it is
      the return.
    - a window shorter than :data:`MIN_ANNUALISED_DAYS` days: CAGR and Calmar (a month's
      return compounded twelve times is not a forecast: 21,113,784 %);
    - fewer than :data:`MIN_DAILY_RETURNS` daily returns: Sharpe, Sortino, VaR, CVaR;
    - else a reason only where the analyzer gave None (no variation, no drawdown, ...).
    """
    years = risk.get("years")
    # the window runs from the first bar to the last one: a [Nov 1, Dec 1) month of hourly
    # bars spans 29.96 days, so its CAGR (21,113,784 % in the issue) is n/a
    interval_days = (risk.get("bar_interval") or 0.0) / 86_400.0
    days = years * 365.0 - interval_days if years is not None else None
    daily = risk.get("daily_returns")
    if daily is None and days is not None:
        daily = int(days)
    reasons = dict.fromkeys(REASONED_KEYS)
    for key in REASONED_KEYS:
        if risk.get("ruined") and key != "cagr":
            reasons[key] = REASON_RUINED
        elif key in ("cagr", "calmar") and (days is None or days < MIN_ANNUALISED_DAYS):
            reasons[key] = REASON_SHORT_WINDOW
        elif key not in ("cagr", "calmar") and (daily is None or daily < MIN_DAILY_RETURNS):
            reasons[key] = REASON_FEW_RETURNS
        elif risk.get(key) is None or not math.isfinite(risk.get(key)):
            reasons[key] = _UNDEFINED.get(key, "undefined")
    return reasons


_UNDEFINED = {"sharpe": "flat returns", "sortino": "no losses", "calmar": "no drawdown",
              "cagr": "undefined"}


def metrics_row(config: BacktestConfig, frame, final_value: float,
                analyses: dict, seconds: float, orders: dict | None = None) -> dict:
    """Row of a finished run from the analyzers' ``get_analysis()`` dicts.

    ``frame`` is the frame or the list of frames of the run. ``analyses`` maps
    ``liquidation``, ``margin``, ``negative_balance``, ``risk`` and ``trades`` to the
    analyses of ``LiquidationAnalyzer``, ``MarginAnalyzer``, ``NegativeBalanceAnalyzer``,
    ``RiskAnalyzer`` and ``TradeListAnalyzer``, and optionally ``refusal`` to that of
    ``RefusalAnalyzer`` (no refusals when absent); ``orders`` holds ``sized_orders`` and
    ``explicit_orders``.
    """
    liquidation = analyses["liquidation"]
    margin = analyses["margin"]
    negative = analyses["negative_balance"]
    risk = analyses["risk"]
    trades = analyses.get("trades") or {}
    reasons = undefined_reasons(risk)
    events = list(liquidation.get("events") or [])
    first = events[0] if events else {}
    entries_refused = int((analyses.get("refusal") or {}).get("by_reason", {})
                          .get("stop_beyond_liquidation", 0))
    row = _base_row(config, frame)
    row.update({
        "final_value": float(final_value),
        "total_return": risk.get("total_return"),
        "cagr": risk.get("cagr"),
        "max_drawdown": risk.get("max_drawdown"),
        "volatility": risk.get("volatility"),
        "sharpe": risk.get("sharpe"),
        "sortino": risk.get("sortino"),
        "calmar": risk.get("calmar"),
        "var_95": risk.get("var_95"),
        "cvar_95": risk.get("cvar_95"),
        "ruined": risk.get("ruined"),
        "liquidations": int(liquidation.get("count", len(events))),
        "margin_lost": liquidation.get("margin_lost"),
        "liquidation_fees": liquidation.get("fees"),
        "deficit": liquidation.get("deficit"),
        "absorbed_deficit": negative.get("absorbed_deficit"),
        "worst_balance": negative.get("worst_balance"),
        "time_to_first_liquidation": first.get("time_to_liquidation"),
        "first_liquidation_dt": _iso(first.get("dt")),
        "worst_margin_ratio": margin.get("worst_margin_ratio"),
        "closest_distance": margin.get("closest_distance"),
        "margin_calls": len(margin.get("margin_calls") or []),
        "entries_refused": entries_refused,
        "orders_rejected": int(trades.get("orders_rejected") or 0),
        "funding_paid": (analyses.get("funding") or {}).get("net_paid", 0.0),
        "funding_payments": int((analyses.get("funding") or {}).get("payments", 0)),
        "rejections": json.dumps(trades.get("rejections") or {}, sort_keys=True),
        "trades": int(trades.get("count") or 0),
        "all_orders_rejected": bool(trades.get("orders_rejected") or entries_refused)
                               and not trades.get("fills"),
        "liquidations_by_feed": _by_feed_text(frame, liquidation.get("by_data") or {}),
        "seconds": round(float(seconds), 3),
    })
    row.update(orders or {})
    for key, reason in reasons.items():
        row[f"{key}_reason"] = reason
        if reason is not None:
            row[key] = None
    return _json_ready(row)


def error_row(config: BacktestConfig, frame, message: str) -> dict:
    """Row of a failed setting: every result None, ``error`` = ``message`` (one line)."""
    row = _base_row(config, frame)
    row["error"] = " ".join(str(message).split())
    return _json_ready(row)


def _base_row(config: BacktestConfig, frame) -> dict:
    row = dict.fromkeys(ROW_KEYS)
    row.update(_strategy_identity(config.strategy))
    row.update({
        "strategy": config.strategy,
        "leverage": float(config.leverage),
        "cash": float(config.cash),
        "commission": config.commission,
        "maintenance_margin_rate": config.maintenance_margin_rate,
        "tiers": config.tiers,
        "liquidation_fee_rate": config.liquidation_fee_rate,
        "negative_balance": config.negative_balance,
        "strategy_params": json.dumps(dict(config.strategy_params), sort_keys=True,
                                      default=repr),
        "feed_leverage": json.dumps(dict(config.feed_leverage)),
        "exposure": config.exposure,
        "percents": float(config.percents),
        "margin_mode": config.margin_mode,
        "feed_tiers": json.dumps(dict(config.feed_tiers), sort_keys=True),
    })
    row.update(perpetual_settings(config, frame))
    row.update(data_identity(frame))
    return row


FUNDING_OFF = "funding not modelled"


def perpetual_settings(config: BacktestConfig, frame) -> dict:
    """``funding`` and ``trigger_price`` of a setting, as the report's settings block says them.

    With several feeds that differ: 'NAME: …; NAME: …' per feed.
    """
    if frame is None:
        return {"funding": _funding_text(config, None), "trigger_price": "trade price"}
    frames = as_frames(frame)
    names = [str(one.attrs.get("symbol") or f"data{index}") for index, one in enumerate(frames)]
    out = {}
    for key, describe in (("funding", _funding_text), ("trigger_price", _trigger_text)):
        texts = [describe(config, one) for one in frames]
        out[key] = texts[0] if len(set(texts)) == 1 else \
            "; ".join(f"{name}: {text}" for name, text in zip(names, texts))
    return out


def _funding_text(config: BacktestConfig, frame) -> str:
    if config.funding_rate is not None:
        return f"{config.funding_rate:g} per {config.funding_interval_hours:g} h (constant)"
    stored = frame.attrs.get("funding") if frame is not None else None
    if not stored:
        return FUNDING_OFF
    if not len(frame):
        return stored["label"]
    first, last = (int(stamp.value // 10**9) for stamp in (frame.index[0], frame.index[-1]))
    inside = sum(1 for time in stored["times"] if first <= time <= last)
    return f"{stored['label']} ({inside} settlements in the data's range)"


def _trigger_text(config: BacktestConfig, frame) -> str:
    if frame.attrs.get("mark_label") and "mark_close" in frame.columns:
        return f"mark price ({frame.attrs['mark_label']})"
    return "trade price"


def _strategy_identity(spec) -> dict:
    """strategy_class, strategy_file and strategy_scales_sizes of a spec (None if unloadable)."""
    from ..strategies.spec import StrategySpecError, describe, load_strategy
    from .exposure import strategy_scales_itself
    try:
        class_name, source = describe(spec)
        scales = strategy_scales_itself(load_strategy(spec))
    except StrategySpecError:
        return {}
    return {"strategy_class": class_name, "strategy_file": source,
            "strategy_scales_sizes": scales}


def _by_feed_text(frame, counts: dict) -> str:
    """JSON text {feed: liquidations} with every feed of the run, in feed order."""
    names = feed_names(frame) if frame is not None else sorted(counts)
    return json.dumps({name: int(counts.get(name, 0)) for name in names})


def _distinct(values) -> str | None:
    seen = [str(value) for value in dict.fromkeys(values) if value is not None]
    return ",".join(seen) if seen else None


def data_identity(frame) -> dict:
    """symbol, source, synthetic, interval, data_start, data_end, bars of the loaded frame(s).

    Several frames: the feed names joined by ',', the distinct sources and intervals
    joined by ',', synthetic if any is, the earliest start, the latest end and the number
    of clock steps (the union of their bar times).
    """
    if frame is None:
        return dict.fromkeys(IDENTITY_KEYS)
    frames = [one for one in as_frames(frame)]
    if all(len(one) == 0 for one in frames):
        return dict.fromkeys(IDENTITY_KEYS)
    if len(frames) == 1:
        only = frames[0]
        attrs = only.attrs
        return {
            "symbol": attrs.get("symbol"),
            "source": attrs.get("source"),
            "synthetic": bool(attrs.get("synthetic", False)),
            "interval": attrs.get("interval"),
            "data_start": _iso(only.index[0]),
            "data_end": _iso(only.index[-1]),
            "bars": int(len(only)),
        }
    filled = [one for one in frames if len(one)]
    return {
        "symbol": ",".join(feed_names(frames)),
        "source": _distinct(one.attrs.get("source") for one in frames),
        "synthetic": any(bool(one.attrs.get("synthetic", False)) for one in frames),
        "interval": _distinct(one.attrs.get("interval") for one in frames),
        "data_start": _iso(min(one.index[0] for one in filled)),
        "data_end": _iso(max(one.index[-1] for one in filled)),
        "bars": int(len(clock(frames))),
    }


def _iso(value) -> str | None:
    """ISO-8601 UTC text of a timestamp-like value (naive values are taken as UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.isoformat()


def _json_ready(row: dict) -> dict:
    """Plain Python scalars; NaN and infinities become None (JSON has no NaN)."""
    out = {}
    for key in ROW_KEYS:
        value = row.get(key)
        if hasattr(value, "item"):          # numpy scalar
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out
