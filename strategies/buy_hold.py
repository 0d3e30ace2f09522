"""Buy and hold: the leverage baseline."""
from .base import LONG, LeveragedStrategy, require_bool


class BuyHold(LeveragedStrategy):
    """Go long ``fraction * equity * leverage`` of notional on the first bar and hold it.

    The baseline for comparing leverages: with no trading decisions, every difference
    between settings comes from leverage, fees and liquidation. After a stop, take-profit or
    liquidation it stays flat unless ``reenter`` is True.

    Params (plus fraction, stop_loss, take_profit; shorts are never taken)
    ------
    reenter : bool, default False
        Buy again on the next bar after the position was closed.
    """

    params = (("reenter", False),)

    @staticmethod
    def _check(p) -> None:
        require_bool(p.reenter, "reenter")

    def signal(self):
        if self.position.size > 0:
            return None
        if (self.entries or self.refusals) and not self.p.reenter:
            return None     # closed by a stop, a take-profit or a liquidation, or the sizer
                            # refused the entry: stay out
        return LONG
