"""exact_sums (analyzers/exact_sums.py): numpy's pairwise sum, mean and std, a slice at a time.

Every result must be the very float numpy gives for the whole array (compared through
``repr``, which tells 0.0 from -0.0).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtrader_leverage.analyzers import exact_sums


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
