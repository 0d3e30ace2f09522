"""risk_summary a chunk of bars at a time (analyzers/risk_metrics.py, analyzers/exact_sums.py).

The reference below is a copy of ``risk_summary`` as it was before its passes were
chunked (main at 17fc8b8), with every function it called, the code verbatim (docstrings
cut to their first line). The new one must return the very same dict on every curve and
for any chunk size: same keys in the same order, same indices and None cases, floats bit
for bit (compared through ``repr``, which tells 0.0 from -0.0 and np.float64 from float).
"""
import contextlib
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtrader_leverage.analyzers import exact_sums
from backtrader_leverage.analyzers import risk_metrics as rm

# the "wild" curves and the inf cases overflow and divide inf by inf, in the reference as
# in the chunked passes: expected, and the results still have to agree
pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]

HOUR = 3600.0
DAY = 86_400.0
T0 = 1_600_000_000.0 - (1_600_000_000.0 % DAY)  # 2020-09-13 00:00 UTC, a day boundary
START = 10_000.0

# -- the reference: risk_summary at 17fc8b8 ------------------------------------------
# The functions it called are unchanged since then (and tested on their own in
# test_risk_metrics.py); only the way risk_summary put them together is copied here.
from backtrader_leverage.analyzers.risk_metrics import (  # noqa: E402
    DEFAULT_RUIN_THRESHOLD, SECONDS_PER_YEAR, VAR_CUTOFFS, _stamp, annual_volatility, cagr,
    calmar_ratio, conditional_value_at_risk, daily_returns, finite_or_none,
    longest_under_water, max_drawdown_details, periods_per_year, sharpe_ratio,
    simple_returns, sortino_ratio, truncate_at_ruin, value_at_risk)


def risk_summary(equity, times, interval: float | None,
                 ruin_threshold: float = DEFAULT_RUIN_THRESHOLD) -> dict:
    """Every risk figure of an equity curve, JSON-ready."""
    full = np.asarray(equity, dtype=float)
    start_value = float(full[0])
    end_value = float(full[-1])
    bars = int(full.size - 1)
    periods = periods_per_year(interval)
    years = bars * interval / SECONDS_PER_YEAR if interval else None

    if (full[1:] <= 0.0).any():
        curve, ruin_index = truncate_at_ruin(full)
    else:       # truncate_at_ruin would return a copy of the whole curve: read it as it is
        curve, ruin_index = full, None
    # The bar returns are used up (and freed) before the drawdown arrays are made:
    # a lower peak of memory at the analyzers' stop() (issue 15's profile).
    returns = simple_returns(curve) if start_value > 0 else np.empty(0)
    volatility = annual_volatility(returns, periods)
    sharpe = sharpe_ratio(returns, periods)
    sortino = sortino_ratio(returns, periods)
    del returns
    stamps = np.asarray(times() if callable(times) else times, dtype=float)
    details = max_drawdown_details(curve)
    if ruin_index is not None:
        details["max_drawdown"] = 1.0  # clipped at 0: exactly everything lost
    growth = None
    if years and ruin_index is not None:
        growth = -1.0
    elif years:
        growth = cagr(start_value, float(curve[-1]), years)
    daily = daily_returns(curve, stamps[: curve.size], interval) if start_value > 0 else np.empty(0)

    # the first bar below the threshold: argmax of the mask (its first True), not an index
    # array of every such bar
    below = (full[1:] < ruin_threshold * start_value) | (full[1:] <= 0.0)
    ruin_bar = int(np.argmax(below)) + 1 if below.any() else None
    del below
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
        "longest_time_under_water": longest_under_water(
            curve, stamps[: curve.size], end_time=float(stamps[-1])),
        "ruined": ruin_bar is not None,
        "ruin_dt": _stamp(stamps, ruin_bar),
        "ruin_threshold": float(ruin_threshold),
        "bankrupt_dt": _stamp(stamps, ruin_index),
        "start_value": start_value,
        "end_value": end_value,
        "lowest_value": float(np.min(full)),
        "bars": bars,
        "bar_interval": interval,
        "periods_per_year": periods,
        "years": years,
        "daily_returns": int(daily.size),
    }
    for suffix, cutoff in VAR_CUTOFFS.items():
        summary["var_" + suffix] = value_at_risk(daily, cutoff)
        summary["cvar_" + suffix] = conditional_value_at_risk(daily, cutoff)
    return summary


reference_summary = risk_summary    # the copy above, by a name that says what it is


# -- helpers ---------------------------------------------------------------------------

@contextlib.contextmanager
def chunk_bars(size):
    """risk_metrics.CHUNK_BARS set to ``size`` bars for the block."""
    saved = rm.CHUNK_BARS
    rm.CHUNK_BARS = size
    try:
        yield
    finally:
        rm.CHUNK_BARS = saved


def assert_same_summary(equity, times, interval, ruin_threshold=DEFAULT_RUIN_THRESHOLD,
                        chunk=None):
    """The chunked risk_summary equals the reference, read-only input, stamps asked once."""
    equity = np.array(equity, dtype=float)
    times = np.array(times, dtype=float)
    expected = reference_summary(equity, times, interval, ruin_threshold)
    equity.setflags(write=False)        # the chunked passes must only read the curve
    calls = []
    with chunk_bars(chunk or rm.CHUNK_BARS):
        got = rm.risk_summary(equity, lambda: calls.append(1) or times, interval,
                              ruin_threshold=ruin_threshold)
    assert calls == [1]
    assert repr(got) == repr(expected)
    return got


def stamps_for(size, interval, rng=None, gaps=False):
    """Stamps of ``size`` observations: one interval before the first bar, then each bar.

    The first bar falls at a random second of its day; ``gaps`` repeats a few stamps and
    skips a few stretches (an exchange outage). Interval None: hourly stamps.
    """
    rng = rng or np.random.default_rng(0)
    step = HOUR if interval is None else interval
    first = T0 + float(rng.integers(0, int(DAY)))
    spacing = np.ones(max(size - 1, 0))
    if gaps and spacing.size:
        odd = rng.random(spacing.size) < 0.01
        spacing[odd] = rng.choice([0.0, 2.0, 7.0, 1500.0], size=int(odd.sum()))
    stamps = np.empty(size)
    if size:
        stamps[0] = first - step
        stamps[1:] = first + step * np.concatenate(([0.0], np.cumsum(spacing[1:])))
    return stamps


KINDS = ("walk", "quantized", "steps", "flat", "zigzag", "rising", "wild")
STARTS = ("usual", "usual", "usual", "zero", "negative", "negative_zero", "tiny")
AFTER_RUIN = ("as_is", "negative", "recovered")


def build_curve(seed, size, kind, start, ruin_at, after_ruin, dip):
    """An equity curve of ``size`` values with the features asked for.

    ``kind`` shapes the bars (``quantized`` moves in whole units: equal drawdowns, flat
    stretches, repeated peaks; ``zigzag`` makes a new peak every other bar; ``wild``
    spans hundreds of decades); ``start`` the starting value; ``ruin_at`` (a fraction of
    the bars, or None) puts a value <= 0 there, followed by ``after_ruin``; ``dip`` puts a
    value below the ruin threshold but above 0 somewhere.
    """
    rng = np.random.default_rng(seed)
    bars = max(size - 1, 0)
    if kind == "walk":
        moves = rng.normal(rng.uniform(-1e-3, 1e-3), rng.choice([1e-4, 1e-2, 0.05]), bars)
        values = START * np.cumprod(1.0 + moves)
    elif kind == "quantized":
        units = np.cumsum(rng.choice([-1.0, 0.0, 0.0, 1.0], bars))
        values = START + units * rng.choice([1.0, 50.0])
    elif kind == "steps":
        levels = START * rng.uniform(0.5, 1.5, bars // 50 + 1)
        values = np.repeat(levels, 50)[:bars]
    elif kind == "flat":
        values = np.full(bars, START if rng.random() < 0.5 else START * 1.5)
    elif kind == "zigzag":
        index = np.arange(bars)
        values = START + index // 2 - 0.5 * (index % 2)
    elif kind == "rising":
        values = START + np.arange(bars) * rng.choice([0.5, 1.0, 3.0])
    else:   # wild
        values = np.exp(np.clip(np.cumsum(rng.normal(0.0, 20.0, bars)), -560.0, 560.0))
    curve = np.empty(size)
    if size == 0:
        return curve
    curve[0] = {"usual": START, "zero": 0.0, "negative": -START, "negative_zero": -0.0,
                "tiny": 1e-300}[start]
    curve[1:] = values
    if dip and bars:
        curve[1 + int(rng.integers(0, bars))] = START * 0.05
    if ruin_at is not None and bars:
        at = 1 + min(int(ruin_at * bars), bars - 1)
        curve[at] = rng.choice([0.0, -0.0, -float(rng.uniform(1.0, START))])
        if after_ruin == "negative":
            curve[at + 1:] = -np.abs(curve[at + 1:]) - 1.0
        elif after_ruin == "recovered":
            curve[at + 1:] = START * rng.uniform(0.5, 2.0, size - at - 1)
    return curve


# -- risk_summary: the chunked passes give the reference's dict -------------------------

#: lengths of the curves tried, drawn uniformly (hypothesis's integers favour small ones)
SIZES = {"tiny": (1, 12), "small": (13, 3_000), "large": (3_000, 70_000)}


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sizes=st.sampled_from(["tiny", "small", "large", "large"]),
       kind=st.sampled_from(KINDS), start=st.sampled_from(STARTS),
       ruin_at=st.one_of(st.none(), st.floats(0.0, 1.0)), after_ruin=st.sampled_from(AFTER_RUIN),
       dip=st.booleans(), interval=st.sampled_from([60.0, HOUR, DAY, None]),
       gaps=st.booleans(), chunk=st.sampled_from([128, 256, 1000, 1024, 4099, None]),
       threshold=st.sampled_from([DEFAULT_RUIN_THRESHOLD, 0.0, 0.5, 1.0, 1.5]))
def test_chunked_summary_equals_the_reference(seed, sizes, kind, start, ruin_at, after_ruin, dip,
                                              interval, gaps, chunk, threshold):
    low, high = SIZES[sizes]
    size = int(np.random.default_rng(seed + 2).integers(low, high + 1))
    equity = build_curve(seed, size, kind, start, ruin_at, after_ruin, dip)
    times = stamps_for(size, interval, np.random.default_rng(seed + 1), gaps)
    assert_same_summary(equity, times, interval, threshold, chunk)


@pytest.mark.parametrize("interval", [60.0, HOUR, DAY, None, 900.0, 2 * DAY, 0.0, -60.0])
@pytest.mark.parametrize("chunk", [128, 256, 1024])
@pytest.mark.parametrize("values", [
    [START],
    [START, START],
    [START, START * 0.9],
    [START, START * 0.9, START],
    [START, 0.0, START],
    [START, -0.0],
    [START, -5.0, START, -6.0],
    [0.0, START, START * 0.5],
    [-START, START, START * 0.5, -1.0],
    [-0.0, 0.0, -0.0, 0.0],
    [START, START * 0.05, START * 2.0],
    [1.0, 2.0, 4.0, 8.0, 16.0],                 # equal returns: std exactly 0 -> None
    [START, math.inf, START],                   # inf / inf drawdown: a NaN, deepest
    [START, START * 2, math.inf, START, math.inf, START * 3],
    [START, 1e-320, START],                     # a subnormal: a return of ~1e323 -> inf
], ids=repr)
def test_small_curves_equal_the_reference(values, interval, chunk):
    assert_same_summary(values, stamps_for(len(values), interval), interval, chunk=chunk)


def test_an_empty_curve_fails_as_before():
    with pytest.raises(IndexError):
        reference_summary(np.empty(0), np.empty(0), HOUR)
    with pytest.raises(IndexError):
        rm.risk_summary(np.empty(0), np.empty(0), HOUR)


CHUNK = 256


def long_curve(size=6 * CHUNK + 77):
    """A flat curve of ``size`` values, to place drawdowns on chunk boundaries by hand."""
    return np.full(size, START)


@pytest.mark.parametrize("interval", [60.0, HOUR, DAY])
@pytest.mark.parametrize("edge", [-1, 0, 1])
def test_features_on_chunk_boundaries(interval, edge):
    b = 2 * CHUNK + edge
    cases = []
    # two equally deep drawdowns in different chunks: the first one is the trough
    curve = long_curve()
    curve[b] = curve[3 * CHUNK + edge] = START * 0.5
    cases.append(curve)
    # the second one deeper by the last bit
    curve = curve.copy()
    curve[3 * CHUNK + edge] = np.nextafter(START * 0.5, 0.0)
    cases.append(curve)
    # a peak chunks before the trough, the recovery chunks after it, runs across boundaries
    curve = long_curve()
    curve[CHUNK + edge] = START * 2.0
    curve[CHUNK + edge + 1: 5 * CHUNK] = START * 1.5
    curve[3 * CHUNK + edge] = START * 0.7
    curve[5 * CHUNK + edge:] = START * 2.0
    cases.append(curve)
    # under water from a boundary to the end (an open run), new peaks every bar before it
    curve = START + np.arange(6 * CHUNK + 77, dtype=float)
    curve[b:] = START
    cases.append(curve)
    # ruin exactly at, before and after a boundary, with the curve going on
    for at in (b, CHUNK, CHUNK * 4 + edge):
        curve = START * (1.0 + 0.01 * np.sin(np.arange(6 * CHUNK + 77)))
        curve[at] = 0.0
        cases.append(curve)
    for curve in cases:
        times = stamps_for(curve.size, interval)
        for chunk in (CHUNK, CHUNK + 1, 1 << 14):
            assert_same_summary(curve, times, interval, chunk=chunk)


@pytest.mark.parametrize("chunk", [128, 200, 1024])
def test_day_ends_on_chunk_boundaries(chunk):
    # hourly bars whose day ends fall on, before and after the chunk boundaries
    size = 24 * 40 + 1
    rng = np.random.default_rng(3)
    equity = START * np.cumprod(1.0 + rng.normal(0.0, 0.01, size))
    for shift in range(-2, 3):
        times = T0 + HOUR * (np.arange(size) + shift + chunk % 24)
        assert_same_summary(equity, times, HOUR, chunk=chunk)
    # a day boundary that is an infinite stamp: daily_returns' isinf case
    times = T0 + HOUR * np.arange(size)
    times[-3:] = math.inf
    assert_same_summary(equity, times, HOUR, chunk=chunk)


def test_constant_curves_have_no_ratios():
    # std exactly 0 (not a float residue of the mean): volatility 0, no Sharpe, no Sortino
    for size in (3, 129, 5_000):
        for chunk in (128, 1000):
            got = assert_same_summary(np.full(size, START), stamps_for(size, HOUR), HOUR,
                                      chunk=chunk)
            assert got["volatility"] == 0.0 and got["sharpe"] is None and got["sortino"] is None


# -- exact_sums: numpy's pairwise sum, mean and std on virtual arrays ------------------

def _arrays(rng, size):
    """Values of very different magnitudes and both signs: the order of additions shows."""
    yield rng.standard_normal(size) * 10.0 ** rng.integers(-8, 9, size)
    yield rng.uniform(0.0, 1.0, size)
    yield np.where(rng.random(size) < 0.5, 1e16, -1e16) + rng.standard_normal(size)


def _lengths():
    near = [8 * k for k in (16, 64, 128, 1000)] + [1 << p for p in range(7, 19)]
    lengths = set(range(1, 300))
    lengths.update(n + d for n in near for d in range(-9, 10))
    lengths.update(np.random.default_rng(7).integers(300, 300_000, 30).tolist())
    return sorted(lengths)


LEAVES = [128, 129, 136, 255, 1000, 1024, exact_sums.DEFAULT_LEAF]


def test_pairwise_sum_is_numpys_sum_for_many_lengths_and_leaves():
    rng = np.random.default_rng(11)
    for size in _lengths():
        for values in _arrays(rng, size):
            expected = repr(float(np.add.reduce(values)))
            for leaf in LEAVES:
                if leaf < 1000 and size > 70_000:
                    continue    # thousands of nodes a sum: slow, and no new case
                got = exact_sums.pairwise_sum(size, lambda a, b: values[a:b], leaf)
                assert repr(got) == expected, (size, leaf)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(0, 300_000),
       leaf=st.one_of(st.sampled_from(LEAVES), st.integers(128, 5_000)))
def test_pairwise_sum_mean_and_std_are_numpys(seed, size, leaf):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(size) * 10.0 ** rng.integers(-6, 7, size) + rng.uniform(-5, 5)
    at = lambda start, stop: values[start:stop]     # noqa: E731
    assert repr(exact_sums.pairwise_sum(size, at, leaf)) == repr(float(np.add.reduce(values)))
    if size >= 1:
        assert repr(exact_sums.mean(size, at, leaf)) == repr(float(np.mean(values)))
    if size >= 2:
        assert repr(exact_sums.sample_std(size, at, leaf)) == repr(float(np.std(values, ddof=1)))
        mean = exact_sums.mean(size, at, leaf)
        assert repr(exact_sums.sample_std(size, at, leaf, mean_value=mean)) == \
            repr(float(np.std(values, ddof=1)))


def test_the_sum_of_negative_zeros_is_positive_zero_as_numpys():
    for size in (1, 7, 200, 5_000):
        zeros = np.full(size, -0.0)
        assert repr(exact_sums.pairwise_sum(size, lambda a, b: zeros[a:b], 128)) == \
            repr(float(np.add.reduce(zeros))) == "0.0"


def test_a_plain_chunked_sum_would_not_do():
    # why the tree matters: summing fixed chunks and adding them up differs from numpy
    values = next(_arrays(np.random.default_rng(5), 100_000))
    plain = sum(float(np.add.reduce(values[a: a + 1000])) for a in range(0, values.size, 1000))
    assert plain != float(np.add.reduce(values))
    assert exact_sums.pairwise_sum(values.size, lambda a, b: values[a:b], 1000) == \
        float(np.add.reduce(values))


def test_values_at_sees_each_value_once_in_order_and_leaf_sized():
    calls = []
    total = exact_sums.pairwise_sum(
        10_000, lambda a, b: calls.append((a, b)) or np.ones(b - a), leaf=300)
    assert total == 10_000.0
    assert calls[0][0] == 0 and calls[-1][1] == 10_000
    assert all(prev[1] == nxt[0] for prev, nxt in zip(calls, calls[1:]))
    assert all(0 < b - a <= 300 for a, b in calls)


def test_pairwise_sums_adds_several_arrays_in_one_traversal():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(50_000), rng.standard_normal(50_000) * 1e6
    sums = exact_sums.pairwise_sums(x.size, lambda a, b: (x[a:b], y[a:b]), leaf=512)
    assert repr(sums) == repr((float(np.add.reduce(x)), float(np.add.reduce(y))))


def test_bad_leaf_or_slice_is_refused():
    values = np.ones(1000)
    with pytest.raises(ValueError):
        exact_sums.pairwise_sum(1000, lambda a, b: values[a:b], leaf=64)
    with pytest.raises(ValueError):
        exact_sums.pairwise_sum(1000, lambda a, b: values[a: b + 1], leaf=128)


# -- memory ----------------------------------------------------------------------------

@pytest.mark.parametrize("ruined", [False, True])
def test_peak_memory_is_a_few_chunks_not_the_curve(ruined):
    """risk_summary holds chunks beyond the input and the stamps, not arrays of the curve.

    Measured with CHUNK_BARS = 1 << 14: a peak of 1.4 B a value above the stamps' 8 B on
    400_000 values (about 530 KiB, a constant), against 10 B (16 B when ruined: the
    truncated copy) before the chunked passes.
    """
    size = 400_000
    rng = np.random.default_rng(1)
    equity = START * np.cumprod(1.0 + rng.normal(0.0, 1e-3, size))
    if ruined:
        equity[int(size * 0.8)] = -5.0

    def stamps():   # 8 B a value and no temporaries, as RiskAnalyzer._stamps
        times = np.arange(size, dtype=float)
        times *= 60.0
        times += T0
        return times

    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        rm.risk_summary(equity, stamps, 60.0)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if not was_tracing:
            tracemalloc.stop()
    beyond_stamps = (peak - 8 * size) / size
    assert beyond_stamps < 3.0, f"{beyond_stamps:.2f} B a value beyond the stamps"
