"""Pure margin math for linear (USDⓈ-M style) perpetual futures, isolated and cross margin.

No backtrader here: every function takes all its inputs as arguments and
returns numbers, so each formula lives in exactly one place and is tested by
hand-computed values.

Units used throughout
---------------------
=========================  ==================================================
side                       +1 for a long, -1 for a short
size                       position quantity in base units (BTC), positive
price, entry_price         quote currency per base unit (USDT per BTC)
margin                     isolated margin of the position, quote currency
notional                   size * price, quote currency
maintenance_margin_rate    fraction of notional (0.005 = 0.5 %)
maintenance_amount         tier deduction in quote currency (Binance "cum")
leverage                   notional / initial margin (10 = 10x)
=========================  ==================================================

Formulas (Binance USDⓈ-M "liquidation price", one-way mode, isolated margin,
read 2026-11 from the exchange's published formula and freqtrade's
implementation of it):

* maintenance margin      MM = notional * mmr - maintenance_amount
* liquidation price       margin + side*size*(LP - entry) = size*LP*mmr - amount
                          => LP = (margin + amount - side*size*entry)
                                  / (size*mmr - side*size)
* bankruptcy price        margin + side*size*(BP - entry) = 0
                          => BP = entry - side*margin/size

Cross margin (Binance USDⓈ-M "How to Calculate Liquidation Price of USDⓈ-M
Futures Contracts", binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93,
one-way mode, read 2026-12-01) is the same equation with the wallet in place of
the isolated margin, less what the other positions need and plus what they gain:

* cross liquidation price LP = (WB - TMM1 + UPNL1 + cum - side*size*entry)
                                / (size*mmr - side*size)
  with WB the wallet balance, TMM1 / UPNL1 the maintenance margin and
  unrealized PnL of every *other* position (the page's symbols), each held at
  its current price; the page's note on brackets applies as in isolated mode.
* several feeds in one bar (this project's rule, see
  ``cross_liquidation_theta``): every price moves linearly in one parameter
  theta from its segment start to its segment end; the account is liquidated
  at the first theta where WB + Σ uPnL <= Σ MM.
"""
from __future__ import annotations

import csv
import functools
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Sequence

import numpy as np

LONG = 1
SHORT = -1

# Relative tolerance for "is this float on the lot grid" and balance checks:
# well below a satoshi on any realistic notional, well above float noise.
RELATIVE_TOLERANCE = 1e-9


def _check_side(side: int) -> None:
    if side not in (LONG, SHORT):
        raise ValueError(f"side must be +1 (long) or -1 (short), got {side!r}")


def initial_margin(notional: float, leverage: float) -> float:
    """Margin locked when opening ``notional`` (quote) at ``leverage`` (x): notional / leverage."""
    if leverage <= 0:
        raise ValueError(f"leverage must be > 0, got {leverage}")
    return notional / leverage


def unrealized_pnl(side: int, size: float, entry_price: float, price: float) -> float:
    """Profit of a linear position marked at ``price``, quote currency: side*size*(price-entry)."""
    return side * size * (price - entry_price)


def maintenance_margin(notional: float, maintenance_margin_rate: float,
                       maintenance_amount: float = 0.0) -> float:
    """Maintenance margin in quote currency: notional * mmr - maintenance_amount."""
    return notional * maintenance_margin_rate - maintenance_amount


def liquidation_price(side: int, size: float, entry_price: float, margin: float,
                      maintenance_margin_rate: float,
                      maintenance_amount: float = 0.0) -> float:
    """Price at which margin + unrealized PnL equals the maintenance margin.

    LP = (margin + maintenance_amount - side*size*entry) / (size*mmr - side*size).

    Example: long 1 BTC at 100 with 10x (margin 10), mmr 0.005 gives
    LP = (10 - 100) / (0.005 - 1) = 90 / 0.995 = 90.4523; the short mirror
    gives (10 + 100) / (0.005 + 1) = 109.4527.

    A long whose margin covers the whole position can never be liquidated: the
    formula then gives a price <= 0 and the result is clipped to 0.0.
    """
    _check_side(side)
    if size <= 0:
        raise ValueError(f"size must be > 0 base units, got {size}")
    denominator = size * maintenance_margin_rate - side * size
    price = (margin + maintenance_amount - side * size * entry_price) / denominator
    return max(price, 0.0)


def bankruptcy_price(side: int, size: float, entry_price: float, margin: float) -> float:
    """Price at which margin + unrealized PnL is exactly zero: entry - side*margin/size.

    Long 1 at 100 with margin 10: BP = 90; short: 110. Clipped at 0 for a long
    whose margin exceeds its notional.
    """
    _check_side(side)
    if size <= 0:
        raise ValueError(f"size must be > 0 base units, got {size}")
    return max(entry_price - side * margin / size, 0.0)


def cross_liquidation_price(side: int, size: float, entry_price: float,
                            wallet_balance: float, other_maintenance_margin: float,
                            other_unrealized_pnl: float, maintenance_margin_rate: float,
                            maintenance_amount: float = 0.0) -> float:
    """Cross-margin liquidation price of one position, the others held at their prices.

    Binance USDⓈ-M "How to Calculate Liquidation Price of USDⓈ-M Futures
    Contracts" (cross margin, one-way mode; read 2026-12-01):
    LP = (WB - TMM1 + UPNL1 + cum - side*size*entry) / (size*mmr - side*size).

    wallet_balance (WB), other_maintenance_margin (TMM1) and
    other_unrealized_pnl (UPNL1) are quote currency; the other positions'
    figures are at their current prices. It is the isolated formula with the
    margin replaced by WB - TMM1 + UPNL1, the part of the account this
    position can lose before the account reaches maintenance.

    Example: the only position, WB 50, long 1 at 100, mmr 0.005:
    LP = (50 - 100) / (0.005 - 1) = 50.2513. Clipped at 0 like the isolated
    price (a long the wallet fully covers is never liquidated).
    """
    available = wallet_balance - other_maintenance_margin + other_unrealized_pnl
    return liquidation_price(side, size, entry_price, available, maintenance_margin_rate,
                             maintenance_amount)


def cross_bankruptcy_price(side: int, size: float, entry_price: float, wallet_balance: float,
                           other_unrealized_pnl: float) -> float:
    """Price of this position at which WB + Σ uPnL is zero, the others held (quote per base).

    entry - side*(WB + UPNL1)/size; clipped at 0. WB 50, long 1 at 100, no
    other position: BP = 100 - 50 = 50.
    """
    return bankruptcy_price(side, size, entry_price, wallet_balance + other_unrealized_pnl)


# --------------------------------------------------------------------------
# Maintenance-margin tiers
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class MarginTier:
    """One bracket of an exchange's leverage table.

    notional_floor, notional_cap: the bracket holds notionals in
    [floor, cap), quote currency; maintenance_margin_rate: fraction;
    maintenance_amount: deduction in quote currency (Binance "cum");
    max_leverage: highest leverage allowed for a position in this bracket.
    """
    notional_floor: float
    notional_cap: float
    maintenance_margin_rate: float
    maintenance_amount: float
    max_leverage: float

    def holds(self, notional: float) -> bool:
        """True when ``notional`` (quote) lies in [floor, cap)."""
        return self.notional_floor <= notional < self.notional_cap


def flat_tiers(maintenance_margin_rate: float) -> tuple[MarginTier, ...]:
    """A one-bracket table: the same mmr for every notional.

    Its max leverage is 1/mmr, where the initial margin equals the
    maintenance margin; above it a position would open already past its
    liquidation price.
    """
    if not 0 < maintenance_margin_rate < 1:
        raise ValueError("maintenance_margin_rate must be a fraction in (0, 1), "
                         f"got {maintenance_margin_rate}")
    return (MarginTier(0.0, math.inf, maintenance_margin_rate, 0.0,
                       1.0 / maintenance_margin_rate),)


def validate_tiers(tiers: Sequence[MarginTier]) -> tuple[MarginTier, ...]:
    """Check a tier table is contiguous from 0, with rising rates; return it as a tuple.

    Raises ValueError naming the first bad bracket.
    """
    tiers = tuple(tiers)
    if not tiers:
        raise ValueError("a tier table needs at least one bracket")
    if tiers[0].notional_floor != 0:
        raise ValueError("the first tier must start at notional 0")
    for number, (lower, upper) in enumerate(zip(tiers, tiers[1:]), start=2):
        if upper.notional_floor != lower.notional_cap:
            raise ValueError(f"tier {number} starts at {upper.notional_floor}, "
                             f"not where tier {number - 1} ends ({lower.notional_cap})")
        if upper.maintenance_margin_rate < lower.maintenance_margin_rate:
            raise ValueError(f"tier {number} has a lower maintenance margin rate than tier {number - 1}")
    for number, tier in enumerate(tiers, start=1):
        if not (0 < tier.maintenance_margin_rate < 1 and tier.max_leverage > 0):
            raise ValueError(f"tier {number}: mmr must be in (0, 1) and max leverage > 0")
    return tiers


def tier_index_for_notional(tiers: Sequence[MarginTier], notional: float) -> int:
    """Index of the bracket whose [floor, cap) holds ``notional`` (quote).

    Notionals beyond the last cap use the last bracket (exchanges refuse them
    at order time; the broker rejects such orders by max leverage first).
    """
    for index, tier in enumerate(tiers):
        if notional < tier.notional_cap:
            return index
    return len(tiers) - 1


def tier_indices_for_notionals(tiers: Sequence[MarginTier], notionals: np.ndarray) -> np.ndarray:
    """``tier_index_for_notional`` of each value of a float array (quote), as an int array.

    The first bracket whose cap is above the notional; the last one beyond every cap.
    """
    caps = np.array([tier.notional_cap for tier in tiers], dtype=np.float64)
    return np.minimum(np.searchsorted(caps, notionals, side="right"), len(tiers) - 1)


def tier_for_notional(tiers: Sequence[MarginTier], notional: float) -> MarginTier:
    """The bracket holding ``notional`` (quote currency)."""
    return tiers[tier_index_for_notional(tiers, notional)]


def tiered_liquidation_price(side: int, size: float, entry_price: float, margin: float,
                             tiers: Sequence[MarginTier]) -> tuple[float, MarginTier]:
    """Liquidation price with the bracket that applies *at* that price.

    The exchanges' rule: the bracket is the one holding the position's
    notional at the liquidation price, not at entry. Start from the entry
    notional's bracket, compute LP, and step one bracket toward size*LP until
    the bracket holds it. If the prices straddle a bracket edge (no bracket
    is self-consistent) the last bracket tried is kept, which is the one
    nearer the entry: the first one reached moving away from entry.

    Returns (liquidation price in quote per base, the bracket used).
    """
    index = tier_index_for_notional(tiers, size * entry_price)
    visited = set()
    while True:
        tier = tiers[index]
        price = liquidation_price(side, size, entry_price, margin,
                                  tier.maintenance_margin_rate, tier.maintenance_amount)
        target = tier_index_for_notional(tiers, size * price)
        visited.add(index)
        if target == index:
            return price, tier
        step = 1 if target > index else -1
        if index + step in visited:
            return price, tier
        index += step


def tiered_cross_liquidation_price(side: int, size: float, entry_price: float,
                                   wallet_balance: float, other_maintenance_margin: float,
                                   other_unrealized_pnl: float,
                                   tiers: Sequence[MarginTier]) -> tuple[float, MarginTier]:
    """Cross liquidation price with the bracket that holds size*LP (see ``cross_liquidation_price``).

    The bracket rule is the isolated one (``tiered_liquidation_price``), as
    the Binance page says for both modes: the tier is that of the notional at
    the liquidation price. Returns (price in quote per base, bracket used).
    """
    available = wallet_balance - other_maintenance_margin + other_unrealized_pnl
    return tiered_liquidation_price(side, size, entry_price, available, tiers)


def position_maintenance_margin(size: float, price: float,
                                tiers: Sequence[MarginTier]) -> float:
    """Maintenance margin (quote) of ``size`` base units marked at ``price``, by its bracket."""
    notional = size * price
    tier = tier_for_notional(tiers, notional)
    return maintenance_margin(notional, tier.maintenance_margin_rate, tier.maintenance_amount)


def load_tiers(path: str | Path) -> tuple[MarginTier, ...]:
    """Read a tier table from JSON (``{"tiers": [...]}`` or a list) or CSV.

    Each row has notional_floor, notional_cap, maintenance_margin_rate,
    maintenance_amount, max_leverage; an empty or "inf" cap means no cap.
    Raises ValueError with the file name on a missing column or bad value.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        else:
            document = json.loads(path.read_text())
            rows = document["tiers"] if isinstance(document, dict) else document
    except (OSError, json.JSONDecodeError, KeyError) as error:
        raise ValueError(f"{path}: cannot read tier table ({error})") from None
    fields = ("notional_floor", "notional_cap", "maintenance_margin_rate",
              "maintenance_amount", "max_leverage")
    tiers = []
    for number, row in enumerate(rows, start=1):
        try:
            values = {name: _tier_number(row[name]) for name in fields}
        except KeyError as missing:
            raise ValueError(f"{path}: tier {number} has no column {missing}") from None
        except ValueError:
            raise ValueError(f"{path}: tier {number} has a value that is not a number") from None
        tiers.append(MarginTier(**values))
    try:
        return validate_tiers(tiers)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _tier_number(value) -> float:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "inf")):
        return math.inf
    return float(value)


# --------------------------------------------------------------------------
# Liquidation outcome and lot grid
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class LiquidationOutcome:
    """How a liquidation's money is split, all in quote currency, all >= 0.

    fee: clearance fee to the insurance fund; returned: what goes back to the
    wallet; margin_lost: margin - returned; deficit: loss beyond the margin
    (fill past the bankruptcy price), size * |BP - fill|.
    """
    fee: float
    returned: float
    margin_lost: float
    deficit: float


def liquidation_outcome(side: int, size: float, entry_price: float, margin: float,
                        fill_price: float, liquidation_fee_rate: float | None) -> LiquidationOutcome:
    """Split a liquidation at ``fill_price`` between trader, insurance fund and deficit.

    remaining = margin + side*size*(fill - entry) is what is left of the
    margin after closing.

    * Exchange style (``liquidation_fee_rate`` None): the trader loses the
      whole margin; a positive remaining is the clearance fee.
    * With a rate x: fee = max(0, min(x * size * fill, remaining)); the rest
      of a positive remaining returns to the wallet.
    * deficit = max(0, -remaining) = size * |BP - fill| when the fill is past
      the bankruptcy price.
    """
    remaining = margin + unrealized_pnl(side, size, entry_price, fill_price)
    deficit = max(0.0, -remaining)
    if liquidation_fee_rate is None:
        fee = max(0.0, remaining)
    else:
        fee = max(0.0, min(liquidation_fee_rate * size * fill_price, remaining))
    returned = max(0.0, remaining - fee)
    return LiquidationOutcome(fee=fee, returned=returned,
                              margin_lost=margin - returned, deficit=deficit)


# --------------------------------------------------------------------------
# Cross margin: the whole account at once
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class CrossLeg:
    """One open position of a cross account on one straight piece of price path.

    side +1/-1; size > 0 base units; entry_price, start_price, end_price in
    quote per base: the feed's price is start + theta*(end - start) for
    theta in [0, 1]; tiers: that feed's bracket table.
    """
    side: int
    size: float
    entry_price: float
    start_price: float
    end_price: float
    tiers: tuple

    def price(self, theta: float) -> float:
        """The feed's price at ``theta`` (quote per base)."""
        return self.start_price + theta * (self.end_price - self.start_price)


def cross_margin_surplus(wallet_balance: float, legs: Sequence[CrossLeg], theta: float) -> float:
    """Margin balance minus total maintenance at ``theta``, quote currency.

    WB + Σ side*size*(price - entry) - Σ MM(size*price), each MM by its own
    bracket table; the account is liquidated where this is <= 0.
    """
    surplus = wallet_balance
    for leg in legs:
        price = leg.price(theta)
        surplus += unrealized_pnl(leg.side, leg.size, leg.entry_price, price)
        surplus -= position_maintenance_margin(leg.size, price, leg.tiers)
    return surplus


def _bracket_edges_theta(leg: CrossLeg, start: float) -> list[float]:
    """Thetas in (start, 1) where the leg's notional crosses a bracket edge."""
    move = leg.size * (leg.end_price - leg.start_price)
    if not move:
        return []
    edges = []
    for tier in leg.tiers[1:]:
        theta = (tier.notional_floor - leg.size * leg.start_price) / move
        if start < theta < 1.0:
            edges.append(theta)
    return edges


def cross_liquidation_theta(wallet_balance: float, legs: Sequence[CrossLeg],
                            start: float = 0.0) -> float | None:
    """First theta in [start, 1] where the cross account reaches maintenance, or None.

    This project's rule for several feeds in one bar (the exchange never has
    to choose: it sees prices in time): all feeds move together, linearly in
    one parameter theta, from their segment starts to their ends. Between two
    bracket edges every maintenance margin is linear in theta, so
    ``cross_margin_surplus`` is linear there and its root is solved exactly;
    the brackets are stepped edge by edge from ``start``, as the isolated
    liquidation price steps them. A surplus already <= 0 at ``start`` returns
    ``start`` (a gap when start is 0: every position fills at its open).

    With one leg from its open to its adverse extreme the price at the
    returned theta is the cross liquidation price. Example: WB 50, long 1 at
    100, open 100, low 40, mmr 0.005: surplus(theta) = 50 + (100 - 60*theta
    - 100) - 0.005*(100 - 60*theta) = 49.5 - 59.7*theta, root 0.829146 ->
    price 100 - 60*0.829146 = 50.2513.
    """
    breakpoints = sorted({edge for leg in legs for edge in _bracket_edges_theta(leg, start)})
    low = start
    low_surplus = cross_margin_surplus(wallet_balance, legs, low)
    if low_surplus <= 0:
        return low
    for high in breakpoints + [1.0]:
        # brackets are those of the segment's midpoint: fixed inside it
        middle = (low + high) / 2
        slope = _surplus_slope(legs, middle)
        high_surplus = low_surplus + slope * (high - low)
        if high_surplus <= 0:
            return low + low_surplus / -slope
        low, low_surplus = high, cross_margin_surplus(wallet_balance, legs, high)
        if low_surplus <= 0:  # a bracket edge where the table's deduction jumps
            return low
    return None


def _surplus_slope(legs: Sequence[CrossLeg], theta: float) -> float:
    """d(surplus)/d(theta) with every bracket fixed at those holding the notionals at theta."""
    slope = 0.0
    for leg in legs:
        move = leg.end_price - leg.start_price
        rate = tier_for_notional(leg.tiers, leg.size * leg.price(theta)).maintenance_margin_rate
        slope += leg.side * leg.size * move - leg.size * move * rate
    return slope


@dataclass(frozen=True)
class CrossLiquidationShare:
    """One position's part of a cross liquidation, quote currency.

    pnl: its realized PnL at the fill (signed); fee, margin_lost, deficit: its
    share (>= 0) of the account's clearance fee, wallet lost and deficit.
    """
    pnl: float
    fee: float
    margin_lost: float
    deficit: float


def cross_liquidation_split(wallet_balance: float, pnls: Sequence[float],
                            maintenance_margins: Sequence[float], notionals: Sequence[float],
                            liquidation_fee_rate: float | None) -> list[CrossLiquidationShare]:
    """Split a cross liquidation that closes every position at once.

    Inputs per position (same order): pnl at the fill, maintenance margin and
    notional at the fill (quote). remaining = WB + Σ pnl is the account after
    the closes.

    * Exchange style (rate None): the account loses its whole remaining
      balance, which is the clearance fee (the cross analogue of losing the
      whole isolated margin). With a rate x: fee = min(x * Σ notional, remaining).
    * deficit = max(0, -remaining): the loss beyond the whole wallet (only the
      new debt when WB was already negative).
    * wallet lost = WB - max(0, remaining - fee) (the wallet down to zero at most).

    Fee, wallet lost and deficit are split over the positions in proportion
    to their maintenance margin at the fill (equally when all are 0).
    Example: WB 100, pnls -80 and +30, MM 1 and 3, rate None: remaining 50 =
    fee; shares 12.5 and 37.5; wallet lost 100 split 25 / 75; no deficit.
    """
    remaining = wallet_balance + sum(pnls)
    # a wallet already below zero ('carry') counts only the new debt as deficit
    deficit = max(0.0, -remaining) - max(0.0, -wallet_balance)
    deficit = max(0.0, deficit)
    positive = max(0.0, remaining)
    if liquidation_fee_rate is None:
        fee = positive
    else:
        fee = min(liquidation_fee_rate * sum(notionals), positive)
    wallet_lost = max(0.0, max(0.0, wallet_balance) - (positive - fee))
    total_weight = sum(maintenance_margins)
    count = len(pnls)
    shares = []
    for pnl, weight in zip(pnls, maintenance_margins):
        part = weight / total_weight if total_weight > 0 else 1.0 / count
        shares.append(CrossLiquidationShare(pnl=pnl, fee=fee * part,
                                            margin_lost=wallet_lost * part,
                                            deficit=deficit * part))
    return shares


@functools.lru_cache(maxsize=64)  # asked on every order with one of a few lot sizes
def lot_decimals(lot_size: float) -> int:
    """Number of decimals of a lot size (0.001 -> 3), for exact rounding."""
    exponent = Decimal(repr(lot_size)).normalize().as_tuple().exponent
    return max(0, -exponent)


def floor_to_lot(size: float, lot_size: float) -> float:
    """Round a quantity (base units) toward zero onto the lot grid.

    A size already on the grid stays as given even when float division says
    otherwise (1.235 / 0.001 = 1234.9999999999998 must not floor to 1.234).
    """
    if lot_size <= 0:
        raise ValueError(f"lot_size must be > 0, got {lot_size}")
    lots = abs(size) / lot_size
    whole_lots = math.floor(lots + RELATIVE_TOLERANCE * max(1.0, lots))
    if whole_lots == 0:
        return 0.0
    return math.copysign(round(whole_lots * lot_size, lot_decimals(lot_size)), size)


# --------------------------------------------------------------------------
# Funding of perpetual contracts
# --------------------------------------------------------------------------
# Binance USDⓈ-M "Introduction to Binance Futures Funding Rates" (funding rate
# page), read 2026-12-01: Funding Amount = Nominal Value of Positions × Funding
# Rate, Nominal Value = Mark Price × Size (USDⓈ-margined); a positive rate means
# longs pay shorts, a negative one shorts pay longs; funding is exchanged every
# 8 h at 00:00, 08:00 and 16:00 UTC, and only by positions open at that time.
#
# Isolated margin: the payment is taken from (or added to) the position's
# isolated margin, so its liquidation price moves toward (or away from) the
# mark price. Rule as stated on AscendEX's "What is position margin" support
# page (isolated margin mode, read 2026-12-01); Bybit-style venues take it from
# the available balance first, which this model does not do.

FUNDING_INTERVAL_HOURS = 8          # hours between funding times (Binance default)
SECONDS_PER_HOUR = 3600


def funding_payment(side: int, size: float, mark_price: float, rate: float) -> float:
    """Funding a position receives at one funding time, quote currency (negative = paid).

    amount = -side * size * mark_price * rate: a long (side +1) pays
    size * mark * rate when the rate is positive, a short receives it; with a
    negative rate the flows reverse.

    Inputs: side +1/-1, size in base units (>= 0), mark_price in quote per
    base, rate a fraction per funding interval (0.0001 = 0.01 %).
    Example: long 1 BTC marked at 100, rate 0.0001: -1 * 1 * 100 * 0.0001 = -0.01.
    """
    _check_side(side)
    if size < 0:
        raise ValueError(f"size must be >= 0 base units, got {size}")
    return -side * size * mark_price * rate


def funding_times(start_seconds: int, end_seconds: int,
                  interval_hours: float = FUNDING_INTERVAL_HOURS) -> list[int]:
    """Funding times in [start, end), POSIX seconds (UTC), every ``interval_hours``.

    The grid is anchored at the UNIX epoch (00:00 UTC), so an 8 h interval
    gives 00:00, 08:00 and 16:00 UTC, 4 h gives 00, 04, …, 20 and 1 h every
    hour. An hourly bar [08:00, 09:00) holds one funding time (08:00), a daily
    bar [00:00, 24:00) three, a bar [09:00, 10:00) none.
    Raises ValueError when ``interval_hours`` is not > 0.
    """
    if not interval_hours > 0:
        raise ValueError(f"funding interval must be > 0 hours, got {interval_hours}")
    step = int(round(interval_hours * SECONDS_PER_HOUR))
    first = -(-int(start_seconds) // step) * step      # ceiling to the grid
    return list(range(first, int(end_seconds), step))


def bracket_allows(notional: float, leverage: float, tiers: Sequence[MarginTier]) -> bool:
    """True when a position of ``notional`` (quote) may open at ``leverage`` (x): the
    bracket holding the notional allows at least that leverage (Binance USDⓈ-M
    'Leverage & Margin' table, read 2026-11-25: each bracket has a maximum leverage)."""
    return tier_for_notional(tiers, notional).max_leverage >= leverage


def max_openable_leverage(margin: float, tiers: Sequence[MarginTier]) -> float:
    """Highest leverage (x) at which a position with initial ``margin`` (quote) can open.

    At leverage L the notional is margin x L, so L must stay within the maximum of the
    bracket [floor, cap) holding margin x L. Per bracket the best is min(max leverage,
    cap / margin) if that reaches the bracket (>= floor / margin); the answer is the
    largest over the brackets (a supremum where it is cap / margin: the cap itself belongs
    to the next bracket). E.g. margin 9,000 with Binance BTCUSDT: 50,000 / 9,000 = 5.56x in
    the 125x bracket, 500,000 / 9,000 = 55.56x in the 100x bracket, and the 50x bracket
    (500,000 to 8,000,000) cannot be reached at <= 50x: 55.56x.
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    best = 0.0
    for tier in tiers:
        reach = min(tier.max_leverage, tier.notional_cap / margin)
        if reach * margin >= tier.notional_floor:
            best = max(best, reach)
    return best
