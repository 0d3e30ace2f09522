"""SMA crossover: trend following on two simple moving averages of the close."""
import backtrader as bt

from .base import FLAT, LONG, SHORT, LeveragedStrategy, require_number


class SmaCross(LeveragedStrategy):
    """Long when the fast SMA crosses above the slow one, short (or flat) when it crosses below.

    Signals are evaluated on the bar's close; orders fill at the next bar's open.

    Params (plus those of :class:`~strategies.base.LeveragedStrategy`: fraction, stop_loss,
    take_profit, allow_short)
    ------
    fast : int, default 20
        Fast SMA length [bars].
    slow : int, default 50
        Slow SMA length [bars]; must be greater than ``fast``.
    """

    params = (("fast", 20), ("slow", 50))

    @staticmethod
    def _lookback(p) -> int:
        return int(p.slow) + 1          # a cross needs the slow SMA on two bars

    @staticmethod
    def _check(p) -> None:
        require_number(p.fast, "fast", low=1, whole=True)
        require_number(p.slow, "slow", low=2, whole=True)
        if not p.fast < p.slow:
            raise ValueError(f"need fast < slow, got fast={p.fast}, slow={p.slow}")

    def __init__(self):
        super().__init__()
        fast = bt.ind.SMA(self.data.close, period=int(self.p.fast))
        slow = bt.ind.SMA(self.data.close, period=int(self.p.slow))
        self.crossover = bt.ind.CrossOver(fast, slow)

    def signal(self):
        if self.crossover[0] > 0:
            return LONG
        if self.crossover[0] < 0:
            return SHORT if self.p.allow_short else FLAT
        return None
