"""backtrader sizers of the project: how many base units an order without a size gets.

=================  ==========================================================================
class              size of an order placed without a size
=================  ==========================================================================
LeverageSizer      notional = ``percents`` % x equity x the feed's leverage
                   (``exposure="scaled"``)
RiskSizer          loses ``risk_per_trade`` of equity at the ``stop_loss``, fees included;
                   refuses (size 0, an ``EntryRefusal`` record) a stop at or beyond the
                   position's liquidation price
=================  ==========================================================================
"""
from .leverage import LeverageSizer
from .risk import (EntryRefusal, RiskSizer, max_notional_for_leverage, refusal_summary,
                   risk_position_size, row_refusal_summary)

__all__ = ["LeverageSizer", "RiskSizer", "EntryRefusal", "risk_position_size",
           "max_notional_for_leverage", "refusal_summary", "row_refusal_summary"]
