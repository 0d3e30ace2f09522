"""Isolated vs cross margin, side by side: pure functions over metrics rows.

A sweep run with both margin modes (``sweep --margin-mode isolated,cross``) has, per
leverage, one row of each mode with otherwise equal settings. :func:`mode_comparison`
pairs them and says, per leverage, which mode lost less and by how much ("isolated lost
983.09 less than cross"; "came out ... ahead of" when the better mode gained).

Money lost to liquidations = ``margin_lost`` (the margin, or in cross mode the wallet,
that liquidations took) + the carried part of the deficit (``deficit`` −
``absorbed_deficit``: what the wallet owes beyond zero). Loss = starting cash − final
equity (negative = a gain). Money in quote currency; drawdown a positive fraction.
"""
from __future__ import annotations

import math

MODES = ("isolated", "cross")
#: what is compared, per mode (keys of the per-mode dicts)
COMPARED = ("final_value", "max_drawdown", "liquidations", "liquidation_loss")
#: differences below this (quote currency) count as "the same"
SAME_MONEY = 0.005


def liquidation_loss(row: dict) -> float | None:
    """Money lost to liquidations in one row: margin_lost + carried deficit (quote), or None."""
    if row.get("error") or row.get("margin_lost") is None:
        return None
    carried = (row.get("deficit") or 0.0) - (row.get("absorbed_deficit") or 0.0)
    return float(row["margin_lost"]) + max(0.0, carried)


def mode_comparison(rows: list) -> list[dict]:
    """One entry per leverage that has a row of each mode, in leverage order.

    Each entry: ``leverage``; ``isolated`` and ``cross``, dicts of :data:`COMPARED` (None
    where the row failed); ``better`` ('isolated', 'cross', None when equal or
    unknown); ``difference`` (how much less the better mode lost, quote, >= 0; None when
    unknown); ``sentence`` (one line). Rows without ``margin_mode`` count as isolated;
    when a leverage has several rows of a mode (other settings differ), the first is used.
    """
    by_leverage: dict = {}
    for row in rows:
        mode = row.get("margin_mode") or "isolated"
        if mode in MODES:
            by_leverage.setdefault(row.get("leverage"), {}).setdefault(mode, row)
    entries = []
    for leverage in sorted(by_leverage, key=lambda value: (value is None, value or 0.0)):
        pair = by_leverage[leverage]
        if len(pair) < 2:
            continue
        figures = {mode: _figures(pair[mode]) for mode in MODES}
        entries.append(_entry(leverage, figures, pair["isolated"].get("cash")))
    return entries


def _figures(row: dict) -> dict:
    if row.get("error"):
        return dict.fromkeys(COMPARED)
    return {"final_value": row.get("final_value"), "max_drawdown": row.get("max_drawdown"),
            "liquidations": row.get("liquidations"), "liquidation_loss": liquidation_loss(row)}


def _entry(leverage, figures: dict, cash) -> dict:
    isolated, cross = figures["isolated"]["final_value"], figures["cross"]["final_value"]
    entry = {"leverage": leverage, "isolated": figures["isolated"], "cross": figures["cross"],
             "better": None, "difference": None}
    name = f"{leverage:g}x" if isinstance(leverage, (int, float)) else str(leverage)
    if not _finite(isolated) or not _finite(cross) or not _finite(cash):
        failed = " and ".join(mode for mode in MODES if not _finite(figures[mode]["final_value"]))
        entry["sentence"] = f"{name}: no comparison, the {failed or 'setting'} run failed."
        return entry
    lost = {mode: cash - figures[mode]["final_value"] for mode in MODES}
    difference = abs(lost["isolated"] - lost["cross"])
    if difference < SAME_MONEY:
        entry["difference"] = 0.0
        entry["sentence"] = (f"{name}: both modes ended the same, final equity "
                             f"{isolated:,.2f} ({_change(-lost['isolated'])} on the starting cash).")
        return entry
    better = "isolated" if lost["isolated"] < lost["cross"] else "cross"
    worse = "cross" if better == "isolated" else "isolated"
    entry["better"], entry["difference"] = better, difference
    verdict = (f"lost {difference:,.2f} less than" if lost[better] > 0
               else f"came out {difference:,.2f} ahead of")
    entry["sentence"] = (f"{name}: {better} {verdict} {worse} ({better} {_outcome(lost[better])}, "
                         f"{worse} {_outcome(lost[worse])} of the {cash:,.2f} starting cash).")
    return entry


def _change(amount: float) -> str:
    return f"{'+' if amount >= 0 else '−'}{abs(amount):,.2f}"


def _outcome(lost: float) -> str:
    return f"lost {lost:,.2f}" if lost > 0 else f"gained {-lost:,.2f}"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
