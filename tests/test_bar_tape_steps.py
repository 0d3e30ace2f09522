"""BarTape's StepColumn (the wallet per bar, stored as steps) gives back every bar's value."""
import math

import numpy as np
from hypothesis import given, settings, strategies as st

from backtrader_leverage.analyzers._base import StepColumn


def test_steps_keep_every_bar_bit_for_bit():
    cash = 1000.0
    values = [cash, cash, cash, 990.5, 990.5, 0.0, -0.0, -0.0, 0.0, math.nan, math.nan, -12.25, 7]
    column = StepColumn()
    for value in values:
        column.append(value)
    dense = column.dense()
    assert len(column) == len(values) and dense.dtype == np.float64
    # the bits of each bar: -0.0 stays -0.0, NaN stays NaN, the int 7 becomes 7.0
    assert dense.tobytes() == np.array(values, dtype=np.float64).tobytes()
    # a step for each change only: 1000, 990.5, 0.0, -0.0, 0.0, nan, -12.25, 7 (a repeated
    # zero or NaN is a step of its own unless it is the same float object, as here)
    assert len(column.values) == 8


def test_an_unchanged_wallet_is_one_step():
    column = StepColumn()
    for _ in range(10_000):
        column.append(float("1234.5"))        # equal values, new float objects
    assert len(column.values) == 1 and len(column.dense()) == 10_000


@settings(deadline=None, max_examples=60)
@given(st.lists(st.sampled_from([0.0, -0.0, 1.5, -3.0, math.nan, math.inf, 1e-310]), max_size=60))
def test_steps_equal_a_float_per_bar(values):
    column = StepColumn()
    for value in values:
        column.append(value)
    assert column.dense().tobytes() == np.array(values, dtype=np.float64).tobytes()


@settings(deadline=None, max_examples=60)
@given(st.lists(st.sampled_from([0.0, -0.0, 1.5, -3.0, math.nan, 1e-310]), max_size=60))
def test_a_writer_that_skips_unchanged_bars_gives_the_same_bars(values):
    # the tape's usual recorder puts a bar only when the wallet is another float object
    # than the last one; extend_to fills the bars after the last put with its value
    appended, put = StepColumn(), StepColumn()
    for bar, value in enumerate(values):
        appended.append(value)
        if value is not put.last:
            put.put(bar, value)
    put.extend_to(len(values))
    assert len(put) == len(values)
    assert put.dense().tobytes() == appended.dense().tobytes()
    assert put.values.tobytes() == appended.values.tobytes()
