"""The safe leverage of a sweep: the largest leverage without liquidation, and the best ones.

Pure logic over metrics rows (see :mod:`backtest.metrics`); the only backtests it runs are
the bisection's, through the ``run`` callable it is given (leverage -> metrics row).

Status of a row
---------------
=============  =====================================================================
``error``      the setting failed (its row has ``error``)
``rejected``   orders were placed and every one was refused (tier or balance), or the
               risk sizer refused every entry: the setting never traded, so "no
               liquidation" says nothing about it
``liquidated`` at least one liquidation
``safe``       it traded and was never liquidated
=============  =====================================================================

Safe leverage
-------------
The grid's boundary is the first (smallest) liquidated leverage and the largest safe one
below it. Between the two, :func:`refine` bisects by re-running the backtest (or, with
several workers, tries that many evenly spaced leverages per round) until the bracket is
no wider than ``max(0.05x, 2 % of the leverage)`` (:func:`tolerance`); the answer is the
last leverage that ran safe, never an interpolation. A bisection point whose
orders were all refused or that failed counts as not safe (an upper bound).

"Best" leverages are chosen among the rows that are neither failed, rejected nor ruined:
the highest CAGR and the highest Calmar (rows whose figure is undefined are skipped) and,
for windows too short for a CAGR, the highest total return.

``summary.json`` (:func:`safe_leverage_summary`) keys
-------------------------------------------------------
``max_safe_leverage`` (refined, or the grid's when not refined), ``max_safe_leverage_grid``,
``first_liquidated_leverage`` (refined upper bound), ``first_liquidated_leverage_grid``,
``first_liquidation_after`` (seconds from the first bar to the first liquidation at the
grid's first liquidated leverage), ``first_liquidation_dt`` (its bar time), ``liquidated_at_and_above`` (every grid leverage from the first
liquidated one up was liquidated), ``best_cagr_leverage``, ``best_calmar_leverage``,
``best_return_leverage``, ``refined`` (the bisection ran), ``tolerance`` [x],
``bisection`` (its points in order: ``leverage``, ``status``, ``liquidations``,
``first_liquidation_dt``, ``error``), ``excluded`` (``leverage`` and ``reason`` of grid rows
left out of the choices), ``headline`` (the sentence the report opens with), ``notes``
(sentences below it, e.g. why ``--negative-balance carry`` changed nothing).
Leverages are in x (5.0 = 5x); None when there is nothing to report.
"""
from __future__ import annotations

from typing import Callable

SAFE, LIQUIDATED, REJECTED, ERROR = "safe", "liquidated", "rejected", "error"
TOLERANCE_ABSOLUTE = 0.05      # x
TOLERANCE_RELATIVE = 0.02      # fraction of the leverage
MAX_BISECTION_STEPS = 30


def tolerance(leverage: float) -> float:
    """Bisection tolerance [x] at ``leverage``: max(0.05x, 2 % of it)."""
    return max(TOLERANCE_ABSOLUTE, TOLERANCE_RELATIVE * float(leverage))


def row_status(row: dict) -> str:
    """'error', 'rejected', 'liquidated' or 'safe' (see the module docstring)."""
    if row.get("error"):
        return ERROR
    if row.get("all_orders_rejected"):
        return REJECTED
    if (row.get("liquidations") or 0) > 0:
        return LIQUIDATED
    return SAFE


def grid_boundary(rows: list) -> tuple[dict | None, dict | None]:
    """(largest safe row below the first liquidated one, first liquidated row).

    Without a liquidation the first is the largest safe row and the second None; when the
    smallest traded leverage is already liquidated the first is None.
    """
    traded = sorted((row for row in rows if row_status(row) in (SAFE, LIQUIDATED)),
                    key=lambda row: row["leverage"])
    first_liquidated = next((row for row in traded if row_status(row) == LIQUIDATED), None)
    limit = first_liquidated["leverage"] if first_liquidated else float("inf")
    safe = [row for row in traded if row_status(row) == SAFE and row["leverage"] < limit]
    return (safe[-1] if safe else None), first_liquidated


def refine(low: float, high: float, run: Callable[[float], dict], *,
           run_many: Callable[[list], list] | None = None,
           points_per_round: int = 1) -> tuple[float, float, list]:
    """Narrow the bracket between a safe ``low`` and a liquidated ``high`` leverage.

    ``run(leverage)`` returns that leverage's metrics row. With ``points_per_round`` k > 1
    and ``run_many(leverages) -> rows`` (e.g. the sweep's worker pool), each round tries k
    evenly spaced leverages at once and keeps the sub-bracket between the last safe one and
    the first that was not, shrinking the bracket k + 1 times per round; k = 1 is plain
    bisection. Stops once the bracket is within :func:`tolerance` of ``low``. Returns
    (largest leverage that ran safe, smallest that did not, the points tried in order).
    """
    points = []
    count = max(1, int(points_per_round)) if run_many is not None else 1
    for _ in range(MAX_BISECTION_STEPS):
        if high - low <= tolerance(low):
            break
        tried = [low + (high - low) * step / (count + 1) for step in range(1, count + 1)]
        rows = run_many(tried) if count > 1 else [run(tried[0])]
        for leverage, row in zip(tried, rows):
            points.append({"leverage": leverage, "status": row_status(row),
                           "liquidations": row.get("liquidations"),
                           "first_liquidation_dt": row.get("first_liquidation_dt"),
                           "error": row.get("error")})
        statuses = [row_status(row) for row in rows]
        first_unsafe = next((i for i, status in enumerate(statuses) if status != SAFE), None)
        if first_unsafe is None:
            low = tried[-1]
        else:
            high = tried[first_unsafe]
            if first_unsafe > 0:
                low = tried[first_unsafe - 1]
    return low, high, points


def best_leverage(rows: list, key: str) -> float | None:
    """Leverage of the highest ``key`` among the eligible rows (first on ties), or None."""
    candidates = [row for row in eligible_rows(rows) if row.get(key) is not None]
    if not candidates:
        return None
    return max(candidates, key=lambda row: row[key])["leverage"]


def eligible_rows(rows: list) -> list:
    """Rows the "best" choices may pick: not failed, not all refused, not ruined."""
    return [row for row in rows if row_status(row) in (SAFE, LIQUIDATED) and not row.get("ruined")]


def exclusions(rows: list) -> list:
    """``[{"leverage", "reason"}]`` of the rows left out of the "best" choices."""
    out = []
    for row in rows:
        status = row_status(row)
        if status == ERROR:
            out.append({"leverage": row["leverage"], "reason": f"failed: {row['error']}"})
        elif status == REJECTED and not row.get("orders_rejected") and row.get("entries_refused"):
            out.append({"leverage": row["leverage"], "reason": "every entry refused by the "
                        "sizer (stop at or beyond the liquidation price)"})
        elif status == REJECTED:
            out.append({"leverage": row["leverage"],
                        "reason": f"every order refused {_rejection_text(row)}".rstrip()})
        elif row.get("ruined"):
            out.append({"leverage": row["leverage"], "reason": "ruined"})
    return out


def safe_leverage_summary(rows: list, run: Callable[[float], dict] | None = None, *,
                          run_many: Callable[[list], list] | None = None,
                          points_per_round: int = 1) -> dict:
    """The ``summary.json`` dict of a sweep's ``rows`` (module docstring).

    ``run`` (leverage -> row) refines the safe leverage; ``run_many`` and
    ``points_per_round`` try several leverages per round (see :func:`refine`).
    """
    safe_row, liquidated_row = grid_boundary(rows)
    grid_safe = safe_row["leverage"] if safe_row else None
    grid_liquidated = liquidated_row["leverage"] if liquidated_row else None
    max_safe, first_liquidated, points = grid_safe, grid_liquidated, []
    refined = run is not None and grid_safe is not None and grid_liquidated is not None
    if refined:
        max_safe, first_liquidated, points = refine(grid_safe, grid_liquidated, run,
                                                    run_many=run_many,
                                                    points_per_round=points_per_round)
    above = [row for row in rows if grid_liquidated is not None
             and row_status(row) in (SAFE, LIQUIDATED) and row["leverage"] >= grid_liquidated]
    summary = {
        "max_safe_leverage": max_safe,
        "max_safe_leverage_grid": grid_safe,
        "first_liquidated_leverage": first_liquidated,
        "first_liquidated_leverage_grid": grid_liquidated,
        "first_liquidation_after": _seconds_between(liquidated_row.get("data_start"),
                                                    liquidated_row.get("first_liquidation_dt"))
        if liquidated_row else None,
        "first_liquidation_dt": liquidated_row.get("first_liquidation_dt")
        if liquidated_row else None,
        "liquidated_at_and_above": bool(above) and all(row_status(row) == LIQUIDATED
                                                        for row in above),
        "best_cagr_leverage": best_leverage(rows, "cagr"),
        "best_calmar_leverage": best_leverage(rows, "calmar"),
        "best_return_leverage": best_leverage(rows, "total_return"),
        "refined": refined,
        "tolerance": tolerance(grid_safe) if refined else None,
        "bisection": points,
        "excluded": exclusions(rows),
    }
    summary["headline"] = headline(summary, rows)
    summary["notes"] = run_notes(rows)
    return summary


def run_notes(rows: list) -> list:
    """Sentences the report adds under the headline (e.g. why 'carry' changed nothing)."""
    notes = []
    carried = [row for row in rows if row.get("negative_balance") == "carry"
               and row_status(row) in (SAFE, LIQUIDATED)]
    if carried and all(not row.get("deficit") for row in carried):
        liquidated = any(row_status(row) == LIQUIDATED for row in carried)
        notes.append(
            "Negative balance 'carry': no deficit occurred, so the wallet never went below "
            "zero. A deficit only arises when a bar opens past a position's bankruptcy price "
            "(a gap); " + ("every liquidation here filled at or inside its liquidation price, "
                           "within the margin." if liquidated else "there was no liquidation.")
            + " 'carry' and 'absorb' give the same result on this data.")
    return notes


# -- the sentence the report opens with --------------------------------------------------
def headline(summary: dict, rows: list) -> str:
    """'Highest leverage without liquidation: 3.5x (3x in the grid). Best CAGR: 2x. ...'."""
    traded = [row for row in rows if row_status(row) in (SAFE, LIQUIDATED)]
    if not traded:
        return "No setting traded: " + "; ".join(
            f"{leverage_text(item['leverage'])} {item['reason']}" for item in summary["excluded"]) + "."
    parts = []
    if len(rows) == 1:
        row = traded[0]
        if row_status(row) == SAFE:
            parts.append(f"At {leverage_text(row['leverage'])}: no liquidation.")
        else:
            parts.append(f"At {leverage_text(row['leverage'])}: liquidated "
                         f"{row['liquidations']} time{'s' if row['liquidations'] != 1 else ''}, "
                         "first after " + duration_words(_seconds_between(
                             row.get("data_start"), row.get("first_liquidation_dt"))) + ".")
        return " ".join(parts)
    max_safe, grid_safe = summary["max_safe_leverage"], summary["max_safe_leverage_grid"]
    if grid_safe is None:
        parts.append("Every leverage in the grid was liquidated, the lowest "
                     f"({leverage_text(summary['first_liquidated_leverage_grid'])}) too.")
    elif summary["first_liquidated_leverage_grid"] is None:
        parts.append(f"No liquidation at any leverage in the grid (up to {leverage_text(grid_safe)}).")
    elif summary["refined"] and max_safe != grid_safe:
        parts.append(f"Highest leverage without liquidation: {leverage_text(max_safe, 2)} "
                     f"({leverage_text(grid_safe)} in the grid).")
    else:
        parts.append(f"Highest leverage without liquidation: {leverage_text(grid_safe)}"
                     f"{' (in the grid)' if not summary['refined'] else ''}.")
    best_cagr = summary["best_cagr_leverage"]
    if best_cagr is not None:
        parts.append(f"Best CAGR: {leverage_text(best_cagr)}.")
    elif summary["best_return_leverage"] is not None:
        parts.append(f"Best return: {leverage_text(summary['best_return_leverage'])} "
                     "(CAGR n/a: " + _cagr_reason(rows) + ").")
    else:
        parts.append("Best CAGR: n/a (every setting ruined or refused).")
    first = summary["first_liquidated_leverage_grid"]
    if first is not None:
        after = duration_words(summary["first_liquidation_after"])
        if summary["liquidated_at_and_above"]:
            parts.append(f"At {leverage_text(first)} and above: liquidated, first after {after}.")
        else:
            liquidated = [leverage_text(row["leverage"]) for row in traded
                          if row_status(row) == LIQUIDATED]
            parts.append(f"Liquidated at {', '.join(liquidated)}; first at "
                         f"{leverage_text(first)} after {after}.")
    rejected = [leverage_text(item["leverage"]) for item in summary["excluded"]
                if item["reason"].startswith("every order refused")]
    if rejected:
        parts.append(f"Never traded (every order refused): {', '.join(rejected)}.")
    return " ".join(parts)


def leverage_text(value, decimals: int | None = None) -> str:
    """'3x', '12.5x'; with ``decimals`` rounded down to them ('3.46x' for 3.46875)."""
    if value is None:
        return "n/a"
    if decimals is not None:
        scale = 10 ** decimals
        value = int(value * scale) / scale
    return f"{value:g}x"


def duration_words(seconds) -> str:
    """Seconds as '2 days', '5 hours', '40 minutes' (the largest whole unit)."""
    if seconds is None:
        return "an unknown time"
    for size, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute")):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{int(seconds)} seconds"


def _seconds_between(start, end) -> float | None:
    """Seconds from ISO time ``start`` to ``end`` (naive times are UTC), None if unknown."""
    from datetime import datetime, timezone
    if not start or not end:
        return None
    stamps = []
    for text in (start, end):
        stamp = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        stamps.append(stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc))
    return (stamps[1] - stamps[0]).total_seconds()


def _cagr_reason(rows: list) -> str:
    reasons = {row.get("cagr_reason") for row in eligible_rows(rows) if row.get("cagr_reason")}
    return ", ".join(sorted(reasons)) or "undefined"


def _rejection_text(row: dict) -> str:
    import json
    try:
        reasons = json.loads(row.get("rejections") or "{}")
    except (TypeError, ValueError):
        reasons = {}
    return f"({', '.join(sorted(reasons))})" if reasons else ""
