"""RefusalAnalyzer: the entries a sizer refused, and why."""
from __future__ import annotations

import copy

import backtrader as bt

from ._common import skip_idle_bar_hooks

REASONS = ("stop_beyond_liquidation", "below_lot_size")


class RefusalAnalyzer(bt.Analyzer):
    """Which entries did the sizer refuse?

    A sizer that refuses an entry (``sizers.RiskSizer``: its stop lies at or beyond the
    position's liquidation price, so the exchange would liquidate before the stop could
    fill) calls ``notify_refusal(refusal)`` on every analyzer; this one keeps them.

    Params: none.

    ``get_analysis()`` returns::

        {
          "count": int,                  # refused entries, all reasons
          "by_reason": {"stop_beyond_liquidation": int, "below_lot_size": int},
          "events": [refusal.to_dict(), ...],  # dt (naive UTC ISO), data, side (+1/-1),
                                         # leverage (x), stop_loss (fraction), entry_price,
                                         # stop_price, liquidation_price (quote per base),
                                         # size (base units), reason, message
        }
    """

    def start(self):
        self._events = []
        skip_idle_bar_hooks(self)

    def notify_refusal(self, refusal) -> None:
        self._events.append(refusal.to_dict())

    def get_analysis(self) -> dict:
        by_reason = dict.fromkeys(REASONS, 0)
        for event in self._events:
            by_reason[event["reason"]] = by_reason.get(event["reason"], 0) + 1
        return {"count": len(self._events), "by_reason": by_reason,
                "events": copy.deepcopy(self._events)}
