"""TradeListAnalyzer: every round trip (entry -> exit) and every refused order of the run."""
from __future__ import annotations

import backtrader as bt

from ._base import BarClockAnalyzer
from ._common import bt_to_seconds, feed_name
from .risk_metrics import iso_utc

#: relative tolerance under which a remaining position size counts as flat
_FLAT_TOLERANCE = 1e-9


class TradeListAnalyzer(BarClockAnalyzer):
    """Which trades did the run make, and which orders did the broker refuse?

    A trade is one position from flat to flat (a reversal closes one trade and
    opens the next at the same fill). It is rebuilt from the completed order
    fills that ``notify_order`` sees, liquidations included (the margin
    broker marks them ``order.info.liquidation``), so adding to a position
    averages its entry and a partial close keeps the trade open.

    Params: none.

    ``get_analysis()`` returns (quote currency, base units, naive-UTC ISO dates)::

        {
          "trades": [                 # in opening order; the last may still be open
            {"data",                  #   feed name
             "side",                  #   'long' / 'short'
             "size",                  #   largest size held, > 0, base units
             "entry_dt", "entry_price",   # first fill; volume-weighted entry price
             "exit_dt", "exit_price",     # last closing fill, its volume-weighted
                                          #   price; None while open
             "exit_reason",           #   'signal' (market order), 'stop', 'limit',
                                      #   'liquidation', or 'open' at the end of the data
             "pnl",                   #   side x size x (exit - entry) summed over the
                                      #   closing fills (0 while open)
             "fees"},                 #   commissions of its fills (a liquidation's is
                                      #   the clearance fee less any absorbed deficit)
            ...],
          "count": int,               # len(trades)
          "orders_rejected": int,     # orders refused: Margin (balance or tier) or Rejected
          "rejections": {reason: n},  # 'balance', 'tier', 'lot' (below the lot size) or
                                      #   'other'
          "fills": int,               # completed orders, liquidations included
        }
    """

    def start(self):
        self._names = {id(data): feed_name(data, i) for i, data in enumerate(self.strategy.datas)}
        self._open = {}          # feed name -> the trade being built
        self._trades = []
        self._rejected = {}
        self._seen_rejected = set()
        self._fills = 0
        super().start()

    def notify_order(self, order):
        if order.status in (order.Margin, order.Rejected):
            if order.ref not in self._seen_rejected:
                self._seen_rejected.add(order.ref)
                reason = _rejection_reason(order)
                self._rejected[reason] = self._rejected.get(reason, 0) + 1
            return
        if order.status != order.Completed or not order.executed.size:
            return
        self._fills += 1
        self._fill(self._names.get(id(order.data), "data0"), float(order.executed.size),
                   float(order.executed.price), float(order.executed.comm or 0.0),
                   iso_utc(bt_to_seconds(order.executed.dt)), _exit_kind(order))

    def _fill(self, name: str, size: float, price: float, fee: float, dt: str, kind: str):
        """Apply one fill of ``size`` (signed base units) at ``price`` to ``name``'s trade."""
        trade = self._open.get(name)
        side = 1 if size > 0 else -1
        if trade is None:
            self._start_trade(name, side, abs(size), price, fee, dt)
            return
        if side == trade["_side"]:                       # adds to the position
            held = trade["_held"]
            trade["entry_price"] = (held * trade["entry_price"] + abs(size) * price) / (held + abs(size))
            trade["_held"] = held + abs(size)
            trade["size"] = max(trade["size"], trade["_held"])
            trade["fees"] += fee
            return
        closing = min(abs(size), trade["_held"])       # reduces, closes or reverses
        closing_fee = fee * closing / abs(size)
        trade["pnl"] += trade["_side"] * closing * (price - trade["entry_price"])
        trade["fees"] += closing_fee
        trade["_exit_notional"] += closing * price
        trade["_closed"] += closing
        trade["_held"] -= closing
        if trade["_held"] <= _FLAT_TOLERANCE * trade["size"]:
            trade.update(exit_dt=dt, exit_price=trade["_exit_notional"] / trade["_closed"],
                         exit_reason=kind)
            del self._open[name]
        rest = abs(size) - closing
        if rest > _FLAT_TOLERANCE * abs(size):
            self._start_trade(name, side, rest, price, fee - closing_fee, dt)

    def _start_trade(self, name, side, size, price, fee, dt):
        trade = {"data": name, "side": "long" if side > 0 else "short", "size": size,
                 "entry_dt": dt, "entry_price": price, "exit_dt": None, "exit_price": None,
                 "exit_reason": "open", "pnl": 0.0, "fees": fee,
                 "_side": side, "_held": size, "_exit_notional": 0.0, "_closed": 0.0}
        self._open[name] = trade
        self._trades.append(trade)

    def _summarise(self) -> dict:
        trades = [{key: value for key, value in trade.items() if not key.startswith("_")}
                  for trade in self._trades]
        return {"trades": trades, "count": len(trades),
                "orders_rejected": int(sum(self._rejected.values())),
                "rejections": dict(self._rejected), "fills": self._fills}


def _exit_kind(order) -> str:
    """How a closing fill came about: liquidation, stop, limit or signal (market)."""
    if order.info.get("liquidation", False):
        return "liquidation"
    if order.exectype in (bt.Order.Stop, bt.Order.StopLimit, bt.Order.StopTrail):
        return "stop"
    if order.exectype == bt.Order.Limit:
        return "limit"
    return "signal"


def _rejection_reason(order) -> str:
    """'balance' / 'tier' (the margin broker's reason), 'lot', or 'other'."""
    if order.status == order.Rejected:
        return "lot" if not order.executed.remsize else "other"
    return str(order.info.get("rejection") or "balance")
