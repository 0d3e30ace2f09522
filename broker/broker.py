"""``MarginBroker``: backtrader's BackBroker with isolated or cross margin and liquidation.

A thin adapter: it turns backtrader orders and positions into calls to the
pure functions of ``broker.margin`` and records what happened
(``broker.events``). Every wallet movement goes through ``_cash_flow``.

One bar, in this order (``next``):

0. cheat-on-close market orders fill at the previous close (they belong to
   the previous bar);
1. the gap: a position whose liquidation price the open (the mark's open
   when a mark price is set) already crossed is liquidated at the trade
   open, and the feed's open orders are cancelled;
2. pending market orders fill at the open;
2b. funding: every funding time of the bar (several on coarse bars, each
   once) is paid by the position held after the open fills, at the mark's
   open (``_pay_funding``); in isolated mode the isolated margin pays it, so
   the liquidation price moves before the path below;
3. intrabar, along the price path open → adverse extreme → other extreme →
   close (see below);
4. ``Close`` orders fill at the close, trailing stops move, the account is
   marked at the close (the mark's close when a mark price is set).

The price path of step 3 (the trade price's, open → adverse extreme → other
extreme → close; adverse for the position held; nearer extreme first when
flat): stops, limits and the liquidation price trigger in the order the path
reaches them, an order winning a tie with the liquidation price. With a mark
price (``set_mark_price``) the liquidation triggers where the mark's path,
taken in step with the trade path, reaches the liquidation price, and fills
there (at the trade price when the mark is already past it, e.g. at the open).

In isolated margin, steps 1, 2b and 3 are skipped for a feed whose tick is
quiet (``_busy_feeds``): no order rests on any feed, it has no mark bar, no
funding time falls due and its path stays short of the liquidation price (or
it is flat) — the usual bar, on which each of them would change nothing.

In cross margin (``margin_mode="cross"``) steps 1 and 3 are account-wide:
the gap liquidates every position at its open when the account opens at or
below maintenance, and the intrabar phase walks the paths of all feeds
together, segment by segment, in one parameter θ (``_walk_cross_paths``).

Under ``cerebro.replaydata`` each tick of a developing bar is such a "bar":
every price above is the tick's (``data.tick_open`` …), as BackBroker reads it.

Wallet flow reasons (``ledger``): ``margin_lock``, ``margin_release``,
``realized_pnl``, ``fee``, ``liquidation_return``, ``deficit``,
``add_margin``, ``deposit``; in cross mode ``cross_liquidation`` (one per
closed position: its PnL at the fill, less its clearance fee, plus the
deficit share the insurance fund absorbs); ``funding`` (a funding payment:
+ received, − paid) and, in isolated mode, ``margin_funding`` (the
position's isolated margin pays or keeps that payment: the opposite amount,
back to the wallet).
"""
from __future__ import annotations

import collections
import datetime
import importlib.resources
import math
import numbers
import warnings
from dataclasses import dataclass
from pathlib import Path

import backtrader as bt
from backtrader.order import BuyOrder, Order, SellOrder

from . import margin as mm
from .events import FundingPayment, Ledger, LiquidationEvent, NegativeBalanceEpisode
from .perpetual import (FundingWarning, MarkBar, MarkPriceWarning, MarkSource,
                        day_number_to_seconds, resolve_funding)

TIERS_FOLDER = Path(str(importlib.resources.files(__package__) / "tiers"))
NEGATIVE_BALANCE_POLICIES = ("absorb", "carry")
MARGIN_MODES = ("isolated", "cross")
_UNIX_EPOCH = datetime.datetime(1970, 1, 1)  # naive UTC, as backtrader hands out bar times
_DEQUE = collections.deque  # OrderData.exbits as backtrader makes it (see MarginBroker.notify)


class Tick(collections.namedtuple("Tick", "open high low close new_bar may_gap",
                                   defaults=(True,))):
    """Prices a feed moved through since the broker last looked, quote per base.

    The tick backtrader just delivered (``data.tick_open/high/low/close``, as
    BackBroker reads them): a new bar's own OHLC, or, on a replayed bar that
    developed further at the same length, the OHLC of the lower-timeframe bar
    that arrived — not the developing bar's open, a price already passed.
    ``may_gap``: False when the quiet check already found that no price of the
    tick reaches the liquidation price, so the open cannot have gapped past it.
    """


class _FeedState:
    """What the broker keeps per feed between bars (one object, no per-bar dict lookups).

    ``lines``: (length, datetime, open, high, low, close) line buffers: per bar
    the broker reads ``len(data)`` and ``data.<line>[0]`` through them
    (``lencount``, ``array[_idx]``, what LineBuffer's own ``__len__`` and
    ``__getitem__(0)`` return) without backtrader's per-access lookups.
    ``last_seen``: (length, datetime, open, high, low, close) of the last tick of a
    replayed feed, ``last_length``: ``len(data)`` at the last tick of any other;
    ``previous_bar_start``, ``bar_seconds``, ``funding_paid_until``: the
    funding clock (see ``MarginBroker._funding_window``); ``datetime``: the
    current bar's (day number, datetime), converted once per bar.
    """

    __slots__ = ("lines", "length_line", "datetime_line", "open_line", "high_line",
                 "low_line", "close_line", "last_seen", "last_length", "previous_bar_start",
                 "bar_seconds",
                 "funding_paid_until", "funding_window", "funding_due", "funding_quiet",
                 "datetime", "name")

    def __init__(self, data):
        owned = data.lines
        self.lines = (owned[0], owned.datetime, owned.open, owned.high, owned.low, owned.close)
        (self.length_line, self.datetime_line, self.open_line, self.high_line,
         self.low_line, self.close_line) = self.lines
        self.last_seen = None       # (length, datetime, open, high, low, close): replayed feeds
        self.last_length = 0        # len(data) at the last tick: every other feed
        self.previous_bar_start = None
        self.bar_seconds = None
        self.funding_paid_until = None
        self.funding_window = None  # (start, end) POSIX seconds of the current bar's funding
        self.funding_due = False    # a payment (or the not-covered warning) falls in it
        # (from, until): windows starting from, ending by, have no work (quiet_until)
        self.funding_quiet = (math.inf, -math.inf)
        self.datetime = None        # (day number, datetime) of the current bar, converted once
        self.name = None            # 'data<index>' of an unnamed feed, once looked up


_PATH_EXECTYPES = (Order.Limit, Order.Stop, Order.StopTrail, Order.StopLimit, Order.StopTrailLimit)
_OPEN_EXECTYPES = (Order.Market, Order.Historical)


class MarginCommInfo(bt.CommInfoBase):
    """Fee model for linear perpetuals: ``commission`` is a fraction of notional.

    ``leverage`` None means "use the broker's default"; sizes from
    ``getsize`` are fractional, floored to ``lot_size`` base units, and do
    not depend on leverage (a cash amount buys that much notional).
    """
    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
        ("leverage", None),
        ("lot_size", 0.001),
    )

    def getsize(self, price, cash):
        """Base units whose notional at ``price`` is ``cash`` (quote), floored to the lot."""
        return mm.floor_to_lot(cash / price, self.p.lot_size)


@dataclass(slots=True)  # two a fill, internal: slots, not frozen (a frozen init is 4x slower)
class FillPlan:
    """What filling ``size`` at ``price`` would do, all money in quote currency.

    closed / opened: signed base units of the closing and opening parts;
    released: isolated margin freed by the closing part; pnl: its realized
    PnL; open_margin: margin the opening part locks; fees are taker fees;
    rejection: None when the order can fill, else the reason.
    """
    closed: float
    opened: float
    released: float
    pnl: float
    close_fee: float
    open_margin: float
    open_fee: float
    wallet_after: float
    rejection: str | None


def _resolve_tiers(tiers, maintenance_margin_rate):
    """Tier table from the ``tiers`` param: None (flat mmr), a name, a path, or a sequence."""
    if tiers is None:
        return mm.flat_tiers(maintenance_margin_rate)
    if isinstance(tiers, (str, Path)):
        path = Path(tiers)
        if not path.suffix:
            path = TIERS_FOLDER / f"{tiers}.json"
        return mm.load_tiers(path)
    return mm.validate_tiers(tiers)


_TICK_ATTRIBUTES = ("tick_open", "tick_high", "tick_low", "tick_close")


def _bar_values(state):
    """(open, high, low, close) of the feed's current bar, read through ``state``'s lines
    (each tick of a replayed feed: four reads, no generator)."""
    _length, _datetime, open_, high, low, close = state.lines
    return (open_.array[open_._idx], high.array[high._idx], low.array[low._idx],
            close.array[close._idx])


def _tick_prices(data, bar=None):
    """(open, high, low, close) of the tick ``data`` just delivered (the bar's own without one).

    ``bar``: the bar's (open, high, low, close) when the caller has read them already.
    """
    tick = [getattr(data, name, None) for name in _TICK_ATTRIBUTES]
    if None not in tick:
        return tuple(tick)
    if bar is None:
        bar = (data.open[0], data.high[0], data.low[0], data.close[0])
    return tuple(bar_price if tick_price is None else tick_price
                 for bar_price, tick_price in zip(bar, tick))


def _real_param(value, name, allowed, test, unit, none_ok=False):
    """``value`` as a float when it is a finite real number (any numeric type) passing
    ``test``; else ValueError naming ``name``, the ``allowed`` range and the ``unit``."""
    if value is None and none_ok:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and test(number):
            return number
    raise ValueError(f"{name} must be {'None or ' if none_ok else ''}a real number {allowed} "
                     f"({unit}), got {value!r}")


def _path_reaches(prices, size, level):
    """Whether the tick's ``prices`` (open, high, low, close) reach ``level`` (quote per
    base) from the side of a position of ``size`` (signed base units, not 0): a long's
    lowest, a short's highest price."""
    if size > 0:
        return min(prices) <= level
    return max(prices) >= level


def _touch_price(order, segment_start, segment_end):
    """Price where a resting order triggers on the path segment start → end, or None.

    Buy limits and sell stops trigger when price falls to them, sell limits
    and buy stops when it rises to them; already through at the segment's
    start means the start price.
    """
    if order.exectype in (Order.Limit,) or (order.triggered and order.exectype in
                                            (Order.StopLimit, Order.StopTrailLimit)):
        level = order.created.price if order.exectype == Order.Limit else order.created.pricelimit
        falls_to = order.isbuy()
    else:
        level = order.created.price
        falls_to = not order.isbuy()
    low, high = min(segment_start, segment_end), max(segment_start, segment_end)
    if falls_to:
        if segment_start <= level:
            return segment_start
        return level if low <= level else None
    if segment_start >= level:
        return segment_start
    return level if high >= level else None


class MarginBroker(bt.brokers.BackBroker):
    """Isolated- or cross-margin broker for linear crypto perpetuals, with liquidation.

    Use: ``cerebro.broker = MarginBroker(cash=10_000, leverage=5)``; fees
    the backtrader way, ``setcommission(commission=0.0004)`` (a fraction of
    notional).

    Params (besides BackBroker's):

    - ``leverage`` (1.0): default leverage of every feed; overridden by
      ``setcommission(leverage=…)`` and then by ``set_leverage(data, L)``.
    - ``maintenance_margin_rate`` (0.005): flat mmr, used when ``tiers`` is None.
    - ``tiers`` (None): a tier table: a name of a file in ``broker/tiers``
      (e.g. ``'binance_btcusdt_perp'``), a JSON/CSV path, or a sequence of
      ``MarginTier``.
    - ``liquidation_fee_rate`` (None): None = exchange style (the whole
      isolated margin is lost, the remainder is the clearance fee); a
      fraction x = fee of x·notional at the fill, the rest returns.
    - ``negative_balance`` ('absorb'): who pays a deficit past the bankruptcy
      price: 'absorb' = the insurance fund, 'carry' = the wallet, which may
      go negative (orders adding exposure are then rejected).
    - ``lot_size`` (0.001): order sizes are floored to this many base units.
    - ``margin_mode`` ('isolated'): 'isolated' locks margin per position;
      'cross' shares the wallet: no margin is locked, opening needs Σ initial
      margin (notional / leverage, the new order included) <= wallet + Σ
      unrealized PnL − fees, and the whole account is liquidated when wallet
      + Σ unrealized PnL <= Σ maintenance margin (Binance USDⓈ-M cross
      margin). A realized loss that another position's unrealized profit
      covers may take the cross wallet below zero (an episode in
      ``negative_balance_episodes``) under either policy; the account does
      not go below zero under 'absorb'.
    - ``funding_rates`` (None): perpetual funding. None = not modelled; a
      number = the rate of every funding interval (0.0001 = 0.01 %); a pandas
      Series of rates indexed by UTC settlement time; or a funding CSV path
      (``data.load_funding_csv`` formats). Per feed: ``set_funding_rates``.
    - ``funding_interval_hours`` (8): spacing of the funding times on the
      UTC grid (00:00, 08:00, 16:00) for a constant rate; series carry their
      own times.

    Mark price: ``set_mark_price(data, mark)``.

    Per-feed tier tables: ``set_tiers(data, tiers)`` (the ``tiers`` param is
    the default of every feed), in both modes.

    Public state: ``liquidations`` (list of ``LiquidationEvent``),
    ``negative_balance_episodes``, ``insurance_fund`` (quote currency:
    clearance fees received minus deficits absorbed), ``ledger`` (every
    wallet movement as a ``CashFlow``, in a read-only sequence:
    ``events.Ledger``), ``funding_payments`` (every funding
    payment as a ``FundingPayment``).
    """
    params = (
        ("leverage", 1.0),
        ("maintenance_margin_rate", 0.005),
        ("tiers", None),
        ("liquidation_fee_rate", None),
        ("negative_balance", "absorb"),
        ("lot_size", 0.001),
        ("margin_mode", "isolated"),
        ("funding_rates", None),
        ("funding_interval_hours", mm.FUNDING_INTERVAL_HOURS),
    )

    def __init__(self):
        # Configuration first: BrokerBase.__init__ calls init().
        p = self.p
        p.cash = _real_param(p.cash, "cash", ">= 0", lambda v: v >= 0, "quote currency")
        p.maintenance_margin_rate = _real_param(p.maintenance_margin_rate,
                                                "maintenance_margin_rate", "in (0, 1)",
                                                lambda v: 0 < v < 1, "fraction of notional")
        p.lot_size = _real_param(p.lot_size, "lot_size", "> 0", lambda v: v > 0, "base units")
        p.liquidation_fee_rate = _real_param(p.liquidation_fee_rate, "liquidation_fee_rate",
                                             "in [0, 1)", lambda v: 0 <= v < 1,
                                             "fraction of notional", none_ok=True)
        self._tiers = _resolve_tiers(self.p.tiers, self.p.maintenance_margin_rate)
        if self.p.negative_balance not in NEGATIVE_BALANCE_POLICIES:
            raise ValueError(f"negative_balance must be one of {NEGATIVE_BALANCE_POLICIES}, "
                             f"got {self.p.negative_balance!r}")
        if self.p.margin_mode not in MARGIN_MODES:
            raise ValueError(f"margin_mode must be one of {MARGIN_MODES}, got {self.p.margin_mode!r}")
        self._cross = self.p.margin_mode == "cross"
        self._tiers_by_data = {}
        self.p.leverage = self._check_leverage(self.p.leverage, "leverage param")
        self._size_decimals = mm.lot_decimals(self.p.lot_size)
        # Survives init(), which cerebro.run() calls again: set_leverage before run.
        self._leverage_by_data = {}
        self._funding = resolve_funding(self.p.funding_rates, self.p.funding_interval_hours)
        self._funding_by_data = {}
        self._mark_by_data = {}
        super().__init__()

    # ------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------
    def init(self):
        super().init()
        if not isinstance(self.comminfo.get(None), MarginCommInfo) and \
                self.comminfo.get(None) is self.p.commission:
            self.comminfo[None] = MarginCommInfo(lot_size=self.p.lot_size)
        self._margins = collections.defaultdict(float)
        self._opened_dt = {}
        self._last_owner = {}
        self._feed_states = {}  # feed -> _FeedState
        self._liquidation_price_cache = {}
        self.liquidations = []
        self.negative_balance_episodes = []
        self.insurance_fund = 0.0
        self.ledger = Ledger(to_datetime=bt.num2date)   # num2date(n): _feed_datetime's, tz None
        self.funding_payments = []
        self._mark_now = {}
        self._warned = set()

    def setcommission(self, commission=0.0, margin=None, mult=1.0, commtype=None,
                      percabs=True, stocklike=False, interest=0.0, interest_long=False,
                      leverage=None, automargin=False, name=None):
        """Set fees (``commission`` = fraction of notional) and optionally a leverage.

        ``leverage`` None keeps the broker's default; a value must fit the
        tier table. ``mult`` must stay 1 (linear contracts); ``margin``,
        ``interest`` and ``automargin`` are not modelled and must stay unset.
        """
        if mult != 1.0 or margin or interest or automargin:
            raise ValueError("MarginBroker models linear USDⓈ-M perpetuals: mult must be 1 "
                             "and margin/interest/automargin unset (margin comes from leverage)")
        commission = _real_param(commission, "commission", "in [0, 1)", lambda v: 0 <= v < 1,
                                 "fraction of notional")
        if leverage is not None:
            leverage = self._check_leverage(leverage, "setcommission leverage")
        if commtype not in (None, bt.CommInfoBase.COMM_PERC):
            raise ValueError("MarginBroker charges fees as a fraction of notional (COMM_PERC)")
        self.comminfo[name] = MarginCommInfo(commission=commission, percabs=percabs,
                                             leverage=leverage, lot_size=self.p.lot_size)

    def set_leverage(self, data, leverage):
        """Set the leverage (x) used for ``data``'s next position.

        Raises ValueError when it is <= 0, above the tier table's maximum,
        or while the feed has an open position.
        """
        self._check_leverage(leverage, f"leverage for {self._feed_name(data)}",
                             self._tiers_for(data))
        if self.getposition(data).size:
            raise ValueError(f"cannot change leverage of {self._feed_name(data)} while a "
                             "position is open: close it first")
        self._leverage_by_data[data] = float(leverage)

    def get_leverage(self, data=None):
        """Leverage (x) for ``data``; without a feed, the account's Σ|notional| / equity."""
        if data is None:
            return self._leverage
        if data in self._leverage_by_data:
            return self._leverage_by_data[data]
        comminfo = self.getcommissioninfo(data)
        if isinstance(comminfo, MarginCommInfo):
            if comminfo.p.leverage is not None:
                return float(comminfo.p.leverage)
        elif comminfo.p.leverage != 1.0:
            # A third-party CommInfoBase: 1.0 is backtrader's default, i.e. unset.
            return float(comminfo.p.leverage)
        return float(self.p.leverage)

    def set_tiers(self, data, tiers):
        """Use the bracket table ``tiers`` for ``data`` (same forms as the ``tiers`` param).

        A name in ``broker/tiers`` (``'binance_ethusdt_perp'``), a JSON/CSV
        path, or a sequence of ``MarginTier``. Raises ValueError on a bad
        table, while the feed has an open position, or when the feed's
        leverage is above the table's maximum.
        """
        table = _resolve_tiers(tiers, self.p.maintenance_margin_rate)
        if self.getposition(data).size:
            raise ValueError(f"cannot change the tiers of {self._feed_name(data)} while a "
                             "position is open: close it first")
        self._check_leverage(self.get_leverage(data), f"leverage of {self._feed_name(data)}", table)
        self._tiers_by_data[data] = table

    def tiers_for(self, data):
        """The bracket table (tuple of ``MarginTier``) ``data`` uses."""
        return self._tiers_for(data)

    def _tiers_for(self, data):
        return self._tiers_by_data.get(data, self._tiers)

    def _check_leverage(self, leverage, what, tiers=None):
        """``leverage`` as a float; ValueError unless a real number in (0, the table's max]."""
        max_leverage = (tiers or self._tiers)[0].max_leverage
        leverage = _real_param(leverage, what, f"> 0 and <= {max_leverage:g}",
                               lambda v: v > 0, "x")
        if leverage > max_leverage:
            if tiers is None and self.p.tiers is None:
                raise ValueError(f"{what} {leverage:g} is above the maximum of {max_leverage:g}x "
                                 f"that maintenance_margin_rate {self.p.maintenance_margin_rate:g}"
                                 " allows (1 / mmr)")
            raise ValueError(f"{what} {leverage:g} is above the tier table's maximum of "
                             f"{max_leverage:g}x")
        return leverage

    def set_cash(self, cash):
        """Set the starting wallet (quote currency, a real number >= 0); alias ``setcash``."""
        super().set_cash(_real_param(cash, "cash", ">= 0", lambda v: v >= 0, "quote currency"))

    setcash = set_cash

    # ------------------------------------------------------------------
    # public queries
    # ------------------------------------------------------------------
    def position_margin(self, data):
        """Isolated margin of ``data``'s position, quote currency (0.0 when flat).

        Cross mode locks nothing; this is then the part of the account the
        position can lose before the account reaches maintenance, WB −
        MM_others + uPnL_others (the margin term of the cross liquidation
        price), so margin + uPnL vs maintenance reads as in isolated mode.
        """
        if not self.getposition(data).size:
            return 0.0
        if self._cross:
            return self._cross_available(data, self._cross_prices())
        return self._margins[data]

    def maintenance_margin(self, data, price=None):
        """Maintenance margin of ``data``'s position at ``price`` (default: the close), quote."""
        size = abs(self.getposition(data).size)
        if not size:
            return 0.0
        price = self._mark_close(data) if price is None else price
        return mm.position_maintenance_margin(size, price, self._tiers_for(data))

    def margin_figures(self, data, price):
        """(position margin, maintenance margin at ``price``, liquidation price) of ``data``.

        One call for what ``position_margin(data)``, ``maintenance_margin(data, price)``
        and ``liquidation_price(data)`` return (quote, quote, quote per base);
        (0.0, 0.0, None) when flat. MarginAnalyzer asks it every bar.
        """
        position = self.positions[data]
        size = position.size
        if not size:
            return 0.0, 0.0, None
        if self._cross:
            return self.position_margin(data), self.maintenance_margin(data, price), \
                self.liquidation_price(data)
        maintenance = mm.position_maintenance_margin(abs(size), price, self._tiers_for(data))
        return self._margins[data], maintenance, self._isolated_liquidation_price(data, position)

    def liquidation_price(self, data):
        """Liquidation price of ``data``'s position (quote per base), None when flat."""
        position = self.getposition(data)
        if not position.size:
            return None
        if self._cross:
            return self._cross_liquidation_price(data, self._cross_prices())
        return self._isolated_liquidation_price(data, position)

    def _isolated_liquidation_price(self, data, position):
        """``liquidation_price`` of ``data``'s open isolated ``position``.

        Asked several times a bar (gap, each path segment, analyzers): recomputed
        only when the size, entry price or isolated margin changed.
        """
        key = (position.size, position.price, self._margins[data])
        cached = self._liquidation_price_cache.get(data)
        if cached is not None and cached[0] == key:   # (size, entry, margin) unchanged
            return cached[1]
        size, entry_price, margin = key
        price, _tier = mm.tiered_liquidation_price(1 if size > 0 else -1, abs(size), entry_price,
                                                   margin, self._tiers_for(data))
        self._liquidation_price_cache[data] = (key, price)
        return price

    def add_margin(self, data, amount):
        """Move ``amount`` (quote, > 0) from the wallet into ``data``'s isolated margin."""
        if self._cross:
            raise ValueError("add_margin is for isolated margin: in cross mode the whole "
                             "wallet already backs every position")
        if not self.getposition(data).size:
            raise ValueError(f"{self._feed_name(data)} has no open position to add margin to")
        if not amount > 0:
            raise ValueError(f"margin to add must be > 0, got {amount}")
        if amount > self.cash:
            raise ValueError(f"cannot add {amount} of margin: the wallet holds {self.cash}")
        self._cash_flow(-amount, "add_margin", data)
        self._margins[data] += amount

    # ------------------------------------------------------------------
    # orders in
    # ------------------------------------------------------------------
    def buy(self, owner, data, size, *args, **kwargs):
        return super().buy(owner, data, mm.floor_to_lot(size, self.p.lot_size), *args, **kwargs)

    def sell(self, owner, data, size, *args, **kwargs):
        return super().sell(owner, data, mm.floor_to_lot(size, self.p.lot_size), *args, **kwargs)

    def check_submitted(self):
        """Accept or reject new orders at their creation price (margin + fee vs wallet).

        Orders are judged in submission order, each on the position and
        wallet the earlier ones would leave. Bracket children and members of
        an OCO group are judged at their fill only (they close what their
        parent or sibling opens, or replace each other).
        """
        wallet = self.cash
        simulated = {}
        while self.submitted:
            order = self.submitted.popleft()
            if self._take_children(order) is None:
                continue
            if not order.executed.remsize:
                self._reject_below_lot(order)
                continue
            if order.parent is not None:
                self.submit_accept(order)
                continue
            data = order.data
            state = simulated.get(data) or (self.positions[data].size, self.positions[data].price,
                                            self._margins[data])
            plan = self._plan_fill(data, order.executed.remsize, order.created.price,
                                   *state, wallet, others=simulated)
            if plan.rejection:
                self._refuse(order, plan.rejection)
                continue
            if len(self._ocol.get(self._ocos[order.ref], ())) <= 1:
                wallet = plan.wallet_after
                simulated[data] = self._position_after(state, order.executed.remsize,
                                                       order.created.price, plan)
            self.submit_accept(order)

    def _reject_below_lot(self, order):
        order.reject(self)
        self.notify(order)
        self._ococheck(order)
        self._bracketize(order, cancel=True)

    def _refuse(self, order, reason):
        """Backtrader's Margin status: not enough balance, or the tier forbids the leverage.

        ``reason`` ('balance' or 'tier') is kept in ``order.info.rejection``.
        """
        order.addinfo(rejection=reason)
        order.margin()
        self.notify(order)
        self._ococheck(order)
        self._bracketize(order, cancel=True)

    # ------------------------------------------------------------------
    # fills
    # ------------------------------------------------------------------
    def _snap(self, size):
        return round(size, self._size_decimals) + 0.0

    def _plan_fill(self, data, size, price, position_size, entry_price, position_margin, wallet,
                   others=None):
        """Money of filling ``size`` (signed base units) at ``price``; nothing is changed.

        ``others`` (cross mode): feed → (size, entry, margin) of positions
        assumed instead of the current ones (chained checks at submission).
        """
        comminfo = self.getcommissioninfo(data)
        new_size = self._snap(position_size + size)
        if position_size and (position_size > 0) != (size > 0):
            closed = -position_size if abs(size) > abs(position_size) else size
        else:
            closed = 0.0
        opened = self._snap(size - closed)
        released = pnl = close_fee = open_margin = open_fee = 0.0
        if closed:
            side = 1 if position_size > 0 else -1
            released = position_margin * abs(closed) / abs(position_size)
            pnl = mm.unrealized_pnl(side, abs(closed), entry_price, price)
            close_fee = comminfo.getcommission(closed, price)
        leverage = self.get_leverage(data)
        if opened:
            open_margin = mm.initial_margin(abs(opened) * price, leverage)
            open_fee = comminfo.getcommission(opened, price)
        after_close = wallet + released + pnl - close_fee
        rejection = None
        if opened and self._cross:
            # nothing is locked: the whole account must cover Σ initial margin
            shortfall = self._cross_shortfall(data, new_size, price, position_size, entry_price,
                                              opened, after_close - open_fee, others)
            open_margin = 0.0
            if shortfall > mm.RELATIVE_TOLERANCE * max(1.0, abs(after_close)):
                rejection = "balance"
        if opened and rejection is None:
            needed = open_margin + open_fee
            if after_close < needed - mm.RELATIVE_TOLERANCE * max(1.0, needed):
                rejection = "balance"
            elif mm.tier_for_notional(self._tiers_for(data),
                                      abs(new_size) * price).max_leverage < leverage:
                rejection = "tier"
        return FillPlan(closed=closed, opened=opened, released=released, pnl=pnl,
                        close_fee=close_fee, open_margin=open_margin, open_fee=open_fee,
                        wallet_after=after_close - open_margin - open_fee, rejection=rejection)

    def _position_after(self, state, size, price, plan):
        """(size, entry price, margin) after a planned fill, for chained checks."""
        position_size, entry_price, position_margin = state
        new_size = self._snap(position_size + size)
        if not new_size:
            return 0.0, 0.0, 0.0
        if plan.opened and plan.closed:  # reversal: a fresh position at the fill
            return new_size, price, plan.open_margin
        if plan.opened:
            entry_price = (abs(position_size) * entry_price + abs(plan.opened) * price) / abs(new_size)
        return new_size, entry_price, position_margin - plan.released + plan.open_margin

    def _execute(self, order, ago=None, price=None, cash=None, position=None, dtcoc=None):
        """Fill ``order`` at ``price`` with margin accounting (backtrader's execution hook)."""
        if price is None or ago is None:
            return  # no price, or backtrader's pseudo-execution (replaced by check_submitted)
        data = order.data
        size = order.executed.remsize
        if self.p.filler is not None:
            size = self.p.filler(order, price, ago) * (1 if order.isbuy() else -1)
        size = self._snap(size)
        if not size:
            self._reject_below_lot(order)
            return
        position = self.positions[data]
        plan = self._plan_fill(data, size, price, position.size, position.price,
                               self._margins[data], self.cash)
        if plan.rejection:
            self._refuse(order, plan.rejection)
            return
        self._apply_fill(order, size, price, plan, dtcoc or data.datetime[ago])

    def _apply_fill(self, order, size, price, plan, dt_number):
        data = order.data
        # the bar's datetime, converted once before the flows: they, the position and the
        # trade share one object (a flow recorded before it would keep a day number)
        self._feed_datetime(data)
        position = self.positions[data]
        comminfo = self.getcommissioninfo(data)
        entry_before = position.price
        was_flat_or_reversed = not position.size or (plan.closed and plan.opened)
        if plan.closed:
            self._cash_flow(plan.released, "margin_release", data)
            self._cash_flow(plan.pnl, "realized_pnl", data)
            self._cash_flow(-plan.close_fee, "fee", data)
            self._margins[data] -= plan.released
        if plan.opened:
            self._cash_flow(-plan.open_margin, "margin_lock", data)
            self._cash_flow(-plan.open_fee, "fee", data)
            self._margins[data] += plan.open_margin
        self._update_position(data, size, price)
        if not position.size:
            self._opened_dt.pop(data, None)
        elif was_flat_or_reversed:
            # the fill's bar is the feed's current one as a rule: _update_position just
            # converted it (the same num2date for a feed without a tz)
            state = self._feed_states[data]
            line, cached = state.datetime_line, state.datetime
            self._opened_dt[data] = cached[1] if cached[0] == dt_number and line._tz is None \
                else bt.num2date(dt_number)
        self._last_owner[data] = order.owner
        order.execute(dt_number, size, price,
                      plan.closed, comminfo.getvaluesize(-plan.closed, entry_before), plan.close_fee,
                      plan.opened, comminfo.getvaluesize(plan.opened, price), plan.open_fee,
                      plan.open_margin, plan.pnl, position.size, position.price)
        order.addcomminfo(comminfo)
        self.notify(order)
        self._ococheck(order)

    def _update_position(self, data, size, price):
        """backtrader's averaging, then the size snapped to the lot grid (no 1e-17 leftovers)."""
        position = self.positions[data]
        new_size = self._snap(position.size + size)
        position.update(size, price, self._feed_datetime(data))   # data.datetime.datetime()
        position.size = new_size
        if not new_size:
            position.price = 0.0
            self._margins[data] = 0.0

    # ------------------------------------------------------------------
    # wallet
    # ------------------------------------------------------------------
    def _cash_flow(self, amount, reason, data=None):
        """The one place the wallet balance changes; records it and any negative episode."""
        if not amount:
            return
        self.cash += amount
        if data is None:
            dt, name = self._bar_datetime(), None
        else:
            state = self._feed_states.get(data) or self._feed_state(data)
            dt = None
            if state.length_line.lencount:
                line, cached = state.datetime_line, state.datetime
                number = line.array[line._idx]
                if cached is not None and cached[0] == number:
                    dt = cached[1]
                elif line._tz is None and number.__class__ is float:
                    dt = number         # the ledger makes the datetime when it is read
                else:
                    dt = self._feed_datetime(data, state)
            name = data._name or state.name or self._feed_name(data)
        self.ledger.record(dt, name, reason, amount, self.cash)
        episodes = self.negative_balance_episodes
        # the usual flow: wallet positive, no episode open
        if self.cash < 0 or (episodes and episodes[-1].end is None):
            self._track_negative_balance(self._feed_datetime(data, state)
                                         if dt.__class__ is float else dt)

    def _track_negative_balance(self, dt):
        episodes = self.negative_balance_episodes
        open_episode = episodes[-1] if episodes and episodes[-1].end is None else None
        if self.cash < 0:
            if open_episode is None:
                episodes.append(NegativeBalanceEpisode(dt, None, self.cash))
            else:
                open_episode.lowest_balance = min(open_episode.lowest_balance, self.cash)
        elif open_episode is not None:
            open_episode.end = dt

    def _bar_datetime(self, data=None):
        feeds = [data] if data is not None else getattr(self, "cerebro", None) and self.cerebro.datas
        stamps = [self._feed_datetime(feed) for feed in feeds or () if len(feed)]
        return max(stamps) if stamps else None

    def _feed_datetime(self, data, state=None):
        """``data.datetime.datetime(0)``, converted once per bar (several cash flows share a bar)."""
        state = state or self._feed_states.get(data) or self._feed_state(data)
        line = state.datetime_line
        number = line.array[line._idx]
        cached = state.datetime
        if cached is None or cached[0] != number:
            # what line.datetime(0) returns, without its frame and idx property
            cached = state.datetime = (number, bt.num2date(number, tz=line._tz))
        return cached[1]

    def _feed_name(self, data):
        if data._name:
            return data._name
        state = self._feed_states.get(data)
        if state is not None and state.name is not None:
            return state.name
        datas = getattr(getattr(self, "cerebro", None), "datas", [])
        for index, feed in enumerate(datas):
            if feed is data:
                name = f"data{index}"
                if state is not None:   # a feed keeps its place in cerebro.datas for the run
                    state.name = name
                return name
        return "data"

    def notify(self, order):
        """Queue a snapshot of ``order`` for the strategy (BackBroker's ``order.clone()``).

        Before an order's first snapshot, its two ``exbits`` deques become a
        list (``executed``: the fills, appended as before) and an empty tuple
        (``created``: nothing is ever added to it). backtrader documents
        ``exbits`` as an iterable, and every snapshot shares these containers;
        but each empty deque is 760 B, and the strategy keeps every snapshot
        (``Strategy._orders``) for the whole run: ~1.4 KiB an order, ~20 B a
        bar of peak memory in the always-in-the-market benchmark (issue 15).
        A snapshot whose ``executed`` equals, field by field, the order's
        previous snapshot's shares it (snapshots are read, never written).
        """
        created = order.created
        if created.exbits.__class__ is _DEQUE:
            created.exbits = ()
            executed = order.executed
            executed.exbits = list(executed.exbits)
        snapshot = order.clone()
        # a snapshot whose fills match the order's previous one (Submitted then Accepted,
        # no fill between) shares that snapshot's executed data: the same values, one
        # OrderData (~300 B) an order less to keep
        previous = created.__dict__.get("_btlev_snapshot_executed")
        executed = snapshot.executed
        if previous is not None and previous.__dict__ == executed.__dict__:
            snapshot.executed = previous
        else:
            created._btlev_snapshot_executed = executed
        self.notifs.append(snapshot)

    def get_notification(self):
        """The next order notification, None when there is none (BackBroker's, which
        raises and catches an IndexError on the usual bar: cerebro asks every bar)."""
        notifications = self.notifs
        return notifications.popleft() if notifications else None

    # ------------------------------------------------------------------
    # value
    # ------------------------------------------------------------------
    def _get_value(self, datas=None, lever=False):
        """Equity = wallet + Σ isolated margins + Σ unrealized PnL, at the close.

        With ``datas``: the positions' market value, size × close (what
        ``order_target_value``/``percent`` compare against), signed.
        """
        if datas is not None:
            return sum(self.positions[data].size * data.close[0] for data in datas)
        while self._cash_addition:
            self._cash_flow(self._cash_addition.popleft(), "deposit")
        equity = self.cash
        notional = 0.0
        marks, states, margins = self._mark_now, self._feed_states, self._margins
        for data, position in self.positions.items():
            size = position.size
            if size:
                mark = marks.get(data) if marks else None     # no mark price: the usual run
                if mark is None:
                    close_line = (states.get(data) or self._feed_state(data)).close_line
                    close = close_line.array[close_line._idx]
                else:
                    close = mark.close
                quantity = abs(size)
                equity += margins[data] + mm.unrealized_pnl(1 if size > 0 else -1, quantity,
                                                             position.price, close)
                notional += quantity * close
        self._value = self._valuelever = equity
        self._valuemkt = self._valuemktlever = equity - self.cash
        self._leverage = notional / equity if equity > 0 else (0.0 if not notional else math.inf)
        self._fundval = equity / self._fundshares if self._fundshares else self._fundval
        return equity

    def value_terms(self):
        """The pieces of the account value as ``_get_value`` adds them now.

        Returns (wallet, [(data, isolated margin, side, |size|, entry price), ...]):
        quote currency, side +1/-1, size in base units, one entry per open
        position in the order they are added, so that the value at a close price
        ``close_d`` of each feed is ``wallet + Σ (margin + unrealized_pnl(side,
        |size|, entry, close_d))``, the float operations of ``_get_value``. None
        while a feed is valued on a mark price (its mark, not its close) or a
        deposit waits to be booked. BarTape reads the value back from these
        (issue 15: no float a bar kept for the equity curve).
        """
        if self._cash_addition:
            return None
        marks, margins = self._mark_now, self._margins
        terms = []
        for data, position in self.positions.items():
            size = position.size
            if size:
                if marks.get(data) is not None:
                    return None
                terms.append((data, margins[data], 1 if size > 0 else -1, abs(size),
                              position.price))
        return self.cash, terms

    # ------------------------------------------------------------------
    # one bar
    # ------------------------------------------------------------------
    def next(self):
        if not (self._toactivate or self.submitted or self._userhist or self.pending or
                self._cross or self._mark_by_data):
            # the usual isolated bar: nothing to activate, judge, expire or fill and no mark
            # price, so of the steps below only the busy ticks' gap, funding and path remain
            busy = self._new_ticks(True)
            if busy:
                self._isolated_steps(busy)
            self._get_value()
            return
        while self._toactivate:
            self._toactivate.popleft().activate()
        if self.submitted and self.p.checksubmit:   # the usual bar: nothing submitted
            self.check_submitted()
        if self._userhist:               # user order history (add_order_history): rare
            self._process_order_history()
        # the order passes below scan self.pending: on the usual bar it is empty
        if self.pending:
            self._expire_orders()
        # the usual isolated bar (no order rests, no mark price): one pass finds the busy feeds
        quiet_check = not (self._cross or self.pending or self._mark_by_data)
        ticks = self._new_ticks(quiet_check)
        if self._mark_by_data:
            self._refresh_marks(ticks)
        if self.pending and self.p.coc:
            self._fill_market_orders(cheat_on_close_only=True)
        if self._cross:
            self._liquidate_cross_on_gap(ticks)
            busy = ticks
        else:
            busy = ticks if quiet_check else self._busy_feeds(ticks)
            for data, tick in busy.items():
                self._liquidate_on_gap(data, tick)
        if self.pending:
            self._fill_market_orders(ticks=ticks)
        for data, tick in busy.items():
            if tick.new_bar:
                self._pay_funding(data)
        if self._cross:
            self._walk_cross_paths(ticks)
        else:
            for data, tick in busy.items():
                self._walk_price_path(data, tick)
        if self.pending:
            self._fill_close_orders()
            for data in ticks:
                self._trail_stops(data)
        self._get_value()

    def _isolated_steps(self, busy):
        """``next``'s gap check, funding and path walk of the ``busy`` ticks (isolated margin,
        no order pending: the market-order fills between them have nothing to do)."""
        for data, tick in busy.items():
            self._liquidate_on_gap(data, tick)
        for data, tick in busy.items():
            if tick.new_bar:
                self._pay_funding(data)
        for data, tick in busy.items():
            self._walk_price_path(data, tick)

    def _new_ticks(self, quiet_check=False):
        """Feed → Tick for every feed that moved since the last call; on a new bar it also
        moves the feed's funding clock (``_FeedState.funding_window``).

        Several feeds may tick unevenly; a replayed bar develops at the same
        length, so the bar's values, not only its length, tell what is new (any
        other feed ticks exactly when its length grows).

        ``quiet_check`` (isolated margin, no order resting, no mark price): only the
        busy ticks (``_busy_feeds``), found in the same pass; a quiet one is not built.
        """
        ticks = {}
        states, positions = self._feed_states, self.positions
        schedules, default_schedule = self._funding_by_data, self._funding
        for data in self.cerebro.datas:
            state = states.get(data) or self._feed_state(data)
            length = state.length_line.lencount        # len(data)
            if not length:
                continue
            line = state.datetime_line
            stamp = line.array[line._idx]
            if data.replaying:
                # a replayed bar develops at the same length and is restamped by each tick:
                # the bar's values, not only its length, tell a new tick
                seen = (length, stamp) + _bar_values(state)
                last = state.last_seen
                if seen == last:
                    continue
                state.last_seen = seen
                new_bar = last is None or last[0] != length
            else:
                # any other feed moves by whole bars: a new tick is a new bar, a longer buffer
                if length == state.last_length:
                    continue
                state.last_length = length
                new_bar = True
            if new_bar:                 # the funding clock moves once per new bar
                schedule = schedules.get(data, default_schedule)
                if schedule is None:
                    state.funding_window, state.funding_due = None, False
                else:
                    self._funding_window(data, state, stamp, schedule)
            if quiet_check:
                position = positions[data]
                size = position.size
                if not size:
                    continue            # flat and no order: no trigger, no funding
            try:
                prices = (data.tick_open, data.tick_high, data.tick_low, data.tick_close)
            except AttributeError:      # a feed without backtrader's tick_* attributes
                prices = (None,)
            if None in prices:
                prices = _tick_prices(data, _bar_values(state))
            if quiet_check:
                reaches = _path_reaches(prices, size,
                                        self._isolated_liquidation_price(data, position))
                if not (reaches or (new_bar and state.funding_due)):
                    continue            # quiet: the gap, funding and path steps change nothing
                ticks[data] = Tick(*prices, new_bar, reaches)
            else:
                ticks[data] = Tick(*prices, new_bar)
        return ticks

    def _busy_feeds(self, ticks):
        """The ticks on which the gap check, funding or the path walk can do something (isolated).

        A feed is quiet on its tick when no order rests (on any feed), it has no
        mark bar now, no funding payment falls due, and its price path stays
        short of the liquidation price (a flat feed: nothing can happen). On a
        quiet tick those three steps would change nothing, so they are skipped:
        the usual bar of a backtest. Feeds keep their order.
        """
        if self.pending:
            return ticks
        busy = {}
        positions, marks, states = self.positions, self._mark_now, self._feed_states
        for data, tick in ticks.items():
            if tick.new_bar and marks.get(data) is not None:
                busy[data] = tick
                continue
            position = positions[data]
            size = position.size
            if not size:
                continue                  # flat and no order: no trigger, no funding
            if tick.new_bar and states[data].funding_due:
                busy[data] = tick         # a payment (or the not-covered warning) is due
                continue
            if _path_reaches(tick[:4], size, self._isolated_liquidation_price(data, position)):
                busy[data] = tick
        return busy

    def _feed_state(self, data):
        """The ``_FeedState`` of ``data``, made on first use."""
        state = self._feed_states.get(data)
        if state is None:
            state = self._feed_states[data] = _FeedState(data)
        return state

    def _expire_orders(self):
        for order in list(self.pending):
            # an earlier expiry's OCO check may already have cancelled (and removed) this one
            if order in self.pending and order.expire():
                self.pending.remove(order)
                self.notify(order)
                self._ococheck(order)
                self._bracketize(order, cancel=True)

    def _run_pending(self, order, execute):
        """Take ``order`` out of pending (so its own OCO check cannot cancel it), run it, put back if alive."""
        index = self.pending.index(order)
        del self.pending[index]
        execute()
        if order.alive():
            self.pending.insert(min(index, len(self.pending)), order)
        elif order.status == Order.Completed:
            self._bracketize(order)

    def _fill_market_orders(self, cheat_on_close_only=False, ticks=None):
        """Fill market (and historical) orders at the tick's open; ``ticks``: feed → Tick."""
        for order in list(self.pending):
            if order not in self.pending or not order.active() or \
                    order.exectype not in _OPEN_EXECTYPES:
                continue
            if order.exectype == Order.Historical:
                if not cheat_on_close_only:
                    self._run_pending(order, lambda: self._try_exec_historical(order))
                continue
            cheat_on_close = self.p.coc and order.info.get("coc", True)
            if cheat_on_close != cheat_on_close_only:
                continue
            data = order.data
            if not cheat_on_close and not self.p.coo and data.datetime[0] <= order.created.dt:
                continue  # market orders fill from the bar after their creation
            tick = (ticks or {}).get(data) or Tick(*_tick_prices(data), new_bar=False)
            self._run_pending(order, lambda: self._try_exec_market(
                order, tick.open, tick.high, tick.low))

    def _fill_close_orders(self):
        for order in list(self.pending):
            if order in self.pending and order.active() and order.exectype == Order.Close:
                self._run_pending(order, lambda: self._try_exec_close(order, order.data.close[0]))

    def _trail_stops(self, data):
        for order in self.pending:
            if order.data is data and order.active() and \
                    order.exectype in (Order.StopTrail, Order.StopTrailLimit):
                order.trailadjust(data.close[0])

    # ------------------------------------------------------------------
    # the intrabar price path
    # ------------------------------------------------------------------
    def _walk_price_path(self, data, tick):
        """Trigger resting orders and the liquidation price in the order the path meets them."""
        open_, high, low, close = tick.open, tick.high, tick.low, tick.close
        position = self.positions[data]
        size = position.size
        if (not tick.new_bar or self._mark_now.get(data) is None) and \
                not (self.pending and self._has_path_orders(data)):
            # only the liquidation price can trigger: skip the walk when the path
            # never reaches it (flat: nothing can; the usual bar of a position: the same)
            if not size:
                return
            if not _path_reaches(tick[:4], size, self._isolated_liquidation_price(data, position)):
                return
        low_first = size > 0 if size else (open_ - low) <= (high - open_)
        path = (open_, low, high, close) if low_first else (open_, high, low, close)
        mark_path = self._mark_path(data, tick, low_first)
        tried = set()
        for number, (segment_start, segment_end) in enumerate(zip(path, path[1:])):
            price = segment_start
            segment = (segment_start, segment_end) if mark_path is None else \
                (segment_start, segment_end, mark_path[number], mark_path[number + 1])
            while True:
                event = self._next_path_event(data, price, segment, tried)
                if event is None:
                    break
                price, order, fill = event
                if order is None:
                    self._liquidate(data, fill)
                    continue
                # a stop-limit may be tried twice: once as a stop, once as a limit
                tried.add((order.ref, order.triggered))
                self._run_pending(order, lambda: self._fill_resting(order, price, tick))

    def _has_path_orders(self, data):
        """Whether ``data`` has a pending stop/limit order (live or not) that the path could fill."""
        return any(order.data is data and order.exectype in _PATH_EXECTYPES
                   for order in self.pending)

    def _next_path_event(self, data, start, segment, tried):
        """(price, order, fill) of the first trigger on start → segment end, or None.

        order None = the liquidation, filled at ``fill``; for an order, fill is None.

        ``segment`` is (trade start, trade end) or, with a mark price,
        (trade start, trade end, mark start, mark end).
        """
        end = segment[1]
        best = None
        for order in self.pending:
            if order.data is not data or not order.active() or \
                    (order.ref, order.triggered) in tried or \
                    order.exectype not in _PATH_EXECTYPES:
                continue
            price = _touch_price(order, start, end)
            if price is not None and (best is None or abs(price - start) < abs(best[0] - start)):
                best = (price, order, None)
        liquidation = self._liquidation_touch(data, start, end) if len(segment) == 2 else \
            self._mark_liquidation_touch(data, start, segment)
        if liquidation is not None and (best is None or
                                        abs(liquidation[0] - start) < abs(best[0] - start)):
            best = (liquidation[0], None, liquidation[1])
        return best

    def _liquidation_touch(self, data, start, end):
        """(path price, fill price) where the trade path reaches the liquidation price, or None."""
        size = self.positions[data].size
        if not size:
            return None
        level = self.liquidation_price(data)
        if size > 0:
            touch = start if start <= level else (level if end <= level else None)
        else:
            touch = start if start >= level else (level if end >= level else None)
        return None if touch is None else (touch, touch)

    def _fill_resting(self, order, touch, tick):
        """Fill a stop/limit touched at ``touch`` (backtrader's prices and slippage)."""
        at_open = touch == tick.open
        is_stop = order.exectype in (Order.Stop, Order.StopTrail) or (
            order.exectype in (Order.StopLimit, Order.StopTrailLimit) and not order.triggered)
        if order.exectype in (Order.StopLimit, Order.StopTrailLimit) and not order.triggered:
            order.triggered = True  # the stop fired: from here on it is a limit order
            limit = order.created.pricelimit
            if (order.isbuy() and touch > limit) or (not order.isbuy() and touch < limit):
                return  # not marketable yet; the rest of the path may reach the limit
            is_stop = False
        if is_stop:
            slip = self._slip_up(tick.high, touch, doslip=self.p.slip_open or not at_open) \
                if order.isbuy() else \
                self._slip_down(tick.low, touch, doslip=self.p.slip_open or not at_open)
            touch = touch if slip is None else slip
        self._execute(order, ago=0, price=touch)

    # ------------------------------------------------------------------
    # liquidation
    # ------------------------------------------------------------------
    def _liquidate_on_gap(self, data, tick):
        """Liquidate at the tick's open when it opened past the liquidation price."""
        position = self.positions[data]
        size = position.size
        if size and tick.may_gap:
            level = self._isolated_liquidation_price(data, position)
            mark = self._mark_now.get(data) if tick.new_bar else None
            trigger = tick.open if mark is None else mark.open   # the mark's open, if any
            if (size > 0 and trigger <= level) or (size < 0 and trigger >= level):
                self._liquidate(data, tick.open)

    def _liquidate(self, data, fill_price):
        """Close ``data``'s position at ``fill_price`` as the exchange's liquidation engine."""
        position = self.positions[data]
        side = 1 if position.size > 0 else -1
        size, entry_price, margin = abs(position.size), position.price, self._margins[data]
        liquidation_level = self.liquidation_price(data)
        bankruptcy_level = mm.bankruptcy_price(side, size, entry_price, margin)
        outcome = mm.liquidation_outcome(side, size, entry_price, margin, fill_price,
                                         self.p.liquidation_fee_rate)
        absorbed = outcome.deficit if self.p.negative_balance == "absorb" else 0.0
        self._settle_liquidation(data, outcome, absorbed)
        self._liquidation_order(data, side, size, entry_price, fill_price,
                                commission=outcome.fee - absorbed)
        self._cancel_feed_orders(data)
        self.liquidations.append(LiquidationEvent(
            dt=data.datetime.datetime(0), opened_dt=self._opened_dt.pop(data, None),
            data=self._feed_name(data), side="long" if side > 0 else "short", size=size,
            entry_price=entry_price, liquidation_price=liquidation_level,
            bankruptcy_price=bankruptcy_level, fill_price=fill_price,
            margin_lost=outcome.margin_lost, fee=outcome.fee, deficit=outcome.deficit,
            margin_mode="isolated"))

    def _settle_liquidation(self, data, outcome, absorbed):
        """Margin is gone; what returns goes to the wallet, fee and deficit to their payer."""
        self._margins[data] = 0.0
        self._cash_flow(outcome.returned, "liquidation_return", data)
        self._cash_flow(-(outcome.deficit - absorbed), "deficit", data)
        self.insurance_fund += outcome.fee - absorbed

    def _liquidation_order(self, data, side, size, entry_price, fill_price, commission):
        """A broker-made market order closing the position, seen by strategies and analyzers."""
        owner = self._last_owner.get(data) or self.cerebro.runningstrats[0]
        order_class = SellOrder if side > 0 else BuyOrder
        order = order_class(owner=owner, data=data, size=size, price=fill_price,
                            exectype=Order.Market)
        self._ocoize(order, None)
        order.addinfo(liquidation=True)
        order.submit(self)
        order.accept(self)
        self.orders.append(order)
        comminfo = self.getcommissioninfo(data)
        closed = -side * size
        pnl = mm.unrealized_pnl(side, size, entry_price, fill_price)
        self._update_position(data, closed, fill_price)
        order.execute(data.datetime[0], closed, fill_price,
                      closed, comminfo.getvaluesize(side * size, entry_price), commission,
                      0.0, 0.0, 0.0, 0.0, pnl, 0.0, 0.0)
        order.addcomminfo(comminfo)
        self.notify(order)
        return order

    def _cancel_feed_orders(self, data):
        """Cancel every other open order of the feed, as exchanges do on liquidation."""
        for order in [o for o in self.submitted if o.data is data]:
            self.submitted.remove(order)
            order.cancel()
            self.notify(order)
        for order in [o for o in self.pending if o.data is data]:
            self.cancel(order)

    # ------------------------------------------------------------------
    # cross margin: one account behind every position
    # ------------------------------------------------------------------
    def _cross_prices(self):
        """Feed → the price positions are valued at now (the mark's close, else the close)."""
        return {data: self._mark_close(data) for data in self.positions if len(data)}

    def _open_positions(self):
        """(feed, side, size, entry) of every open position, in feed order."""
        return [(data, 1 if position.size > 0 else -1, abs(position.size), position.price)
                for data, position in ((d, self.positions[d]) for d in self.cerebro.datas)
                if position.size]

    def _cross_others(self, data, prices):
        """(Σ maintenance margin, Σ unrealized PnL) of every position but ``data``'s, at ``prices``."""
        maintenance = unrealized = 0.0
        for other, side, size, entry in self._open_positions():
            if other is not data:
                price = prices[other]
                maintenance += mm.position_maintenance_margin(size, price, self._tiers_for(other))
                unrealized += mm.unrealized_pnl(side, size, entry, price)
        return maintenance, unrealized

    def _cross_available(self, data, prices):
        """WB − MM_others + uPnL_others: what ``data``'s position may lose, quote currency."""
        maintenance, unrealized = self._cross_others(data, prices)
        return self.cash - maintenance + unrealized

    def _cross_liquidation_price(self, data, prices):
        """Cross LP of ``data``'s position, every other position held at ``prices``."""
        position = self.positions[data]
        maintenance, unrealized = self._cross_others(data, prices)
        price, _tier = mm.tiered_cross_liquidation_price(
            1 if position.size > 0 else -1, abs(position.size), position.price, self.cash,
            maintenance, unrealized, self._tiers_for(data))
        return price

    def _cross_shortfall(self, data, new_size, price, position_size, entry_price, opened,
                         wallet_after, others):
        """Σ initial margin − (wallet + Σ uPnL) after a fill that opens ``opened`` at ``price``.

        > 0 means the order cannot open. Initial margin is notional / leverage
        of every position (this feed's at the fill price, the others at their
        mark close); ``others`` overrides the other feeds' (size, entry, …).
        """
        if not new_size:
            return -math.inf
        if position_size and (position_size > 0) == (new_size > 0) and abs(new_size) > abs(position_size):
            entry_after = (abs(position_size) * entry_price + abs(opened) * price) / abs(new_size)
        elif position_size and (position_size > 0) == (new_size > 0):
            entry_after = entry_price
        else:
            entry_after = price  # from flat, or reversed
        side = 1 if new_size > 0 else -1
        initial = mm.initial_margin(abs(new_size) * price, self.get_leverage(data))
        unrealized = mm.unrealized_pnl(side, abs(new_size), entry_after, price)
        others = others or {}
        for other in set(self.positions) | set(others):
            if other is data or not len(other):
                continue
            size, entry = others[other][:2] if other in others else \
                (self.positions[other].size, self.positions[other].price)
            if size:
                close = self._mark_close(other)
                initial += mm.initial_margin(abs(size) * close, self.get_leverage(other))
                unrealized += mm.unrealized_pnl(1 if size > 0 else -1, abs(size), entry, close)
        return initial - (wallet_after + unrealized)

    def _cross_legs(self, paths, number):
        """``CrossLeg`` of every open position on path segment ``number`` (feed → points)."""
        legs = []
        for data, side, size, entry in self._open_positions():
            points = paths[data]
            legs.append((data, mm.CrossLeg(side, size, entry, points[number], points[number + 1],
                                           self._tiers_for(data))))
        return legs

    def _liquidate_cross_on_gap(self, ticks):
        """Liquidate the whole account at the opens when it opens at or below maintenance."""
        if not self._open_positions():
            return
        marks, fills = self._cross_prices(), self._cross_prices()
        for data, tick in ticks.items():
            mark = self._mark_now.get(data) if tick.new_bar else None
            marks[data] = tick.open if mark is None else mark.open  # the trigger: mark's open
            fills[data] = tick.open                                 # the fill: the trade open
        paths = {data: (price, price) for data, price in marks.items()}
        legs = [leg for _data, leg in self._cross_legs(paths, 0)]
        if mm.cross_margin_surplus(self.cash, legs, 0.0) <= 0:
            self._liquidate_cross(fills)

    def _cross_paths(self, ticks):
        """(trade paths, mark paths): feed → (open, first extreme, other extreme, close).

        The first extreme is the adverse one of the position held (the low of
        a long), the nearer one when flat, as in isolated mode; a feed that did
        not tick stays at its close. The mark path (``set_mark_price``) runs in
        step with the trade path, the same extreme first; without a mark it is
        the trade path.
        """
        paths, marks = {}, {}
        for data in self.positions.keys() | ticks.keys():
            if not len(data):
                continue
            tick = ticks.get(data)
            if tick is None:
                paths[data] = (data.close[0],) * 4
                marks[data] = (self._mark_close(data),) * 4
                continue
            size = self.positions[data].size
            low_first = size > 0 if size else (tick.open - tick.low) <= (tick.high - tick.open)
            paths[data] = (tick.open, tick.low, tick.high, tick.close) if low_first else \
                (tick.open, tick.high, tick.low, tick.close)
            marks[data] = self._mark_path(data, tick, low_first) or paths[data]
        return paths, marks

    def _walk_cross_paths(self, ticks):
        """Intrabar phase of a cross account: all feeds' paths walked together.

        Segment by segment (open → first extreme → other extreme → close)
        every feed moves linearly in one parameter θ ∈ [0, 1]. Resting orders
        and the account's liquidation trigger in θ order, an order winning a
        tie (today's rule); after a fill θ goes on from where it filled, with
        the new positions. The account is valued on the mark paths (the trade
        paths without a mark price). A liquidation fills every position at its
        mark at that θ (the level where the account met maintenance), or at its
        trade price when the account was already past it where θ started, and
        ends the bar's path (nothing is left open).
        """
        paths, marks = self._cross_paths(ticks)
        tried = set()
        for number in range(3):
            theta = 0.0
            while True:
                event = self._next_cross_event(paths, marks, number, theta, tried)
                if event is None:
                    break
                reached, order, price = event
                if order is None:
                    fills_on = paths if reached == theta else marks
                    self._liquidate_cross({data: points[number] + reached * (
                        points[number + 1] - points[number]) for data, points in fills_on.items()})
                    return
                theta = reached
                tried.add((order.ref, order.triggered))
                tick = ticks.get(order.data) or Tick(*_tick_prices(order.data), new_bar=False)
                self._run_pending(order, lambda: self._fill_resting(order, price, tick))

    def _next_cross_event(self, paths, marks, number, theta, tried):
        """(θ, order, price) of the first trigger on segment ``number`` from ``theta``; order None = liquidation."""
        best = None
        for order in self.pending:
            points = paths.get(order.data)
            if points is None or not order.active() or (order.ref, order.triggered) in tried or \
                    order.exectype not in _PATH_EXECTYPES:
                continue
            start, end = points[number], points[number + 1]
            touch = _touch_price(order, start + theta * (end - start), end)
            if touch is None:
                continue
            at = theta if end == start else max(theta, (touch - start) / (end - start))
            if best is None or at < best[0]:
                best = (at, order, touch)
        legs = [leg for _data, leg in self._cross_legs(marks, number)]
        if legs:
            liquidation = mm.cross_liquidation_theta(self.cash, legs, theta)
            if liquidation is not None and (best is None or liquidation < best[0]):
                best = (liquidation, None, None)
        return best

    def _liquidate_cross(self, prices):
        """Close every position at ``prices`` (feed → fill), cancel every order, split the money.

        One ``LiquidationEvent`` per position, all at the same ``dt``; fee,
        wallet lost and deficit are split as ``margin.cross_liquidation_split``
        says; the deficit goes to the insurance fund ('absorb') or stays in the
        wallet ('carry').
        """
        closing = self._open_positions()
        fills = {data: prices[data] for data, *_rest in closing}
        pnls = [mm.unrealized_pnl(side, size, entry, fills[data])
                for data, side, size, entry in closing]
        maintenance = [mm.position_maintenance_margin(size, fills[data], self._tiers_for(data))
                       for data, _side, size, _entry in closing]
        shares = mm.cross_liquidation_split(self.cash, pnls, maintenance,
                                            [size * fills[data] for data, _s, size, _e in closing],
                                            self.p.liquidation_fee_rate)
        levels = {data: (self._cross_liquidation_price(data, fills),
                         mm.cross_bankruptcy_price(side, size, entry, self.cash,
                                                   self._cross_others(data, fills)[1]))
                  for data, side, size, entry in closing}
        absorb = self.p.negative_balance == "absorb"
        flows = sorted(((share.pnl - share.fee + (share.deficit if absorb else 0.0), data)
                        for (data, *_rest), share in zip(closing, shares)),
                       key=lambda flow: -flow[0])
        for amount, data in flows:  # gains first: the wallet never dips below where it ends
            self._cash_flow(amount, "cross_liquidation", data)
        dt = self._bar_datetime()
        for (data, side, size, entry), share in zip(closing, shares):
            absorbed = share.deficit if absorb else 0.0
            self.insurance_fund += share.fee - absorbed
            self._liquidation_order(data, side, size, entry, fills[data],
                                    commission=share.fee - absorbed)
            self.liquidations.append(LiquidationEvent(
                dt=dt, opened_dt=self._opened_dt.pop(data, None), data=self._feed_name(data),
                side="long" if side > 0 else "short", size=size, entry_price=entry,
                liquidation_price=levels[data][0], bankruptcy_price=levels[data][1],
                fill_price=fills[data], margin_lost=share.margin_lost, fee=share.fee,
                deficit=share.deficit, margin_mode="cross"))
        for data in self.cerebro.datas:
            self._cancel_feed_orders(data)

    # ------------------------------------------------------------------
    # perpetuals: funding and the mark price
    # ------------------------------------------------------------------
    def set_funding_rates(self, data, rates):
        """Funding of ``data``: None (off), a rate, a Series by UTC settlement time, or a CSV path.

        Overrides the ``funding_rates`` param for this feed; call before ``run()``.
        """
        schedule = resolve_funding(rates, self.p.funding_interval_hours,
                                   f"funding rates of {self._feed_name(data)}")
        self._funding_by_data[data] = schedule

    def funding_schedule(self, data):
        """The ``FundingSchedule`` that applies to ``data``, or None when funding is off."""
        if data in self._funding_by_data:
            return self._funding_by_data[data]
        return self._funding

    def set_mark_price(self, data, mark):
        """Liquidate and value ``data``'s position on a mark price instead of the trade price.

        ``mark``: a DataFrame with open/high/low/close on ``data``'s timestamps,
        a Series of mark closes, or a backtrader feed added to cerebro. Bars the
        mark lacks use the trade price (one ``MarkPriceWarning``). Orders still
        fill on the trade price.
        """
        self._mark_by_data[data] = MarkSource(mark, f"mark price of {self._feed_name(data)}")

    def has_mark_price(self, data):
        """True when ``data`` is valued and liquidated on a mark price (``set_mark_price``)."""
        return data in self._mark_by_data

    def mark_bar(self, data):
        """OHLC (``MarkBar``) that margin uses for ``data``'s current bar: the mark's, else the trade's."""
        mark = self._mark_now.get(data)
        if mark is not None:
            return mark
        return MarkBar(data.open[0], data.high[0], data.low[0], data.close[0])

    def _mark_close(self, data):
        mark = self._mark_now.get(data)
        if mark is not None:
            return mark.close
        state = self._feed_states.get(data) or self._feed_state(data)
        close_line = state.close_line
        return close_line.array[close_line._idx]

    def _refresh_marks(self, ticks):
        """This bar's mark OHLC of every ticking feed that has a mark price (None: trade price)."""
        for data, tick in ticks.items():
            source = self._mark_by_data.get(data)
            if source is None or not tick.new_bar:
                continue
            mark = source.bar(data)
            if mark is None:
                self._warn_once(("mark", data), MarkPriceWarning,
                                f"{source.label} has no bar at {data.datetime.datetime(0)}: "
                                "the trade price is used on such bars")
            self._mark_now[data] = mark

    def _warn_once(self, key, category, message):
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, category, stacklevel=3)

    def _pay_funding(self, data):
        """Pay every funding time of ``data``'s new bar (see the class docstring, step 2b)."""
        schedule = self._funding_by_data.get(data, self._funding)
        state = self._feed_states[data]
        window = state.funding_window
        if schedule is None or window is None or not state.funding_due:
            return                       # no funding time in the bar (payment_due)
        position = self.positions[data]
        if not position.size:
            return
        start, end = window
        # payment_due said: a funding time lies in [start, end), or the rates miss it
        if not schedule.covers(start, end):
            self._warn_once(("funding", data), FundingWarning,
                            f"funding rates ({schedule.label}) do not cover "
                            f"{data.datetime.datetime(0)}: no funding charged there")
            return
        payments = schedule.between(start, end)
        side, size = (1 if position.size > 0 else -1), abs(position.size)
        mark = self._mark_now.get(data)
        if mark is None:
            open_line = state.open_line
            mark_price = open_line.array[open_line._idx]
        else:
            mark_price = mark.open
        for when, rate in payments:
            amount = mm.funding_payment(side, size, mark_price, rate)
            self._book_funding(data, when, position.size, mark_price, rate, amount)

    def _funding_window(self, data, state, stamp, schedule):
        """Set ``state.funding_window``, [start, end) in POSIX seconds of the funding times
        ``data``'s new bar owns, and ``state.funding_due``: whether that window holds a
        payment of ``schedule`` (``data``'s ``FundingSchedule``) or lies outside its rates
        (the not-covered warning). ``stamp``: the bar's datetime (day number).

        A bar owns [its start, its start + bar length); the bar length is the
        smallest spacing seen so far (the next bar's spacing on the first bar
        of a preloaded feed). Times skipped in a data gap go to the next bar.
        ``payment_due`` is not asked while the window lies within the quiet
        stretch a previous answer found (``quiet_until``).
        """
        bar_start = day_number_to_seconds(stamp)
        previous = state.previous_bar_start
        state.previous_bar_start = bar_start
        length = state.bar_seconds
        # paid up to this bar's start (never None then: previous and length are set) and one
        # bar length after the last: the usual bar, whose window the steps below would give
        if state.funding_paid_until == bar_start and bar_start - previous == length:
            start = bar_start
            end = state.funding_paid_until = bar_start + length
        else:
            if previous is not None and bar_start > previous:
                step = bar_start - previous
                length = step if length is None or step < length else length
            elif length is None and len(data) < data.buflen():
                length = day_number_to_seconds(data.datetime[1]) - bar_start
            if length is not None and length > 0:
                state.bar_seconds = length
            else:
                length = None
            start = state.funding_paid_until or bar_start
            end = max(start, bar_start + (length or 1))
            state.funding_paid_until = end if length else None
        state.funding_window = start, end
        quiet_from, quiet_until = state.funding_quiet
        if quiet_from <= start and end <= quiet_until:
            state.funding_due = False
            return
        due = state.funding_due = schedule.payment_due(start, end)
        if not due:
            state.funding_quiet = start, schedule.quiet_until(start)

    def _book_funding(self, data, when, signed_size, mark_price, rate, amount):
        """Record one payment: ``funding`` in the wallet; in isolated mode the isolated margin bears it."""
        if self._cross:                  # cross margin: the shared wallet pays
            self._cash_flow(amount, "funding", data)
        elif amount > 0:
            self._cash_flow(amount, "funding", data)
            self._fund_from_isolated_margin(data, amount)
        else:                            # the margin first: the wallet never dips on the way
            self._fund_from_isolated_margin(data, amount)
            self._cash_flow(amount, "funding", data)
        # positional: FundingPayment(dt, data, size, mark_price, rate, amount), ~0.3 us less
        self.funding_payments.append(FundingPayment(
            _UNIX_EPOCH + datetime.timedelta(0, when), self._feed_name(data), signed_size,
            mark_price, rate, amount))

    def _fund_from_isolated_margin(self, data, amount):
        """Isolated mode: the position's isolated margin pays (or keeps) the funding ``amount``.

        Rule followed: at each funding time the payment is deducted from (or
        added to) the isolated position margin, which moves the liquidation
        price (AscendEX "What is position margin", isolated margin mode, read
        2026-12-01). The wallet gets back what ``funding`` took from it
        (``margin_funding``), so the ledger still adds up to the wallet.

        A payment larger than the margin takes it below zero; a position in
        profit then stays open (its liquidation price moves past the entry)
        until margin + uPnL falls to maintenance. Bybit's help page "Position
        margin" (isolated margin mode, read 2026-12-02) describes that state,
        a position margin below zero from funding deductions with the position
        in unrealized profit; Bybit takes funding from the available balance
        first, which this model does not.
        """
        self._cash_flow(-amount, "margin_funding", data)
        self._margins[data] += amount

    def _mark_path(self, data, tick, low_first):
        """The mark's path in step with the trade path (same extreme first), or None."""
        mark = self._mark_now.get(data) if tick.new_bar else None
        if mark is None:
            return None
        if low_first:
            return (mark.open, mark.low, mark.high, mark.close)
        return (mark.open, mark.high, mark.low, mark.close)

    def _mark_liquidation_touch(self, data, price, segment):
        """(trade-path point, fill) where the mark reaches the liquidation price here, or None.

        The mark moves in proportion with the trade path along the segment.
        Already past the level at ``price``: liquidated there, at the trade
        price (a gap); reached later: at the liquidation price.
        """
        size = self.positions[data].size
        if not size:
            return None
        level = self.liquidation_price(data)
        trade_start, trade_end, mark_start, mark_end = segment
        span = trade_end - trade_start
        walked = (price - trade_start) / span if span else 0.0
        mark_now = mark_start + walked * (mark_end - mark_start)
        beyond = (lambda mark: mark <= level) if size > 0 else (lambda mark: mark >= level)
        if beyond(mark_now):
            return price, price
        if not beyond(mark_end):
            return None
        reached = walked + (mark_now - level) / (mark_now - mark_end) * (1.0 - walked)
        return trade_start + reached * span, level
