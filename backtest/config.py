"""One backtest setting: everything that varies between the rows of a sweep.

:class:`BacktestConfig` is also the one home of the defaults: the command line
(:mod:`backtrader_leverage.cli`) and the Python API (:func:`backtrader_leverage.sweep`) both
read their defaults from it, so the same inputs give the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

NEGATIVE_BALANCE_POLICIES = ("absorb", "carry")
MARGIN_MODES = ("isolated", "cross")
EXPOSURE_MODES = ("scaled", "as_is")


@dataclass(frozen=True)
class BacktestConfig:
    """Inputs of one backtest besides the price data.

    Attributes
    ----------
    strategy : str
        Strategy spec: a registry name (``sma_cross``, ``rsi_reversion``,
        ``donchian_breakout``, ``buy_hold``), ``path/to/file.py:ClassName`` or
        ``package.module:ClassName`` (see :mod:`strategies.spec`). A text, not a class, so
        worker processes and dask workers re-import the class themselves.
    leverage : float
        Leverage of every feed (notional / initial margin), > 0. 5.0 means 5x.
    feed_leverage : tuple of (feed name, leverage)
        Per-feed overrides of ``leverage`` (the broker's ``set_leverage``).
    cash : float
        Starting wallet [quote currency], > 0.
    commission : float
        Taker fee as a fraction of notional (0.0004 = 0.04 %).
    maintenance_margin_rate : float
        Flat maintenance margin rate as a fraction of notional (0.005 = 0.5 %); ignored
        when ``tiers`` is given.
    tiers : str or None
        Tier table for ``MarginBroker``: a name in ``broker/tiers`` (e.g.
        ``binance_btcusdt_perp``) or a JSON/CSV path; None = the flat rate above.
    liquidation_fee_rate : float or None
        Clearance fee as a fraction of notional at the fill; None = exchange style
        (the whole remaining isolated margin goes to the insurance fund).
    negative_balance : str
        'absorb' (the insurance fund pays deficits) or 'carry' (the wallet goes negative).
    lot_size : float
        Order size grid [base units]; sizes are floored to it.
    strategy_params : tuple of (name, value)
        Strategy params overriding the defaults (a tuple so the config stays hashable).
    margin_mode : str
        'isolated' (margin locked per position) or 'cross' (the wallet backs every
        position; the whole account is liquidated at once).
    feed_tiers : tuple of (feed name, tier table)
        Per-feed tier tables (``MarginBroker.set_tiers``) overriding ``tiers`` for those
        feeds; the names are the feeds' names (their symbols).
    funding_rate : float or None
        A constant funding rate per interval (0.0001 = 0.01 %, longs pay when positive);
        None = the frame's own funding series (``data.with_perpetual_data``) if it has
        one, else funding is not modelled.
    funding_interval_hours : float
        Hours between funding times (00:00, 08:00, 16:00 UTC for 8) for ``funding_rate``.
    exposure : str
        ``'scaled'``: orders placed without a size are sized by
        :class:`sizers.LeverageSizer`, notional = ``percents`` % x equity x leverage, so
        leverage scales the exposure; the example strategies size themselves the same way
        (fraction x equity x leverage). ``'as_is'``: the strategy's own sizes
        (backtrader's default sizer, 1 unit, for orders without a size; the example
        strategies take notional = fraction x equity), so leverage changes only the margin
        and the liquidation distance.
    percents : float
        ``LeverageSizer`` share of equity committed as margin per order [percent, 0-100].
    """

    strategy: str = "sma_cross"
    leverage: float = 1.0
    cash: float = 10_000.0
    commission: float = 0.0004
    maintenance_margin_rate: float = 0.005
    tiers: str | None = None
    liquidation_fee_rate: float | None = None
    negative_balance: str = "absorb"
    lot_size: float = 0.001
    strategy_params: tuple = field(default_factory=tuple)
    margin_mode: str = "isolated"
    feed_tiers: tuple = field(default_factory=tuple)
    funding_rate: float | None = None
    funding_interval_hours: float = 8.0
    feed_leverage: tuple = field(default_factory=tuple)
    exposure: str = "scaled"
    percents: float = 90.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if not (math.isfinite(self.leverage) and self.leverage > 0):
            raise ValueError(f"leverage must be a finite number > 0, got {self.leverage}")
        if not (math.isfinite(self.cash) and self.cash > 0):
            raise ValueError(f"cash must be a finite number > 0, got {self.cash}")
        for name in ("commission", "maintenance_margin_rate", "liquidation_fee_rate"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 <= value < 1):
                raise ValueError(f"{name} must be a fraction in [0, 1), got {value}")
        if self.negative_balance not in NEGATIVE_BALANCE_POLICIES:
            raise ValueError(f"negative_balance must be one of {NEGATIVE_BALANCE_POLICIES}, "
                             f"got {self.negative_balance!r}")
        if self.margin_mode not in MARGIN_MODES:
            raise ValueError(f"margin_mode must be one of {MARGIN_MODES}, got {self.margin_mode!r}")
        if not (math.isfinite(self.lot_size) and self.lot_size > 0):
            raise ValueError(f"lot_size must be > 0, got {self.lot_size}")
        if self.funding_rate is not None and not (math.isfinite(self.funding_rate)
                                                  and abs(self.funding_rate) <= 0.05):
            raise ValueError(f"funding_rate must be a fraction within ±0.05 per interval, "
                             f"got {self.funding_rate}")
        if not (math.isfinite(self.funding_interval_hours) and self.funding_interval_hours > 0):
            raise ValueError(f"funding_interval_hours must be > 0, got "
                             f"{self.funding_interval_hours}")
        for name, leverage in self.feed_leverage:
            if not (isinstance(leverage, (int, float)) and math.isfinite(leverage)
                    and leverage > 0):
                raise ValueError(f"leverage of feed {name} must be a finite number > 0, "
                                 f"got {leverage}")
        if self.exposure not in EXPOSURE_MODES:
            raise ValueError(f"exposure must be one of {', '.join(EXPOSURE_MODES)}, "
                             f"got {self.exposure!r}")
        if not (isinstance(self.percents, (int, float)) and math.isfinite(self.percents)
                and 0 < self.percents <= 100):
            raise ValueError(f"percents must be a number in (0, 100], got {self.percents}")

    def leverage_of(self, feed: str) -> float:
        """Leverage of feed ``feed``: its ``feed_leverage`` override, else ``leverage``."""
        return float(dict(self.feed_leverage).get(feed, self.leverage))

    def to_dict(self) -> dict:
        """JSON-ready dict; strategy params become a plain dict."""
        out = asdict(self)
        out["strategy_params"] = dict(self.strategy_params)
        out["feed_tiers"] = dict(self.feed_tiers)
        out["feed_leverage"] = dict(self.feed_leverage)
        return out


#: the defaults of every option, for the command line and the Python API
DEFAULTS = BacktestConfig()
#: the options besides strategy, leverage, strategy_params and feed_leverage
OPTION_NAMES = tuple(name for name in BacktestConfig.__dataclass_fields__
                     if name not in ("strategy", "leverage", "strategy_params", "feed_leverage"))


def build_configs(strategy, leverages, *, strategy_params=None, feed_leverage=None,
                  **options) -> list[BacktestConfig]:
    """One :class:`BacktestConfig` per leverage, the rest from ``options`` over :data:`DEFAULTS`.

    The command line and :func:`backtrader_leverage.sweep` both build their settings here.
    ``strategy`` is a spec or a class (made a spec, see :func:`strategies.spec.normalize_spec`);
    ``strategy_params`` and ``feed_leverage`` are dicts (or pairs); ``options`` are the
    other fields of :class:`BacktestConfig`. The strategy is loaded and its params checked,
    so a bad spec or param raises here (:class:`ValueError`), before any work.
    """
    from ..strategies.spec import check_params, load_strategy, normalize_spec

    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(f"unknown option {unknown[0]!r}; the options are "
                        f"{', '.join(OPTION_NAMES + ('strategy_params', 'feed_leverage'))}")
    if isinstance(options.get("feed_tiers"), dict):
        options["feed_tiers"] = tuple(sorted(options["feed_tiers"].items()))
    spec = normalize_spec(strategy)
    params = dict(strategy_params or {})
    check_params(load_strategy(spec), params)
    feeds = tuple(dict(feed_leverage or {}).items())
    configs = [BacktestConfig(strategy=spec, leverage=float(leverage),
                              strategy_params=tuple(sorted(params.items())),
                              feed_leverage=tuple((str(name), float(value))
                                                  for name, value in feeds),
                              **options)
               for leverage in leverages]
    for config in configs:
        config.validate()
    return configs
