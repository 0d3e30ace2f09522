"""Example leveraged strategies and the registry that names them on the command line.

=====================  ==============================================  ==================
CLI name               class                                           strategy-specific
=====================  ==============================================  ==================
``sma_cross``          :class:`strategies.sma_cross.SmaCross`          fast, slow
``rsi_reversion``      :class:`strategies.rsi_reversion.RsiReversion`  period, oversold,
                                                                       overbought, exit_level
``donchian_breakout``  :class:`strategies.donchian_breakout.DonchianBreakout`  entry_period,
                                                                       exit_period
``buy_hold``           :class:`strategies.buy_hold.BuyHold`            reenter
=====================  ==============================================  ==================

Every strategy also takes ``fraction`` (share of equity used as margin), ``stop_loss`` and
``take_profit`` (fractions of the entry price), ``allow_short``, and ``sizer`` (None, or
``'risk'`` with ``risk_per_trade``: size by the loss at the stop); see :mod:`strategies.base`
for the sizing rules.
"""
from .base import LeveragedStrategy
from .buy_hold import BuyHold
from .donchian_breakout import DonchianBreakout
from .rsi_reversion import RsiReversion
from .sma_cross import SmaCross

STRATEGIES = {
    "sma_cross": SmaCross,
    "rsi_reversion": RsiReversion,
    "donchian_breakout": DonchianBreakout,
    "buy_hold": BuyHold,
}


def get_strategy(name: str) -> type[LeveragedStrategy]:
    """The strategy class registered as ``name``; ``KeyError`` names the known ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; choose one of "
                       f"{', '.join(STRATEGIES)}") from None


def strategy_params(name: str) -> dict:
    """Default value of every param of strategy ``name`` (name -> default)."""
    params = get_strategy(name).params
    return {key: getattr(params, key) for key in params._getkeys()}


__all__ = ["STRATEGIES", "get_strategy", "strategy_params", "LeveragedStrategy",
           "SmaCross", "RsiReversion", "DonchianBreakout", "BuyHold"]
