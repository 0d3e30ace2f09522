"""RiskSizer: size by the loss at the stop, and refuse a stop the exchange would never fill.

Sizing rule (units: prices in quote currency per base unit, sizes in base units, money in
quote currency, rates as fractions, side +1 long / -1 short)::

    stop price          stop   = entry * (1 - side * stop_loss)
    loss per base unit  loss   = entry * stop_loss + fee_rate * (entry + stop)
                                 (the move to the stop, plus the taker fee on entry and exit)
    by risk             size_r = risk_per_trade * equity / loss
    by margin           size_m = max_margin_fraction * equity / (entry * (1/leverage + fee_rate))
                                 (margin + entry fee within that share of equity)
    by the tier table   size_t = largest notional the brackets allow at this leverage / entry
    size                = min(size_r, size_m, size_t), floored to the broker's lot (one lot
                          less when that reaches the tier cap: a bracket holds [floor, cap))

Refusal: with the size and margin = size * entry / leverage, the position's liquidation price
comes from the broker's own formula (``broker.margin.tiered_liquidation_price``). A long whose
stop is at or below it, or a short whose stop is at or above it, could never be stopped out:
the exchange liquidates first. Such an entry gets size 0 and an :class:`EntryRefusal` record.
In cross margin (``MarginBroker(margin_mode="cross")``) the price is the cross one
(``tiered_cross_liquidation_price``: the wallet and the other positions back this one).

``entry`` is the signal bar's close (the order fills at the next open; the strategies place
the stop at that fill's price times the same fraction, and with a flat maintenance rate the
liquidation price is the same fraction of the entry at any price).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import backtrader as bt

from ..broker import margin as mm

STOP_BEYOND_LIQUIDATION = "stop_beyond_liquidation"
BELOW_LOT_SIZE = "below_lot_size"


@dataclass(frozen=True)
class RiskSize:
    """Outcome of :func:`risk_position_size`.

    size [base units, >= 0, 0 when refused]; wanted [base units before refusal];
    limited_by: 'risk', 'margin' or 'tiers'; stop_price and liquidation_price [quote per
    base; liquidation_price None with no tier table]; refusal: None or a reason constant.
    """

    size: float
    wanted: float
    limited_by: str
    stop_price: float
    liquidation_price: float | None
    refusal: str | None


def max_notional_for_leverage(tiers, leverage: float) -> float:
    """Largest notional [quote] a position may reach at ``leverage``: the cap of the last
    bracket, counted from notional 0, whose max leverage is at least ``leverage`` (0.0 when
    even the first bracket forbids it; ``inf`` when every bracket allows it)."""
    cap = 0.0
    for tier in tiers:
        if tier.max_leverage < leverage:
            break
        cap = tier.notional_cap
    return cap


def risk_position_size(side: int, equity: float, entry_price: float, stop_loss: float,
                       risk_per_trade: float, fee_rate: float, leverage: float, *,
                       tiers=None, lot_size: float | None = None,
                       max_margin_fraction: float = 1.0, cross_account=None) -> RiskSize:
    """Size whose loss at the stop, fees included, is ``risk_per_trade`` of ``equity``.

    See the module docstring for the formulas. ``tiers`` None means no margin model (a
    plain broker): no tier cap and no liquidation check. ``lot_size`` None keeps the size
    unrounded. ``cross_account`` None: isolated margin (the position's margin is its
    initial margin, size * entry / leverage); in cross margin, a tuple (wallet balance,
    maintenance margin of the other positions, their unrealized PnL) [quote currency] for
    ``broker.margin.tiered_cross_liquidation_price``.

    Example: equity 10,000, long at 20,000, stop 5 %, fee 0.04 %, risk 1 %, 5x:
    loss = 20,000 * 0.05 + 0.0004 * (20,000 + 19,000) = 1,015.6 per BTC,
    size = 100 / 1,015.6 = 0.09846 -> 0.098 BTC on a 0.001 lot.
    """
    if side not in (mm.LONG, mm.SHORT):
        raise ValueError(f"side must be +1 or -1, got {side!r}")
    stop_price = entry_price * (1 - side * stop_loss)
    if not (equity > 0 and entry_price > 0):
        return RiskSize(0.0, 0.0, "risk", stop_price, None, None)
    loss_per_unit = entry_price * stop_loss + fee_rate * (entry_price + stop_price)
    candidates = {
        "risk": risk_per_trade * equity / loss_per_unit,
        "margin": max_margin_fraction * equity / (entry_price * (1 / leverage + fee_rate)),
    }
    notional_cap = max_notional_for_leverage(tiers, leverage) if tiers is not None else math.inf
    if tiers is not None:
        candidates["tiers"] = notional_cap / entry_price
    limited_by = min(candidates, key=candidates.get)
    wanted = candidates[limited_by]
    if lot_size is not None:
        wanted = mm.floor_to_lot(wanted, lot_size)
    if wanted * entry_price >= notional_cap:      # brackets hold [floor, cap): stay below it
        wanted = mm.floor_to_lot(wanted - lot_size, lot_size) if lot_size is not None \
            else wanted * (1 - mm.RELATIVE_TOLERANCE)
    if wanted <= 0:
        return RiskSize(0.0, 0.0, limited_by, stop_price, None, BELOW_LOT_SIZE)
    liquidation = None
    if tiers is not None:
        if cross_account is None:
            liquidation, _tier = mm.tiered_liquidation_price(
                side, wanted, entry_price, mm.initial_margin(wanted * entry_price, leverage),
                tiers)
        else:
            wallet, other_maintenance, other_pnl = cross_account
            liquidation, _tier = mm.tiered_cross_liquidation_price(
                side, wanted, entry_price, wallet, other_maintenance, other_pnl, tiers)
        if side * (stop_price - liquidation) <= 0:
            return RiskSize(0.0, wanted, limited_by, stop_price, liquidation,
                            STOP_BEYOND_LIQUIDATION)
    return RiskSize(wanted, wanted, limited_by, stop_price, liquidation, None)


def refusal_summary(count: int, stop_loss: float, leverage: float) -> str:
    """'12 entries refused: stop 5 % beyond liquidation at 25x' (count of refused entries)."""
    noun = "entry" if count == 1 else "entries"
    return (f"{count} {noun} refused: stop {stop_loss * 100:g} % beyond liquidation at "
            f"{leverage:g}x")


def row_refusal_summary(row: dict) -> str | None:
    """:func:`refusal_summary` of a metrics row (``entries_refused``), None when there are none."""
    count = row.get("entries_refused") or 0
    if not count:
        return None
    try:
        stop_loss = json.loads(row.get("strategy_params") or "{}").get("stop_loss")
    except (TypeError, ValueError):
        stop_loss = None
    if stop_loss is None:
        return f"{count} entries refused: stop beyond liquidation at {row['leverage']:g}x"
    return refusal_summary(int(count), float(stop_loss), float(row["leverage"]))


@dataclass(frozen=True)
class EntryRefusal:
    """An entry the sizer gave size 0, as the strategy and analyzers are told of it.

    dt: bar time (ISO-8601, naive UTC); data: feed name; side +1/-1; leverage [x];
    stop_loss [fraction of entry]; entry_price, stop_price, liquidation_price [quote per
    base]; size: what the entry would have been [base units]; reason:
    ``stop_beyond_liquidation`` or ``below_lot_size``.
    """

    dt: str
    data: str
    side: int
    leverage: float
    stop_loss: float
    entry_price: float
    stop_price: float
    liquidation_price: float | None
    size: float
    reason: str

    @property
    def message(self) -> str:
        """One line for people, e.g. 'entry refused: stop 5 % beyond liquidation at 25x'."""
        if self.reason == STOP_BEYOND_LIQUIDATION:
            return (f"entry refused: stop {self.stop_loss * 100:g} % beyond liquidation at "
                    f"{self.leverage:g}x (stop {self.stop_price:.2f}, liquidation "
                    f"{self.liquidation_price:.2f})")
        return f"entry refused: the size at {self.leverage:g}x is below one lot"

    def to_dict(self) -> dict:
        """JSON-ready fields plus ``message``."""
        return {**asdict(self), "message": self.message}


class RiskSizer(bt.Sizer):
    """Size so that a stop-out loses ``risk_per_trade`` of equity, at the feed's leverage.

    The rule and the refusal are in :mod:`sizers.risk`. Equity is ``broker.getvalue()``,
    the fee rate the feed's commission (a fraction of notional), the leverage, tier table
    and lot the broker's (``MarginBroker``); with a plain ``BackBroker``: leverage 1, no
    tiers, no liquidation check.

    A refused entry returns 0 and appends an :class:`EntryRefusal` to ``refusals``; the
    strategy's ``notify_refusal(refusal)`` and every analyzer's ``notify_refusal(refusal)``
    are called when they exist.

    Params
    ------
    risk_per_trade : float, default 0.01
        Share of equity lost when the stop fills [fraction, in (0, 1)].
    stop_loss : float, default 0.05
        Stop distance [fraction of the entry price, in (0, 1)].
    max_margin_fraction : float, default 0.95
        Margin plus entry fee may use at most this share of equity [fraction, (0, 1]]; the
        rest is room for the price to move between the signal and the fill.
    """

    params = (("risk_per_trade", 0.01), ("stop_loss", 0.05), ("max_margin_fraction", 0.95))

    def __init__(self):
        for name, high_open in (("risk_per_trade", True), ("stop_loss", True),
                                ("max_margin_fraction", False)):
            value = getattr(self.p, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or value <= 0 or value > 1 or \
                    (high_open and value == 1):
                raise ValueError(f"RiskSizer: {name} must be a fraction in (0, 1"
                                 f"{')' if high_open else ']'}, got {value!r}")
        self.refusals: list[EntryRefusal] = []

    def _getsizing(self, comminfo, cash, data, isbuy):
        side = mm.LONG if isbuy else mm.SHORT
        broker = self.broker
        entry = float(data.close[0])
        leverage = _leverage(broker, data)
        fee_rate = comminfo.getcommission(1.0, entry) / entry if entry > 0 else 0.0
        # the feed's own brackets (MarginBroker.set_tiers), else the broker's default table
        tiers = broker.tiers_for(data) if hasattr(broker, "tiers_for") else None
        params = getattr(broker, "p", None)
        lot = getattr(params, "lot_size", None)
        cross = _cross_account(broker, data, self.strategy.datas) \
            if getattr(params, "margin_mode", "isolated") == "cross" else None
        plan = risk_position_size(side, broker.getvalue(), entry, self.p.stop_loss,
                                  self.p.risk_per_trade, fee_rate, leverage, tiers=tiers,
                                  lot_size=lot, max_margin_fraction=self.p.max_margin_fraction,
                                  cross_account=cross)
        if plan.refusal is not None:
            self._refuse(data, side, leverage, entry, plan)
        return plan.size

    def _refuse(self, data, side, leverage, entry, plan: RiskSize) -> None:
        refusal = EntryRefusal(
            dt=bt.num2date(data.datetime[0]).isoformat(), data=data._name or "data0",
            side=side, leverage=float(leverage), stop_loss=float(self.p.stop_loss),
            entry_price=entry, stop_price=plan.stop_price,
            liquidation_price=plan.liquidation_price, size=plan.wanted, reason=plan.refusal)
        self.refusals.append(refusal)
        strategy = self.strategy
        hook = getattr(strategy, "notify_refusal", None)
        if callable(hook):
            hook(refusal)
        for analyzer in getattr(strategy, "analyzers", []):
            hook = getattr(analyzer, "notify_refusal", None)
            if callable(hook):
                hook(refusal)


def _cross_account(broker, data, datas) -> tuple[float, float, float]:
    """(wallet, other positions' maintenance margin, their unrealized PnL) at the closes.

    The wallet counts ``data``'s own position as closed at its close (the entry order
    reverses or adds to it), before fees.
    """
    wallet = broker.getcash()
    other_maintenance = other_pnl = 0.0
    for feed in datas:
        position = broker.getposition(feed)
        if not position.size:
            continue
        pnl = position.size * (feed.close[0] - position.price)
        if feed is data:
            wallet += pnl
        else:
            other_maintenance += broker.maintenance_margin(feed)
            other_pnl += pnl
    return wallet, other_maintenance, other_pnl


def _leverage(broker, data) -> float:
    try:
        return float(broker.get_leverage(data))
    except (AttributeError, TypeError):   # BackBroker: no per-feed leverage, no margin
        return 1.0
