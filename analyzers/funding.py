"""FundingAnalyzer: what perpetual funding cost (or paid) the run, in total and per feed."""
from __future__ import annotations

import copy

import backtrader as bt
import numpy as np

from ._common import field_seconds, seconds_to_datetime64, skip_idle_bar_hooks


class FundingAnalyzer(bt.Analyzer):
    """What did funding cost me?

    Reads the broker's ``funding_payments`` (``MarginBroker`` with funding on)
    once, at ``stop()``: no per-bar work. With a broker that records none
    (funding off, or a plain ``BackBroker``) every figure is 0.

    Params: none.

    ``get_analysis()`` returns (money in quote currency)::

        {
          "payments": int,          # number of funding payments
          "paid": float,            # Σ of the payments made, >= 0
          "received": float,        # Σ of the payments received, >= 0
          "net_paid": float,        # paid - received: positive = funding cost money
          "share_of_loss": float | None,   # net_paid / (start value - final value),
                                    # a fraction, when both are > 0 (else None)
          "by_data": {name: {"payments", "paid", "received", "net_paid"}},
        }

    ``series()`` returns one entry per payment: ``time`` (datetime64[ms],
    naive UTC), ``amount`` (quote, negative = paid), ``data`` (feed names).
    """

    def start(self):
        broker = self.strategy.broker
        self._records = getattr(broker, "funding_payments", None)
        self._offset = len(self._records) if self._records is not None else 0
        self._start_value = broker.getvalue()
        self._payments = []
        self._analysis = self._summarise(self._start_value)
        skip_idle_bar_hooks(self)

    def stop(self):
        if self._records is not None:
            self._payments = list(self._records[self._offset:])
        self._analysis = self._summarise(self.strategy.broker.getvalue())

    def get_analysis(self) -> dict:
        return copy.deepcopy(self._analysis)

    def _summarise(self, final_value: float) -> dict:
        total = _totals(payment.amount for payment in self._payments)
        by_data = {}
        for payment in self._payments:
            by_data.setdefault(payment.data, []).append(payment.amount)
        loss = self._start_value - final_value
        share = total["net_paid"] / loss if loss > 0 and total["net_paid"] > 0 else None
        return {**total, "share_of_loss": share,
                "by_data": {name: _totals(amounts) for name, amounts in by_data.items()}}

    def series(self) -> dict:
        """Per-payment arrays (see the class docstring)."""
        seconds = np.array([field_seconds(payment.dt) for payment in self._payments], dtype=float)
        return {
            "time": seconds_to_datetime64(seconds),
            "amount": np.array([payment.amount for payment in self._payments], dtype=float),
            "data": np.array([payment.data for payment in self._payments], dtype=object),
        }


def _totals(amounts) -> dict:
    """payments, paid, received, net_paid of signed amounts (negative = paid), quote currency."""
    values = np.fromiter(amounts, dtype=np.float64)
    paid = float(-values[values < 0].sum()) + 0.0          # + 0.0: no -0.0 when nothing paid
    received = float(values[values > 0].sum()) + 0.0
    return {"payments": int(values.size), "paid": paid, "received": received,
            "net_paid": paid - received}
