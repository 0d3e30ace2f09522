"""Donchian channel breakout (turtle-style): enter on an N-bar extreme, exit on an M-bar one."""
import backtrader as bt

from .base import FLAT, LONG, SHORT, LeveragedStrategy, require_number


class DonchianBreakout(LeveragedStrategy):
    """Trade breakouts of the previous ``entry_period`` bars' range.

    Flat or short: go long when the close > highest high of the previous ``entry_period`` bars.
    Flat or long: go short when the close < lowest low of that window (flat if no shorts).
    A long exits when the close < lowest low of the previous ``exit_period`` bars; a short
    when the close > highest high of that window. The current bar is never in its own channel.

    Params (plus fraction, stop_loss, take_profit, allow_short)
    ------
    entry_period : int, default 20
        Breakout channel length [bars].
    exit_period : int, default 10
        Exit channel length [bars]; usually shorter than ``entry_period``.
    """

    params = (("entry_period", 20), ("exit_period", 10))

    @staticmethod
    def _lookback(p) -> int:
        return max(int(p.entry_period), int(p.exit_period)) + 1   # channels exclude the bar

    @staticmethod
    def _check(p) -> None:
        require_number(p.entry_period, "entry_period", low=1, whole=True)
        require_number(p.exit_period, "exit_period", low=1, whole=True)

    def __init__(self):
        super().__init__()
        previous_high, previous_low = self.data.high(-1), self.data.low(-1)
        self.entry_high = bt.ind.Highest(previous_high, period=int(self.p.entry_period))
        self.entry_low = bt.ind.Lowest(previous_low, period=int(self.p.entry_period))
        self.exit_high = bt.ind.Highest(previous_high, period=int(self.p.exit_period))
        self.exit_low = bt.ind.Lowest(previous_low, period=int(self.p.exit_period))

    def signal(self):
        close = self.data.close[0]
        held = self.position.size
        if close > self.entry_high[0] and held <= 0:
            return LONG
        if close < self.entry_low[0] and held >= 0:
            return SHORT    # the base class turns it into FLAT when allow_short is False
        if held > 0 and close < self.exit_low[0]:
            return FLAT
        if held < 0 and close > self.exit_high[0]:
            return FLAT
        return None
