"""Backtrader analyzers for leveraged crypto backtests.

Add them the usual way, ``cerebro.addanalyzer(RiskAnalyzer, _name="risk")``;
each ``get_analysis()`` returns plain JSON-ready data (fractions, seconds,
quote currency, naive-UTC ISO-8601 strings, None for undefined values) with
every key present even on a run without bars, and each ``series()`` returns
per-bar numpy arrays for plots (``time`` as datetime64[ms]).

- :class:`LiquidationAnalyzer` -- was I liquidated, and when?
- :class:`MarginAnalyzer` -- how close did I come?
- :class:`NegativeBalanceAnalyzer` -- what would have put me in debt?
- :class:`RiskAnalyzer` -- what was the risk for the return?
- :class:`RefusalAnalyzer` -- which entries did the sizer refuse (stop beyond liquidation)?
- :class:`TradeListAnalyzer` -- which trades were made, which orders refused?
- :class:`FundingAnalyzer` -- what did perpetual funding cost (paid, received, per feed)?

The risk math is in :mod:`analyzers.risk_metrics` (pure functions, no
backtrader). :func:`summary_text` formats the four analyses for printing.
"""
from .funding import FundingAnalyzer
from .liquidation import LiquidationAnalyzer
from .margin import MarginAnalyzer
from .negative_balance import NegativeBalanceAnalyzer
from .refusal import RefusalAnalyzer
from .risk import RiskAnalyzer
from .summary import summary_text
from .trades import TradeListAnalyzer

__all__ = ["LiquidationAnalyzer", "MarginAnalyzer", "NegativeBalanceAnalyzer", "RiskAnalyzer",
           "RefusalAnalyzer", "TradeListAnalyzer", "FundingAnalyzer", "summary_text"]
