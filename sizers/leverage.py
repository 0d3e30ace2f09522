"""LeverageSizer: orders without a size get notional = percents % x equity x leverage."""
from __future__ import annotations

import math

import backtrader as bt

DEFAULT_PERCENTS = 90.0


class LeverageSizer(bt.Sizer):
    """Size an order so that leverage scales its exposure (``exposure="scaled"``).

    For an order that opens or adds to a position::

        margin   [quote currency] = percents / 100 * equity
        notional [quote currency] = margin * leverage
        size     [base units]     = notional / close        (the broker floors it to its lot)

    ``equity`` is ``broker.getvalue()`` (wallet + isolated margins + unrealized PnL),
    ``leverage`` the broker's ``get_leverage(data)`` (1.0 for a broker without it, e.g.
    plain ``BackBroker``) and ``close`` the feed's close at the order's bar. An order
    against an open position closes it: its size is the position's size (so
    ``buy()`` / ``sell()`` pairs of a long-only strategy open and close cleanly, the way
    backtrader's ``PercentSizer`` does). Equity <= 0 gives size 0 (no order).

    The taker fee is paid from the wallet on top of the margin, so ``percents`` must leave
    room for it: margin + fee = notional x (1 / leverage + fee rate) <= equity, i.e.
    percents / 100 <= 1 / (1 + fee rate x leverage) (90 works up to 277x at a 0.04 % fee).

    Params:
      - ``percents`` (default 90): share of equity committed as margin [percent, 0-100].

    Example: equity 10,000, percents 90, leverage 5, close 20,000:
    notional = 0.9 x 10,000 x 5 = 45,000, size = 45,000 / 20,000 = 2.25 BTC.
    """

    params = (("percents", DEFAULT_PERCENTS),)

    def _getsizing(self, comminfo, cash, data, isbuy):
        position = self.broker.getposition(data).size
        if position and (position > 0) != bool(isbuy):
            return abs(position)                      # against the position: close it
        equity = self.broker.getvalue()
        price = data.close[0]
        if not (equity > 0 and price > 0 and math.isfinite(price)):
            return 0
        return self.p.percents / 100.0 * equity * _leverage(self.broker, data) / price


def _leverage(broker, data) -> float:
    """The leverage the broker applies to ``data``; 1.0 for a broker without margin."""
    get_leverage = getattr(broker, "get_leverage", None)
    if get_leverage is None:
        return 1.0
    try:
        return float(get_leverage(data))
    except TypeError:
        return 1.0
