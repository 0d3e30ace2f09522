"""Plain-text summary of the four analyses (for the console and the README)."""
from __future__ import annotations


def _pct(value) -> str:
    return "n/a" if value is None else f"{100.0 * value:.2f} %"


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _hours(seconds) -> str:
    return "n/a" if seconds is None else f"{seconds / 3600.0:,.1f} h"


def summary_text(liquidation: dict | None = None, margin: dict | None = None,
                 negative_balance: dict | None = None, risk: dict | None = None) -> str:
    """Format ``get_analysis()`` results (any subset) as a few aligned lines."""
    lines = []
    if liquidation is not None:
        lines.append(f"Liquidations      {liquidation['count']}  margin lost "
                     f"{_num(liquidation['margin_lost'])}  fees {_num(liquidation['fees'])}  "
                     f"deficit {_num(liquidation['deficit'])}")
        for event in liquidation["events"]:
            lines.append(f"  {event['dt']}  {event['data']} {event['side']} {event['size']:g} "
                         f"@ {_num(event['entry_price'])} -> {_num(event['fill_price'])}  "
                         f"after {_hours(event['time_to_liquidation'])}")
    if margin is not None:
        above = "  ".join(f">={level}: {_hours(seconds)}" for level, seconds in margin["time_above"].items())
        lines.append(f"Margin            worst ratio {_pct(margin['worst_margin_ratio'])} "
                     f"({margin['worst_margin_ratio_dt'] or '-'})  closest distance "
                     f"{_pct(margin['closest_distance'])}  margin calls {len(margin['margin_calls'])}")
        lines.append(f"                  time above {above}  max eff. leverage "
                     f"{_num(margin['max_effective_leverage'])}x")
    if negative_balance is not None:
        lines.append(f"Negative balance  episodes {negative_balance['count']}  worst "
                     f"{_num(negative_balance['worst_balance'])}  below zero "
                     f"{_hours(negative_balance['time_below_zero'])}  absorbed deficit "
                     f"{_num(negative_balance['absorbed_deficit'])}  carried deficit "
                     f"{_num(negative_balance['carried_deficit'])}")
    if risk is not None:
        lines.append(f"Risk              total return {_pct(risk['total_return'])}  CAGR "
                     f"{_pct(risk['cagr'])}  vol {_pct(risk['volatility'])}  Sharpe "
                     f"{_num(risk['sharpe'])}  Sortino {_num(risk['sortino'])}  Calmar "
                     f"{_num(risk['calmar'])}")
        lines.append(f"                  max drawdown {_pct(risk['max_drawdown'])} "
                     f"({risk['max_drawdown_start'] or '-'} -> {risk['max_drawdown_trough'] or '-'})  "
                     f"VaR95 {_pct(risk['var_95'])}  CVaR95 {_pct(risk['cvar_95'])}  "
                     f"ruined {risk['ruined']}")
    return "\n".join(lines)
