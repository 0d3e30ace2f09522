"""RSI mean reversion: buy oversold, sell overbought, exit at the middle level."""
import backtrader as bt

from .base import FLAT, LONG, SHORT, LeveragedStrategy, require_number


class RsiReversion(LeveragedStrategy):
    """Fade RSI extremes.

    Flat: go long when RSI < ``oversold``, short when RSI > ``overbought`` (if shorts are
    allowed). Long: exit when RSI >= ``exit_level``. Short: exit when RSI <= ``exit_level``.
    RSI is Wilder's (smoothed moving average), on the close, in points from 0 to 100.

    Params (plus fraction, stop_loss, take_profit, allow_short)
    ------
    period : int, default 14
        RSI look-back [bars].
    oversold : float, default 30
        Long-entry level [RSI points].
    overbought : float, default 70
        Short-entry level [RSI points].
    exit_level : float, default 50
        Level at which a position is closed [RSI points].
    """

    params = (("period", 14), ("oversold", 30.0), ("overbought", 70.0), ("exit_level", 50.0))

    @staticmethod
    def _lookback(p) -> int:
        return int(p.period) + 1        # RSI needs `period` price changes

    @staticmethod
    def _check(p) -> None:
        require_number(p.period, "period", low=1, whole=True)
        for name in ("oversold", "exit_level", "overbought"):
            require_number(getattr(p, name), name, low=0, high=100)
        if not p.oversold < p.exit_level < p.overbought:
            raise ValueError("need oversold < exit_level < overbought, got "
                             f"{p.oversold}, {p.exit_level}, {p.overbought}")

    def __init__(self):
        super().__init__()
        self.rsi = bt.ind.RSI(self.data.close, period=int(self.p.period), safediv=True)

    def signal(self):
        rsi = self.rsi[0]
        held = self.position.size
        if held > 0:
            return FLAT if rsi >= self.p.exit_level else None
        if held < 0:
            return FLAT if rsi <= self.p.exit_level else None
        if rsi < self.p.oversold:
            return LONG
        if rsi > self.p.overbought and self.p.allow_short:
            return SHORT
        return None
