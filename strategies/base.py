"""Shared machinery of the example strategies: leverage-aware sizing and protective exits.

Sizing (every strategy)
-----------------------
A position is sized from the account, not from a fixed number of coins::

    notional [quote currency] = fraction * equity * leverage
    size     [base units]     = notional / close            (the broker floors it to its lot)

``equity`` is ``broker.getvalue()`` (wallet + isolated margins + unrealized PnL) and
``leverage`` is ``broker.get_leverage(data)`` when the broker has it (``MarginBroker``),
else 1.0 (a plain ``BackBroker``). With ``exposure="as_is"`` the sweep sets the class
attribute ``scale_sizes_by_leverage`` to False: notional = fraction * equity whatever the
leverage, so leverage changes only the margin and the liquidation distance. The margin the position locks is ``fraction * equity``
whatever the leverage, so ``fraction`` must leave room for the taker fee:
margin + fee = notional * (1 / leverage + fee_rate) <= equity, i.e.
``fraction <= 1 / (1 + fee_rate * leverage)`` (0.9 works up to 277x at a 0.04 % fee).

``sizer='risk'`` sizes by the loss at the stop instead (:class:`sizers.RiskSizer`, with
``risk_per_trade`` and ``stop_loss``): a stop-out loses ``risk_per_trade`` of equity, fees
included, and an entry whose stop lies at or beyond its liquidation price is not placed.

Protective exits
----------------
``stop_loss`` and ``take_profit`` are fractions of the entry price (0.05 = 5 %), ``None``
= off. Once an entry fills, a stop order at ``entry * (1 - side * stop_loss)`` and a limit
order at ``entry * (1 + side * take_profit)`` are placed for the whole position, linked as
OCO. A new signal cancels them before trading. Both are ordinary backtrader orders, so the
broker decides fills and, with a margin broker, whether a liquidation comes first.

Subclasses implement :meth:`signal` and return the wanted direction: +1 long, -1 short,
0 flat, or ``None`` for "keep what you have".
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import backtrader as bt

LONG, FLAT, SHORT = 1, 0, -1
SIZERS = (None, "risk")     # the ``sizer`` param: None = fraction of equity


class LeveragedStrategy(bt.Strategy):
    """Base class: turns a direction signal into leverage-aware orders.

    Params
    ------
    fraction : float, default 0.9
        Share of equity committed as initial margin per position (0 < fraction <= 1).
    stop_loss : float or None, default None
        Protective stop distance as a fraction of the entry price; None = no stop.
    take_profit : float or None, default None
        Take-profit distance as a fraction of the entry price; None = no target.
    allow_short : bool, default True
        When False, a short signal means "go flat" instead.
    sizer : None or 'risk', default None
        None sizes by ``fraction`` (above). 'risk' sizes with :class:`sizers.RiskSizer`:
        a stop-out loses ``risk_per_trade`` of equity, fees included, and an entry whose
        ``stop_loss`` lies at or beyond its liquidation price is refused (no order; the
        refusal goes to :meth:`notify_refusal` and ``refusals``; a signal that lasts
        several bars is asked once). Needs ``stop_loss``.
    risk_per_trade : float, default 0.01
        With ``sizer='risk'``: share of equity lost at the stop (0 < risk_per_trade < 1).
    """

    params = (
        ("fraction", 0.9),
        ("stop_loss", None),
        ("take_profit", None),
        ("allow_short", True),
        ("sizer", None),
        ("risk_per_trade", 0.01),
    )
    #: True: notional = fraction x equity x leverage (exposure "scaled"); False: the
    #: leverage is left out of the size (exposure "as_is")
    scale_sizes_by_leverage = True

    def __init__(self):
        type(self).check_params(**{name: getattr(self.p, name) for name in self.p._getkeys()})
        self._pending = None        # the entry/exit order not yet completed
        self._pending_target = 0.0  # its target position [base units]
        self._protective = []       # open stop-loss / take-profit orders
        self.entries = 0            # completed orders that left a position open [count]
        self.refusals = []          # sizers.EntryRefusal records of refused entries
        self._risk_sizer = None     # set in start(): cerebro installs its sizer after __init__
        self._refused_direction = None  # direction refused while its signal lasts

    def start(self):
        if self.p.sizer == "risk":
            from ..sizers import RiskSizer
            self._risk_sizer = RiskSizer(risk_per_trade=self.p.risk_per_trade,
                                         stop_loss=self.p.stop_loss)
            self.setsizer(self._risk_sizer)

    def notify_refusal(self, refusal):
        """The sizer refused an entry (a ``sizers.EntryRefusal``); kept in ``refusals``."""
        self.refusals.append(refusal)

    # -- params ---------------------------------------------------------------------------
    @classmethod
    def check_params(cls, **overrides) -> None:
        """Raise ``ValueError`` naming the first unknown or out-of-range param.

        Runs without a cerebro, so a command line can reject bad params before any work:
        each class along the MRO checks its own params in a ``_check(p)`` staticmethod,
        ``p`` holding the defaults updated with ``overrides``.
        """
        known = list(cls.params._getkeys())
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"{cls.__name__} has no param {unknown[0]!r}; it has "
                             f"{', '.join(sorted(known))}")
        values = {name: getattr(cls.params, name) for name in known}
        values.update(overrides)
        merged = SimpleNamespace(**values)
        for klass in reversed(cls.__mro__):
            check = klass.__dict__.get("_check")
            if isinstance(check, staticmethod):
                check.__func__(merged)

    @classmethod
    def min_bars(cls, **overrides) -> int:
        """Fewest bars [count] the strategy needs: its longest look-back plus one bar to trade.

        backtrader's vectorised indicators fail on a feed shorter than their period, so
        callers check this before running.
        """
        values = {name: getattr(cls.params, name) for name in cls.params._getkeys()}
        values.update(overrides)
        return int(cls._lookback(SimpleNamespace(**values))) + 1

    @staticmethod
    def _lookback(p) -> int:
        """Longest indicator look-back [bars] for params ``p``; subclasses override."""
        return 1

    @staticmethod
    def _check(p) -> None:
        require_number(p.fraction, "fraction", low=0.0, high=1.0, low_open=True)
        for name in ("stop_loss", "take_profit"):
            if getattr(p, name) is not None:
                require_number(getattr(p, name), name, low=0.0, high=1.0, low_open=True,
                               high_open=True)
        require_bool(p.allow_short, "allow_short")
        if p.sizer not in SIZERS:
            raise ValueError(f"sizer must be one of {', '.join(map(str, SIZERS))}, "
                             f"got {p.sizer!r}")
        require_number(p.risk_per_trade, "risk_per_trade", low=0.0, high=1.0, low_open=True,
                       high_open=True)
        if p.sizer == "risk" and p.stop_loss is None:
            raise ValueError("sizer=risk sizes by the loss at the stop: give stop_loss too, "
                             "e.g. --param stop_loss=0.05")

    # -- hooks for subclasses -------------------------------------------------------------
    def signal(self) -> int | None:
        """Wanted direction on this bar: +1, -1, 0, or None to keep the position."""
        raise NotImplementedError

    # -- sizing ---------------------------------------------------------------------------
    def leverage(self) -> float:
        """Leverage the broker applies to this feed (1.0 for a broker without margin)."""
        try:
            return float(self.broker.get_leverage(self.data))
        except (AttributeError, TypeError):  # BackBroker: no per-feed leverage (no margin)
            return 1.0

    def target_size(self, direction: int) -> float:
        """Signed position size [base units] for ``direction`` at the current close.

        size = direction * fraction * equity * leverage / close (leverage 1 when
        ``scale_sizes_by_leverage`` is False); 0 when equity <= 0.
        With ``sizer='risk'``: direction * the RiskSizer's size (0 when it refuses).
        """
        equity = self.broker.getvalue()
        price = self.data.close[0]
        if direction == FLAT or equity <= 0 or not price > 0:
            return 0.0
        if self._risk_sizer is not None:
            return direction * self._risk_sizer.getsizing(self.data, isbuy=direction == LONG)
        leverage = self.leverage() if self.scale_sizes_by_leverage else 1.0
        return direction * self.p.fraction * equity * leverage / price

    # -- order flow -----------------------------------------------------------------------
    def next(self):
        if self._pending is not None:
            return
        wanted = self.signal()
        if wanted != self._refused_direction:
            self._refused_direction = None   # the signal moved on: the next one may be asked
        if wanted is None:
            return
        if wanted == SHORT and not self.p.allow_short:
            wanted = FLAT
        held = self.position.size
        current = LONG if held > 0 else SHORT if held < 0 else FLAT
        if wanted == current or wanted == self._refused_direction:
            return                           # a signal held over several bars is one entry
        self._cancel_protective()
        refused_before = len(self.refusals)
        target = self.target_size(wanted)
        if len(self.refusals) > refused_before:
            self._refused_direction = wanted
        if target == 0.0 and held == 0:
            return
        self._pending_target = target
        self._pending = self.order_target_size(target=target)

    def notify_order(self, order):
        if order.status in (order.Submitted, order.Accepted):
            return
        # Brokers notify clones of the orders, so orders are matched by their ref.
        if self._pending is not None and order.ref == self._pending.ref:
            if order.status == order.Partial:
                return
            self._pending = None
            if order.status == order.Completed and self._pending_target != 0.0:
                self.entries += 1   # counted even if a liquidation already closed it
                self._place_protective()
        elif order.status != order.Partial:
            self._protective = [mine for mine in self._protective if mine.ref != order.ref]

    def _cancel_protective(self):
        for order in list(self._protective):
            self.cancel(order)
        self._protective = []

    def _place_protective(self):
        size = self.position.size
        if size == 0 or (self.p.stop_loss is None and self.p.take_profit is None):
            return
        side = 1 if size > 0 else -1
        entry = self.position.price
        close_order = self.sell if side > 0 else self.buy
        stop = None
        if self.p.stop_loss is not None:
            stop = close_order(exectype=bt.Order.Stop, size=abs(size),
                               price=entry * (1 - side * self.p.stop_loss))
            self._protective.append(stop)
        if self.p.take_profit is not None:
            target = close_order(exectype=bt.Order.Limit, size=abs(size),
                                 price=entry * (1 + side * self.p.take_profit), oco=stop)
            self._protective.append(target)


def require_number(value, name, *, low=None, high=None, low_open=False, high_open=False,
                   whole=False) -> None:
    """Raise ``ValueError`` unless ``value`` is a real number (an integer if ``whole``) in range.

    ``low``/``high`` are inclusive bounds unless ``low_open``/``high_open``; None = unbounded.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (whole and not float(value).is_integer()) or not math.isfinite(value):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {value!r}")


def require_bool(value, name) -> None:
    """Raise ``ValueError`` unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def crossed_above(line, level) -> bool:
    """True when ``line`` went from <= level on the previous bar to > level now."""
    previous, current = line[-1], line[0]
    return not (math.isnan(previous) or math.isnan(current)) and previous <= level < current


def crossed_below(line, level) -> bool:
    """True when ``line`` went from >= level on the previous bar to < level now."""
    previous, current = line[-1], line[0]
    return not (math.isnan(previous) or math.isnan(current)) and previous >= level > current
