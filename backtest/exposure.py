"""Exposure modes of a backtest: does leverage scale the strategy's notional, or not?

Leverage changes the margin a notional locks (and so the liquidation price) and, when the
strategy sizes by equity, the notional itself. ``exposure`` makes the choice explicit:

``"scaled"``
    Orders placed without a size get :class:`sizers.LeverageSizer`: notional =
    percents % x equity x leverage. The example strategies (``LeveragedStrategy``) size
    themselves the same way (fraction x equity x leverage). An order the strategy placed
    with its own size cannot be scaled; such orders are counted, and the report says so.
``"as_is"``
    The strategy's own sizes (backtrader's default sizer, 1 unit, for orders without a
    size; the example strategies take notional = fraction x equity): leverage changes only
    the margin and the liquidation distance.

:func:`instrumented` returns a subclass of the user's strategy, with the same name, that
counts the orders which open or add to a position: ``sized_orders`` (no size given, so the
sizer sized them) and ``explicit_orders`` (the strategy gave a size). Orders that only
reduce or close a position, ``close()``, and the stop/limit children of a bracket are not
counted: no exposure mode sizes them.
"""
from __future__ import annotations

from ..sizers import LeverageSizer
from ..strategies import LeveragedStrategy

SCALED, AS_IS = "scaled", "as_is"


def strategy_scales_itself(klass) -> bool:
    """True for strategies that size notional = fraction x equity x leverage themselves."""
    return issubclass(klass, LeveragedStrategy)


def add_exposure(cerebro, klass, exposure: str, percents: float) -> type:
    """Set up ``cerebro`` for the exposure mode; returns the (counting) class to add."""
    if exposure == SCALED:
        cerebro.addsizer(LeverageSizer, percents=percents)
    return instrumented(klass, scale_sizes_by_leverage=exposure == SCALED)


def instrumented(klass, *, scale_sizes_by_leverage: bool = True) -> type:
    """Subclass of ``klass`` counting its opening orders (see the module docstring)."""

    class Counted(klass):
        _bl_closing = 0          # > 0 while close() places its order
        sized_orders = 0         # opening orders sized by the sizer [count]
        explicit_orders = 0      # opening orders with the strategy's own size [count]

        def buy(self, data=None, size=None, *args, **kwargs):
            self._bl_count(data, size, +1, kwargs)
            return super().buy(data, size, *args, **kwargs)

        def sell(self, data=None, size=None, *args, **kwargs):
            self._bl_count(data, size, -1, kwargs)
            return super().sell(data, size, *args, **kwargs)

        def close(self, *args, **kwargs):
            self._bl_closing += 1
            try:
                return super().close(*args, **kwargs)
            finally:
                self._bl_closing -= 1

        def _bl_count(self, data, size, side, kwargs) -> None:
            if self._bl_closing or kwargs.get("parent") is not None:
                return
            if data is None:
                data = self.datas[0]
            elif isinstance(data, str):
                data = self.getdatabyname(data)
            held = self.getposition(data).size
            if size is None:
                if not held or (held > 0) == (side > 0):
                    self.sized_orders += 1
                return
            after = held + side * abs(size)
            if abs(after) > abs(held) or held * after < 0:
                self.explicit_orders += 1

    Counted.__name__ = klass.__name__
    Counted.__qualname__ = klass.__qualname__
    Counted.__doc__ = klass.__doc__
    if issubclass(klass, LeveragedStrategy):
        Counted.scale_sizes_by_leverage = scale_sizes_by_leverage
    return Counted


def exposure_note(rows: list) -> str:
    """One line for the report: which exposure mode ran and whether it could apply.

    From the metrics rows (``exposure``, ``percents``, ``sized_orders``,
    ``explicit_orders``, ``strategy_scales_sizes``, ``strategy_class``), summed over the
    settings that ran.
    """
    done = [row for row in rows if not row.get("error")] or rows
    if not done:
        return ""
    first = done[0]
    name = first.get("strategy_class") or first.get("strategy")
    mode = first.get("exposure")
    if mode not in (SCALED, AS_IS):
        return "not recorded"
    sized = sum(int(row.get("sized_orders") or 0) for row in done)
    explicit = sum(int(row.get("explicit_orders") or 0) for row in done)
    if mode == AS_IS:
        own = (" (notional = fraction × equity, whatever the leverage)"
               if first.get("strategy_scales_sizes") else "")
        return (f"as_is: {name}'s own sizes{own}; leverage changes only the margin "
                "and the liquidation distance.")
    if first.get("strategy_scales_sizes"):
        return (f"scaled: {name} sizes its orders itself at notional = "
                "fraction × equity × leverage.")
    percents = float(first.get("percents") or 0.0)
    if explicit:
        return (f"scaled could not apply to {explicit} of {explicit + sized} "
                f"opening orders: {name} passed explicit sizes, so for those leverage "
                "changed only the margin and the liquidation distance.")
    return (f"scaled: LeverageSizer sized {sized} opening orders at notional = "
            f"{percents:g} % × equity × leverage.")


__all__ = ["SCALED", "AS_IS", "add_exposure", "instrumented", "exposure_note",
           "strategy_scales_itself"]
