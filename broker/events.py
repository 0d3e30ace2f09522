"""Records the broker keeps: liquidations, negative-balance episodes, wallet flows.

Small dataclasses with a unit per field; ``to_dict()`` gives JSON-ready data
(datetimes as ISO-8601 strings, naive UTC) for analyzers and reports.
"""
from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Optional


def _json_ready(record) -> dict:
    return {key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(record).items()}


@dataclass(frozen=True)
class LiquidationEvent:
    """One forced close of a position (isolated), or of one position of a cross account.

    ===================  =====================================================
    dt                   bar of the liquidation (naive UTC datetime)
    opened_dt            when the liquidated position was opened (naive UTC)
    data                 feed name ('data0', 'data1', … for unnamed feeds)
    side                 'long' or 'short'
    size                 position size closed, base units (> 0)
    entry_price          average entry price, quote per base
    liquidation_price    price where margin + PnL = maintenance margin
    bankruptcy_price     price where margin + PnL = 0
    fill_price           price the position was closed at (LP, or the open
                         of a bar that gapped past it)
    margin_lost          isolated margin the trader lost, quote currency
                         (cross: this position's share of the wallet lost)
    fee                  clearance / liquidation fee to the insurance fund
    deficit              loss beyond the margin, size·|BP − fill|, quote
                         (cross: its share of the loss beyond the wallet)
    margin_mode          'isolated' or 'cross'; a cross liquidation closes
                         every position, one record each, all at the same dt
                         (its prices are those with the other positions held
                         at their fills; shares split by maintenance margin)
    ===================  =====================================================
    """
    dt: datetime
    opened_dt: Optional[datetime]
    data: str
    side: str
    size: float
    entry_price: float
    liquidation_price: float
    bankruptcy_price: float
    fill_price: float
    margin_lost: float
    fee: float
    deficit: float
    margin_mode: str = "isolated"

    def to_dict(self) -> dict:
        """The record as plain JSON-ready data (datetimes as ISO-8601 strings)."""
        return _json_ready(self)


@dataclass
class NegativeBalanceEpisode:
    """A stretch of time with the wallet below zero ('carry' policy).

    start / end: naive-UTC datetimes (end None while still negative);
    lowest_balance: the most negative wallet balance seen, quote currency.
    """
    start: datetime
    end: Optional[datetime]
    lowest_balance: float

    def to_dict(self) -> dict:
        """The episode as plain JSON-ready data."""
        return _json_ready(self)


@dataclass(frozen=True, slots=True)  # one per wallet movement: slots keep each ~150 B smaller
class CashFlow:
    """One movement of the wallet balance.

    dt: naive-UTC bar datetime (None before the first bar); data: feed name
    or None; reason: what moved it (see ``MarginBroker`` for the list);
    amount: signed quote currency (+ into the wallet); balance: wallet after.
    """
    dt: Optional[datetime]
    data: Optional[str]
    reason: str
    amount: float
    balance: float

    def to_dict(self) -> dict:
        """The flow as plain JSON-ready data."""
        return _json_ready(self)


class Ledger(Sequence):
    """Every wallet movement, in order: a read-only sequence of :class:`CashFlow`.

    ``len``, indexing, slices (a list), iteration and ``==`` with a list of
    flows work as on a list; each item is made when it is read, equal to the
    flow recorded. The flows are kept by column (the amounts and balances as
    float64, the bar time, feed and reason as references to shared objects):
    ~45 B a flow, where a ``CashFlow`` object with its two floats was ~150 B;
    five flows a round trip made the list ~10 B a bar of peak memory in the
    always-in-the-market benchmark of issue 15.

    ``to_datetime``: a function from a float (a bar's backtrader day number) to
    the bar's naive datetime. With it, ``record`` also takes that float as
    ``dt`` and the datetime is made when the flow is read (a funding time's
    bar: no conversion a payment for a figure seldom read).
    """

    __slots__ = ("_dts", "_data", "_reasons", "_amounts", "_balances", "length", "_to_datetime")

    def __init__(self, flows=(), to_datetime=None):
        self._dts, self._data, self._reasons = [], [], []
        self._amounts, self._balances = array.array("d"), array.array("d")
        self._to_datetime = to_datetime
        #: ``len(ledger)`` as a bound builtin: what a per-bar check calls (no Python frame)
        self.length = self._reasons.__len__
        for flow in flows:
            self.append(flow)

    def record(self, dt: Optional[datetime] | float, data: Optional[str], reason: str,
               amount: float, balance: float) -> None:
        """Append one flow (the fields of :class:`CashFlow`; ``dt`` may be a day number,
        see the class docstring)."""
        self._dts.append(dt)
        self._data.append(data)
        self._reasons.append(reason)
        self._amounts.append(amount)
        self._balances.append(balance)

    def append(self, flow: "CashFlow") -> None:
        """Append a :class:`CashFlow`."""
        self.record(flow.dt, flow.data, flow.reason, flow.amount, flow.balance)

    def _datetime(self, dt):
        return self._to_datetime(dt) if dt.__class__ is float else dt

    def __len__(self) -> int:
        return len(self._reasons)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._flow(i) for i in range(*index.indices(len(self)))]
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError("ledger index out of range")
        return self._flow(index)

    def _flow(self, i: int) -> "CashFlow":
        return CashFlow(self._datetime(self._dts[i]), self._data[i], self._reasons[i],
                        self._amounts[i], self._balances[i])

    def __iter__(self):
        return map(CashFlow, map(self._datetime, self._dts), self._data, self._reasons,
                   self._amounts, self._balances)

    def __reversed__(self):
        return (self._flow(i) for i in range(len(self) - 1, -1, -1))

    def __eq__(self, other) -> bool:
        if isinstance(other, (Ledger, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None     # mutable, as a list

    def __repr__(self) -> str:
        return f"Ledger({list(self)!r})"


@dataclass(frozen=True, slots=True)  # one per position and funding time: slots save ~48 B each
class FundingPayment:
    """One funding payment of a perpetual position.

    ===========  ==========================================================
    dt           the funding (settlement) time, naive UTC datetime
    data         feed name
    size         position size at that time, signed base units (+ long)
    mark_price   price the payment was computed at, quote per base (the
                 mark's open of the bar, or the trade open without a mark)
    rate         funding rate of the interval, a fraction (0.0001 = 0.01 %)
    amount       quote currency, negative = paid, positive = received:
                 -size * mark_price * rate
    ===========  ==========================================================
    """
    dt: datetime
    data: str
    size: float
    mark_price: float
    rate: float
    amount: float

    def to_dict(self) -> dict:
        """The payment as plain JSON-ready data."""
        return _json_ready(self)
