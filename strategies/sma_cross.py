"""SMA crossover: trend following on two simple moving averages of the close."""
import backtrader as bt

from .base import FLAT, LONG, SHORT, LeveragedStrategy


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

    def __init__(self):
        super().__init__()
        if not 0 < int(self.p.fast) < int(self.p.slow):
            raise ValueError(f"need 0 < fast < slow, got fast={self.p.fast}, slow={self.p.slow}")
        fast = bt.ind.SMA(self.data.close, period=int(self.p.fast))
        slow = bt.ind.SMA(self.data.close, period=int(self.p.slow))
        self.crossover = bt.ind.CrossOver(fast, slow)

    def signal(self):
        if self.crossover[0] > 0:
            return LONG
        if self.crossover[0] < 0:
            return SHORT if self.p.allow_short else FLAT
        return None
