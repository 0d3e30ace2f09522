"""Risk metrics of an equity curve, as small pure functions (no backtrader import).

Units and signs, for every function here:

==================  ==========================================================
equity              account value in quote currency; ``equity[0]`` is the
                    starting cash, ``equity[i]`` the value after bar ``i``
times               POSIX seconds (float, UTC) of each equity observation;
                    ``times[0]`` is stamped one bar interval before the first
                    bar (the close "before" the run), ``times[i]`` is bar i's
                    own timestamp
returns             simple, non-cumulative fractions (0.01 = +1 %)
interval            bar interval in seconds (median spacing of the bars)
periods_per_year    365 days / interval (crypto trades every day)
drawdown            a *positive* fraction of the running peak (0.25 = 25 %
                    below the peak; 1 = everything lost)
durations           seconds
==================  ==========================================================

Undefined values (too few returns, zero deviation, unknown interval) are
``None``, never NaN or infinity: every public function returns plain Python
floats, ints or ``None``.

Ruin: the first observation with equity <= 0 ends the series used for the
ratios (:func:`truncate_at_ruin`): that bar's return is -100 %, max drawdown
is 1 and CAGR is -1. The total return still uses the final value, so a
'carry' wallet that ends in debt reports a total return below -1.

The formulas follow the usual definitions (empyrical's, with
``annualization`` = periods per year), which the tests cross-check:

- volatility = std(returns, ddof=1) * sqrt(periods_per_year)
- Sharpe = mean(returns) / std(returns, ddof=1) * sqrt(periods_per_year)
  (risk-free rate 0)
- Sortino = mean(returns) * periods_per_year
  / (sqrt(mean(min(returns, 0)^2)) * sqrt(periods_per_year))
- CAGR = (end / start) ^ (1 / years) - 1, years = n_returns * interval / 365 d
- Calmar = CAGR / max_drawdown
- VaR at level L = the (1-L) percentile of daily returns (linear
  interpolation); CVaR = mean of the ``floor((n-1)*(1-L)) + 1`` lowest daily
  returns (both negative returns for a losing tail).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from . import exact_sums

SECONDS_PER_DAY = 86_400.0
DAYS_PER_YEAR = 365.0  # crypto trades every calendar day
SECONDS_PER_YEAR = DAYS_PER_YEAR * SECONDS_PER_DAY
#: VaR/CVaR confidence levels reported, as key suffix -> tail fraction (cutoff)
VAR_CUTOFFS = {"95": 0.05, "99": 0.01}
#: default ruin threshold, as a fraction of the starting value
DEFAULT_RUIN_THRESHOLD = 0.10

_EPOCH = datetime(1970, 1, 1)


def finite_or_none(value) -> float | None:
    """``float(value)``, or ``None`` when it is None, NaN or infinite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def iso_utc(seconds: float | None) -> str | None:
    """POSIX seconds -> naive-UTC ISO-8601 string (``'2020-03-12T10:00:00'``)."""
    if seconds is None or not math.isfinite(seconds):
        return None
    return (_EPOCH + timedelta(seconds=round(float(seconds), 6))).isoformat()


def median_interval(timestamps) -> float | None:
    """Median spacing in seconds of strictly distinct, sorted ``timestamps``.

    Duplicates are dropped first (a feed that did not advance on a bar of
    another feed). ``None`` with fewer than two distinct stamps.
    """
    stamps = np.asarray(timestamps, dtype=float)
    steps = np.diff(stamps)
    if not (steps > 0).all():
        # unsorted, repeated or NaN stamps: np.unique first. Already strictly increasing
        # stamps (the usual feed) are their own np.unique: skipping it saves its sorted
        # copy and mask (~17 B a bar of peak memory in the analyzers' stop()).
        steps = np.diff(np.unique(stamps))
    if steps.size < 1:
        return None
    # steps is our own temporary: the median may partition it in place (no copy)
    return float(np.median(steps, overwrite_input=True))


def periods_per_year(interval: float | None) -> float | None:
    """365 days / ``interval`` (seconds); ``None`` when the interval is unknown."""
    if interval is None or interval <= 0:
        return None
    return SECONDS_PER_YEAR / interval


def truncate_at_ruin(equity) -> tuple[np.ndarray, int | None]:
    """Cut the equity curve at its first observation <= 0 (index >= 1).

    Returns ``(curve, ruin_index)``: ``curve`` is a float copy ending at the
    ruin observation, whose value is set to 0 (so its return is exactly
    -100 %); ``ruin_index`` is ``None`` when the equity never reached 0.
    """
    curve = np.array(equity, dtype=float)
    hits = np.flatnonzero(curve[1:] <= 0.0)
    if hits.size == 0:
        return curve, None
    ruin_index = int(hits[0]) + 1
    curve = curve[: ruin_index + 1]
    curve[ruin_index] = 0.0
    return curve, ruin_index


def simple_returns(equity) -> np.ndarray:
    """Bar returns ``equity[i] / equity[i-1] - 1`` (length ``len(equity) - 1``)."""
    curve = np.asarray(equity, dtype=float)
    if curve.size < 2:
        return np.empty(0)
    returns = curve[1:] / curve[:-1]
    returns -= 1.0      # in place: no second array of the curve's length
    return returns


def drawdown_series(equity) -> np.ndarray:
    """Drawdown of each observation as a positive fraction of the running peak.

    Equity is clipped at 0 first, so a value in debt is a drawdown of 1 (not
    beyond 100 %). The peak includes the starting value.
    """
    curve = _clipped_at_zero(equity)
    if curve.size == 0:
        return np.empty(0)
    return _drawdown_of_clipped(curve)


def _clipped_at_zero(values) -> np.ndarray:
    """``np.maximum(values, 0.0)``; the float array itself (no copy) when nothing is below 0.

    For the drawdown functions here, whose results only compare these values or
    divide them by their running peak: the one value np.maximum could still
    change, the sign of a zero, makes no difference there (-0.0 / peak and
    0.0 / peak both give a drawdown of 1; a zero peak gives 0).
    """
    curve = np.asarray(values, dtype=float)
    return np.maximum(curve, 0.0) if (curve < 0.0).any() else curve


def _drawdown_of_clipped(curve: np.ndarray) -> np.ndarray:
    """:func:`drawdown_series` of a curve already clipped at 0.

    ``where(peak > 0, 1 - curve / peak, 0)``, computed in the running-peak array
    itself: one array of the curve's length instead of four (peak, the
    quotient, 1 - it, the where result), a third of the RiskAnalyzer's peak
    memory at stop() in the profile of issue 15.
    """
    drawdown = np.maximum.accumulate(curve)     # the running peak, overwritten below
    no_peak = ~(drawdown > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(curve, drawdown, out=drawdown)
    np.subtract(1.0, drawdown, out=drawdown)
    drawdown[no_peak] = 0.0
    return drawdown


def max_drawdown_details(equity) -> dict:
    """Deepest drawdown of ``equity`` and where it happened (indices).

    Keys: ``max_drawdown`` (positive fraction, 0 when the curve never fell),
    ``peak_index`` (last observation at the peak before the trough),
    ``trough_index`` (first observation at the deepest point) and
    ``recovery_index`` (first observation after the trough back at or above
    the peak; ``None`` while under water). Indices are ``None`` when there was
    no drawdown.
    """
    curve = _clipped_at_zero(equity)
    empty = {"max_drawdown": 0.0, "peak_index": None, "trough_index": None,
             "recovery_index": None}
    if curve.size < 2:
        return empty
    drawdown = _drawdown_of_clipped(curve)
    trough = int(np.argmax(drawdown))
    depth = float(drawdown[trough])
    del drawdown
    if depth <= 0.0:
        return empty
    peak_value = float(np.max(curve[: trough + 1]))
    # the last observation at the peak, the first back at it: argmax of a boolean mask
    # (its first True) rather than flatnonzero, whose index array can be 8 B a bar
    peak = trough - int(np.argmax(curve[trough::-1] == peak_value))
    recovered = curve[trough + 1:] >= peak_value
    recovery = int(np.argmax(recovered)) + trough + 1 if recovered.any() else None
    return {"max_drawdown": depth, "peak_index": peak, "trough_index": trough,
            "recovery_index": recovery}


def longest_under_water(equity, times, end_time: float | None = None) -> float:
    """Longest time in seconds from a peak to the recovery of that peak.

    A period under water runs from the peak observation to the first
    observation back at or above it; one still open at the end runs to
    ``end_time`` (default: the last stamp). 0.0 when never under water.
    """
    curve = _clipped_at_zero(equity)
    stamps = np.asarray(times, dtype=float)
    if curve.size < 2:
        return 0.0
    if end_time is None:
        end_time = float(stamps[-1])
    size = curve.size
    under = curve < np.maximum.accumulate(curve)
    del curve
    longest = 0.0
    # each run of consecutive under-water observations [first, last]: the edges of the
    # 0/1 flags padded with a 0 at each end, kept in int8 (1 B a bar, not int64's 8)
    flags = np.zeros(size + 2, dtype=np.int8)
    flags[1:-1] = under
    del under
    edges = np.diff(flags)
    for first, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        started = stamps[first - 1]  # the peak observation (under[0] is always False)
        ended = stamps[stop] if stop < size else end_time
        longest = max(longest, float(ended - started))
    return longest


def annual_volatility(returns, periods: float | None) -> float | None:
    """Sample std of ``returns`` (ddof=1) x sqrt(periods per year); None if < 2."""
    values = np.asarray(returns, dtype=float)
    if values.size < 2 or periods is None:
        return None
    return finite_or_none(_std(values) * math.sqrt(periods))


def sharpe_ratio(returns, periods: float | None) -> float | None:
    """Annualised Sharpe ratio, risk-free 0. None if < 2 returns or zero deviation."""
    values = np.asarray(returns, dtype=float)
    if values.size < 2 or periods is None:
        return None
    std = _std(values)
    if std == 0.0:
        return None
    return finite_or_none(float(np.mean(values)) / std * math.sqrt(periods))


def sortino_ratio(returns, periods: float | None) -> float | None:
    """Annualised Sortino ratio (target 0). None if < 2 returns or no downside."""
    values = np.asarray(returns, dtype=float)
    if values.size < 2 or periods is None:
        return None
    losses = np.minimum(values, 0.0)
    losses *= losses            # squared in place (x ** 2 is x * x)
    downside = math.sqrt(float(np.mean(losses)))
    if downside == 0.0:
        return None
    return finite_or_none(float(np.mean(values)) * periods / (downside * math.sqrt(periods)))


def cagr(start_value: float, end_value: float, years: float | None) -> float | None:
    """Compound annual growth rate; -1 when ``end_value`` <= 0.

    None when ``years`` is unknown or 0, the start is not positive, or the
    figure overflows a float (a big return over a few hours).
    """
    if years is None or years <= 0 or start_value <= 0:
        return None
    if end_value <= 0:
        return -1.0
    try:
        return finite_or_none((end_value / start_value) ** (1.0 / years) - 1.0)
    except OverflowError:
        return None


# A drawdown this small is floating-point noise in the equity curve, not a loss. A float64
# equity value carries ~1.1e-16 of relative precision, so a drawdown d is known only to about
# 2.2e-16 / d of itself: above 1e-8 that is better than 1e-7 of the Calmar ratio, below it
# the ratio is mostly rounding (d = 1.6e-12 gave -2920.0 here, -2919.90 in empyrical).
NOISE_DRAWDOWN = 1e-8


def calmar_ratio(growth: float | None, max_drawdown: float) -> float | None:
    """CAGR / max drawdown (positive fraction); None when either is undefined or 0.

    A drawdown at or below ``NOISE_DRAWDOWN`` (1e-8, a millionth of a percent) counts as 0:
    no real drawdown.
    """
    if growth is None or not max_drawdown or max_drawdown <= NOISE_DRAWDOWN:
        return None
    return finite_or_none(growth / max_drawdown)


def daily_returns(equity, times, interval: float | None) -> np.ndarray:
    """Returns of the equity resampled to the last value of each UTC day.

    ``equity[0]`` (the starting value) is the reference of the first day.
    Days without a bar are skipped, not filled. With bars of a day or longer
    (or an unknown interval) the bar returns are used as they are.
    """
    curve = np.asarray(equity, dtype=float)
    stamps = np.asarray(times, dtype=float)
    if curve.size < 2:
        return np.empty(0)
    if interval is None or interval >= SECONDS_PER_DAY:
        return simple_returns(curve)
    days = stamps[1:] / SECONDS_PER_DAY
    np.floor(days, out=days)
    # bar i is its day's last when days[i + 1] - days[i] != 0 (the last bar always is).
    # For floats, x - y != 0 is x != y except for two equal infinities (inf - inf is
    # NaN): the isinf term keeps that case. A mask, not np.diff's array: 7 B a bar less.
    new_day = days[1:] != days[:-1]
    new_day |= np.isinf(days[1:])
    last_of_day = np.append(np.flatnonzero(new_day), days.size - 1)
    daily = np.concatenate((curve[:1], curve[1:][last_of_day]))
    return simple_returns(daily)


def value_at_risk(returns, cutoff: float) -> float | None:
    """Historical VaR: the ``cutoff`` percentile of ``returns`` (a return)."""
    values = np.asarray(returns, dtype=float)
    if values.size == 0:
        return None
    return finite_or_none(np.percentile(values, 100.0 * cutoff))


def conditional_value_at_risk(returns, cutoff: float) -> float | None:
    """Historical CVaR: mean of the ``floor((n-1)*cutoff) + 1`` lowest returns."""
    values = np.sort(np.asarray(returns, dtype=float))
    if values.size == 0:
        return None
    tail = int((values.size - 1) * cutoff) + 1
    return finite_or_none(np.mean(values[:tail]))


def risk_summary(equity, times, interval: float | None,
                 ruin_threshold: float = DEFAULT_RUIN_THRESHOLD) -> dict:
    """Every risk figure of an equity curve, JSON-ready.

    Parameters
    ----------
    equity : array of float, quote currency, or a :class:`LazyValues`
        Starting value, then the value after each bar (length bars + 1). Only read.
    times : array of float, POSIX seconds, or a function returning it
        Stamps of ``equity`` (``times[0]`` one interval before the first bar).
        A function is called once, after the figures of the bar returns: the
        caller need not hold the stamps while the returns are computed (a
        lower memory peak for a long run).
    interval : float or None, seconds
        Bar interval; None when unknown (fewer than two bars).
    ruin_threshold : float
        ``ruined`` is true once equity falls below this fraction of the start
        (or reaches 0).

    Returns a dict; dates are naive-UTC ISO strings, durations seconds:
    ``total_return`` (final / start - 1, can be < -1), ``cagr``, ``volatility``,
    ``sharpe``, ``sortino``, ``calmar``, ``max_drawdown`` (positive fraction),
    ``max_drawdown_start`` (the peak), ``max_drawdown_trough``,
    ``max_drawdown_recovery`` (None while under water),
    ``longest_time_under_water``, ``var_95``, ``cvar_95``, ``var_99``,
    ``cvar_99`` (daily returns, negative for losses), ``ruined``, ``ruin_dt``,
    ``ruin_threshold``, ``bankrupt_dt`` (first bar with equity <= 0),
    ``start_value``, ``end_value``, ``lowest_value``, ``bars``,
    ``bar_interval``, ``periods_per_year``, ``years``, ``daily_returns`` (how many
    daily returns VaR/CVaR were computed from, up to the ruin).

    Memory: every pass over the curve runs ``CHUNK_BARS`` bars at a time (the figures are
    the very floats the whole-array functions above give, see :mod:`.exact_sums`), so
    beyond ``equity`` and the stamps it holds a few chunks, not arrays of the curve's
    length. The one exception is an interval of a day or more (or unknown): the daily
    returns are then the bar returns, one array of ``bars`` floats.
    """
    full = equity if isinstance(equity, LazyValues) else np.asarray(equity, dtype=float)
    start_value = float(full[0])
    end_value = float(full[-1])
    bars = int(full.size - 1)
    periods = periods_per_year(interval)
    years = bars * interval / SECONDS_PER_YEAR if interval else None
    chunk = CHUNK_BARS      # read at call time: the tests set a small one

    ruin_index, ruin_bar = _first_ruin_bars(full, ruin_threshold * start_value, chunk)
    curve = _RuinedCurve(full, ruin_index)
    returns_count = curve.size - 1 if start_value > 0 else 0
    volatility, sharpe, sortino = _return_ratios(curve, returns_count, periods, chunk)
    bar_daily = interval is None or interval >= SECONDS_PER_DAY
    if bar_daily:   # the daily returns are the bar returns: made, used, freed before the stamps
        tail = _tail_figures(_bar_returns(curve, returns_count, chunk))
    stamps = times() if callable(times) else times
    if not isinstance(stamps, LazyStamps):
        stamps = np.asarray(stamps, dtype=float)
    details, under_water = _drawdowns(curve, _prefix(stamps, curve.size), float(stamps[-1]),
                                      chunk)
    if ruin_index is not None:
        details["max_drawdown"] = 1.0  # clipped at 0: exactly everything lost
    growth = None
    if years and ruin_index is not None:
        growth = -1.0
    elif years:
        growth = cagr(start_value, curve.last, years)
    if not bar_daily:
        tail = _tail_figures(_last_of_day_returns(curve, _prefix(stamps, curve.size), chunk)
                             if start_value > 0 else np.empty(0))

    summary = {
        "total_return": finite_or_none(end_value / start_value - 1.0) if start_value > 0 else None,
        "cagr": growth,
        "volatility": volatility,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": calmar_ratio(growth, details["max_drawdown"]),
        "max_drawdown": float(details["max_drawdown"]),
        "max_drawdown_start": _stamp(stamps, details["peak_index"]),
        "max_drawdown_trough": _stamp(stamps, details["trough_index"]),
        "max_drawdown_recovery": _stamp(stamps, details["recovery_index"]),
        "longest_time_under_water": under_water,
        "ruined": ruin_bar is not None,
        "ruin_dt": _stamp(stamps, ruin_bar),
        "ruin_threshold": float(ruin_threshold),
        "bankrupt_dt": _stamp(stamps, ruin_index),
        "start_value": start_value,
        "end_value": end_value,
        "lowest_value": float(full.min()),      # a reduction: no temporary array
        "bars": bars,
        "bar_interval": interval,
        "periods_per_year": periods,
        "years": years,
        "daily_returns": tail.pop("count"),
    }
    summary.update(tail)
    return summary


# -- risk_summary's passes over the curve, a chunk of bars at a time ---------------------
#
# Each helper gives what the whole-array function above it gives on the curve
# truncate_at_ruin would return (same floats, same indices), reading ``equity`` itself.

#: bars a chunk in risk_summary's passes: each holds a few float64 arrays of this length
#: (32 KiB each; 16k bars held 2 MiB more at stop()), never one of the curve's. At least
#: exact_sums.PAIRWISE_BLOCK (the pairwise sums' leaf).
CHUNK_BARS = 1 << 12


class _RuinedCurve:
    """The curve :func:`truncate_at_ruin` returns, read from ``equity`` without a copy.

    ``size`` observations: ``equity[:size]``, except that a ruined curve's last one (the
    ruin observation) is 0.0. Slices of the input are only read, never written.
    """

    __slots__ = ("values", "size", "ruined")

    def __init__(self, values: np.ndarray, ruin_index: int | None):
        self.values = values
        self.ruined = ruin_index is not None
        self.size = values.size if ruin_index is None else ruin_index + 1

    @property
    def last(self) -> float:
        """The last observation of the curve (0.0 when ruined)."""
        return 0.0 if self.ruined else float(self.values[self.size - 1])

    def clipped(self, start: int, stop: int) -> np.ndarray:
        """``np.maximum(curve[start:stop], 0.0)`` (``stop`` capped at ``size``), a new array.

        The ruin observation needs no patch: it is <= 0, so clipped to a zero. Always
        clipped (not only when a value is below 0, as :func:`_clipped_at_zero`): the sign
        of a zero makes no difference to the drawdowns (see there).
        """
        return np.maximum(self.values[start:min(stop, self.size)], 0.0)

    def returns(self, start: int, stop: int) -> np.ndarray:
        """Bar returns ``[start, stop)`` (:func:`simple_returns` of the curve), a new array."""
        returns = np.divide(self.values[start + 1: stop + 1], self.values[start:stop])
        if self.ruined and stop >= self.size - 1:
            # the last return ends at the ruin observation, 0.0 in the truncated curve
            np.divide(0.0, self.values[stop - 1: stop], out=returns[-1:])
        returns -= 1.0
        return returns

    def gather(self, indices: np.ndarray) -> np.ndarray:
        """``curve[indices]`` (a few indices, sorted), a new array."""
        picked = self.values[indices]
        if self.ruined:
            picked[indices == self.size - 1] = 0.0
        return picked


def _first_ruin_bars(full: np.ndarray, limit: float, chunk: int) -> tuple[int | None, int | None]:
    """(first index >= 1 with equity <= 0, first index >= 1 with equity < ``limit`` or <= 0).

    The first is :func:`truncate_at_ruin`'s ruin index, the second risk_summary's ruin bar;
    None when there is none. Stops at the ruin: the ruin bar is at or before it.
    """
    ruin_bar = None
    for start in range(1, full.size, chunk):
        part = full[start: start + chunk]
        bankrupt = part <= 0.0
        if ruin_bar is None:
            below = part < limit
            below |= bankrupt
            if below.any():
                ruin_bar = start + int(np.argmax(below))    # argmax of a mask: its first True
        if bankrupt.any():
            return start + int(np.argmax(bankrupt)), ruin_bar
    return None, ruin_bar


def _return_ratios(curve: _RuinedCurve, count: int, periods: float | None,
                   chunk: int) -> tuple[float | None, float | None, float | None]:
    """(:func:`annual_volatility`, :func:`sharpe_ratio`, :func:`sortino_ratio`) of the bar returns.

    The ``count`` first returns of ``curve`` (0 when the start value is not positive).
    Two passes of pairwise sums over returns made a chunk at a time: the sum of the
    returns and of their squared losses (with the all-equal check of :func:`_std`), then
    the squared deviations from the mean.
    """
    if count < 2 or periods is None:
        return None, None, None
    first = curve.returns(0, 1)[0]
    all_equal = True

    def returns_and_losses(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        nonlocal all_equal
        returns = curve.returns(start, stop)
        all_equal = all_equal and bool(np.all(returns == first))
        losses = np.minimum(returns, 0.0)
        losses *= losses            # squared in place, as sortino_ratio
        return returns, losses

    total, losses_total = exact_sums.pairwise_sums(count, returns_and_losses, leaf=chunk)
    mean = total / count            # np.mean: the sum / n
    std = 0.0 if all_equal else exact_sums.sample_std(count, curve.returns, leaf=chunk,
                                                      mean_value=mean)
    # the formulas of annual_volatility, sharpe_ratio and sortino_ratio, the same floats
    volatility = finite_or_none(std * math.sqrt(periods))
    sharpe = None if std == 0.0 else finite_or_none(mean / std * math.sqrt(periods))
    downside = math.sqrt(losses_total / count)
    sortino = (None if downside == 0.0
               else finite_or_none(mean * periods / (downside * math.sqrt(periods))))
    return volatility, sharpe, sortino


def _bar_returns(curve: _RuinedCurve, count: int, chunk: int) -> np.ndarray:
    """The ``count`` first bar returns of ``curve`` as one array (:func:`simple_returns`)."""
    returns = np.empty(count)
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        returns[start:stop] = curve.returns(start, stop)
    return returns


def _drawdowns(curve: _RuinedCurve, stamps: np.ndarray, end_time: float,
               chunk: int) -> tuple[dict, float]:
    """(:func:`max_drawdown_details`, :func:`longest_under_water`) of ``curve``, one pass.

    ``stamps`` are the curve's, ``end_time`` (seconds) where a period still under water
    ends. The running peak is carried from chunk to chunk; a later chunk's deepest
    drawdown replaces the deepest so far only when strictly deeper, as np.argmax takes
    the first occurrence (and the first NaN, from inf / inf, as the deepest).
    """
    details = {"max_drawdown": 0.0, "peak_index": None, "trough_index": None,
               "recovery_index": None}
    if curve.size < 2:
        return details, 0.0
    trough = depth = peak_value = carried_peak = None
    longest = 0.0
    open_first = None   # first observation of a period under water still open
    for start in range(0, curve.size, chunk):
        values = curve.clipped(start, start + chunk)
        peak = np.maximum.accumulate(values)
        if carried_peak is not None:
            np.maximum(peak, carried_peak, out=peak)
        carried_peak = peak[-1]

        longest, open_first = _under_water_runs(values < peak, start, open_first, stamps,
                                                longest)
        drawdown = _drawdown_of_peak(values, peak)
        at = int(np.argmax(drawdown))
        deepest = drawdown[at]
        if trough is None or (not math.isnan(depth) and (math.isnan(deepest) or deepest > depth)):
            # the running peak at the trough is np.max(curve[:trough + 1])
            trough, depth, peak_value = start + at, float(deepest), float(peak[at])
    if open_first is not None:
        longest = _longer(longest, end_time - stamps[open_first - 1])
    if depth <= 0.0:
        return details, longest
    details.update(max_drawdown=depth, trough_index=trough,
                   peak_index=_last_at_peak(curve, trough, peak_value, chunk),
                   recovery_index=_first_recovery(curve, trough, peak_value, chunk))
    return details, longest


def _drawdown_of_peak(values: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """:func:`_drawdown_of_clipped` of a chunk given its running peak, a new array."""
    no_peak = ~(peak > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.divide(values, peak)
    np.subtract(1.0, drawdown, out=drawdown)
    drawdown[no_peak] = 0.0
    return drawdown


def _under_water_runs(under: np.ndarray, start: int, open_first: int | None,
                      stamps: np.ndarray, longest: float) -> tuple[float, int | None]:
    """The runs under water of one chunk: (longest so far, first of a run left open).

    ``under`` flags the chunk's observations below the running peak, ``start`` its first
    index, ``open_first`` the first observation of the run open at its start (None if
    none). A run from observation ``first`` to ``stop`` (the first back at the peak)
    lasts ``stamps[stop] - stamps[first - 1]``: from the peak observation before it.
    """
    flags = np.empty(under.size + 1, dtype=np.int8)     # 1 B a bar of the chunk
    flags[0] = open_first is not None
    flags[1:] = under
    edges = np.diff(flags)
    firsts = np.flatnonzero(edges == 1) + start
    stops = np.flatnonzero(edges == -1) + start
    if open_first is not None and stops.size:
        firsts = np.concatenate(([open_first], firsts))
        open_first = None
    if firsts.size > stops.size:    # the last run goes on into the next chunk
        open_first = int(firsts[-1])
        firsts = firsts[:-1]
    if firsts.size:
        longest = _longer(longest, stamps[stops] - stamps[firsts - 1])
    return longest, open_first


def _longer(longest: float, durations) -> float:
    """``longest = max(longest, float(d))`` for each of ``durations``, in one step.

    Python's max keeps ``longest`` unless a duration is greater (never a NaN one): the
    result is the greatest duration above ``longest``, else ``longest`` itself.
    """
    durations = np.atleast_1d(durations)
    greater = durations[durations > longest]
    return float(greater.max()) if greater.size else longest


def _last_at_peak(curve: _RuinedCurve, trough: int, peak_value: float, chunk: int) -> int:
    """The last observation at or before ``trough`` equal to ``peak_value`` (``trough`` if none).

    :func:`max_drawdown_details`' peak index, scanning back a chunk at a time.
    """
    stop = trough + 1
    while stop > 0:
        start = max(stop - chunk, 0)
        hits = np.flatnonzero(curve.clipped(start, stop) == peak_value)
        if hits.size:
            return start + int(hits[-1])
        stop = start
    return trough


def _first_recovery(curve: _RuinedCurve, trough: int, peak_value: float,
                    chunk: int) -> int | None:
    """The first observation after ``trough`` at or above ``peak_value``; None if none."""
    for start in range(trough + 1, curve.size, chunk):
        recovered = curve.clipped(start, start + chunk) >= peak_value
        if recovered.any():
            return start + int(np.argmax(recovered))
    return None


def _last_of_day_returns(curve: _RuinedCurve, stamps: np.ndarray, chunk: int) -> np.ndarray:
    """:func:`daily_returns` of ``curve`` for bars shorter than a day, a chunk at a time.

    Bar ``i`` (observation ``i + 1``) is its UTC day's last when the next bar's day
    differs or is infinite (daily_returns' inf - inf case), and the last bar always is.
    Only those indices, one a day, are kept; ``stamps`` are the curve's.
    """
    if curve.size < 2:
        return np.empty(0)
    day_count = stamps.size - 1     # daily_returns' days: one a bar
    lasts = []
    for start in range(0, day_count - 1, chunk):
        stop = min(start + chunk, day_count - 1)
        days = stamps[start + 1: stop + 2] / SECONDS_PER_DAY    # days[start .. stop]
        np.floor(days, out=days)
        new_day = days[1:] != days[:-1]
        new_day |= np.isinf(days[1:])
        lasts.append(np.flatnonzero(new_day) + start)
    lasts.append(np.array([day_count - 1]))
    last_of_day = np.concatenate(lasts)
    daily = np.concatenate((curve.values[:1], curve.gather(last_of_day + 1)))
    return simple_returns(daily)


def _tail_figures(daily: np.ndarray) -> dict:
    """VaR and CVaR of the daily returns (``var_95``, ``cvar_95``, ...) and their ``count``."""
    tail = {"count": int(daily.size)}
    for suffix, cutoff in VAR_CUTOFFS.items():
        tail["var_" + suffix] = value_at_risk(daily, cutoff)
        tail["cvar_" + suffix] = conditional_value_at_risk(daily, cutoff)
    return tail


def _std(values: np.ndarray) -> float:
    """Sample std (ddof=1), exactly 0 when every value is equal (no float residue)."""
    if np.all(values == values[0]):
        return 0.0
    return float(np.std(values, ddof=1))


class LazyValues:
    """A float64 column of ``size`` entries, made only where it is read.

    ``values_at(indices)`` returns a new float64 array of the entries at an
    int64 array of indices in ``[0, size)``. :func:`risk_summary` reads its
    inputs a chunk, or a few entries, at a time (``column[i]``, ``column[a:b]``,
    ``column[index_array]``, ``column.min()``), so the caller need not hold an
    array of every bar (8 B a bar at stop()). ``np.asarray(column)`` makes
    the whole column.
    """

    def __init__(self, size: int, values_at):
        self.size = int(size)
        self._values_at = values_at

    def prefix(self, size: int):
        """The first ``size`` entries, still lazy."""
        return type(self)(min(size, self.size), self._values_at)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self.size)
            return self._values_at(np.arange(start, stop, step, dtype=np.int64))
        if isinstance(key, np.ndarray):
            indices = key.astype(np.int64, copy=False)
            indices = np.where(indices < 0, indices + self.size, indices)
            if indices.size and (indices.min() < 0 or indices.max() >= self.size):
                raise IndexError("index out of range")
            return self._values_at(indices)
        index = int(key)
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError("index out of range")
        return self._values_at(np.array([index], dtype=np.int64))[0]

    def min(self) -> float:
        """``np.min`` of the column, a chunk at a time (NaN when one entry is NaN)."""
        if not self.size:
            raise ValueError("zero-size column has no minimum")
        lowest = [np.min(self[start:start + CHUNK_BARS])
                  for start in range(0, self.size, CHUNK_BARS)]
        return np.min(np.array(lowest))

    def __array__(self, dtype=None, copy=None):
        values = self._values_at(np.arange(self.size, dtype=np.int64))
        return values if dtype is None else values.astype(dtype, copy=False)


class LazyStamps(LazyValues):
    """The stamps of an equity curve (POSIX seconds), made only where they are read:
    ``stamps_at(indices)`` is :class:`LazyValues`' ``values_at``."""


def _prefix(stamps, size: int):
    """``stamps[:size]``, lazy for :class:`LazyStamps`."""
    return stamps.prefix(size) if isinstance(stamps, LazyStamps) else stamps[:size]


def _stamp(stamps: np.ndarray, index: int | None) -> str | None:
    return None if index is None else iso_utc(float(stamps[index]))
