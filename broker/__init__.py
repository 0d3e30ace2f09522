"""Isolated- and cross-margin broker extension for backtrader.

``from backtrader_leverage import MarginBroker`` and set ``cerebro.broker = MarginBroker(...)``.
The pure margin math is in ``broker.margin``; event records in ``broker.events``.
"""
from .broker import MarginBroker, MarginCommInfo
from .events import CashFlow, FundingPayment, Ledger, LiquidationEvent, NegativeBalanceEpisode
from .margin import (MarginTier, bankruptcy_price, funding_payment, funding_times,
                     liquidation_price, load_tiers)
from .perpetual import FundingSchedule, FundingWarning, MarkPriceWarning

__all__ = [
    "MarginBroker", "MarginCommInfo", "LiquidationEvent", "NegativeBalanceEpisode",
    "CashFlow", "Ledger", "MarginTier", "liquidation_price", "bankruptcy_price", "load_tiers",
    "FundingPayment", "FundingSchedule", "FundingWarning", "MarkPriceWarning",
    "funding_payment", "funding_times",
]
