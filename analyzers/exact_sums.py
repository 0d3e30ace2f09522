"""numpy's own float64 sum, mean and sample std of an array computed a slice at a time.

Pure functions, no backtrader import. The array is *virtual*: a count and a function
``values_at(start, stop)`` returning its values ``[start, stop)`` as a float64 array,
computed when asked (the returns of a slice of an equity curve, their squared deviations).
The whole array is never held, yet every result is the very float numpy gives for it.

Why this can be exact: ``np.add.reduce`` of a contiguous float64 array does not add left
to right. numpy sums it by pairwise recursion (``pairwise_sum`` in its
``loops_utils.h.src``): at most ``PAIRWISE_BLOCK`` (128) values are summed with eight
interleaved accumulators; a longer range of ``n`` values is split after
``n // 2 - (n // 2) % 8`` of them and the sums of the two halves are added. The reduction
starts from add's identity, 0.0, so ``np.add.reduce(a) == 0.0 + tree(a)``. Every node of
that tree is the same function of its own sub-range, so:

- a node of at most ``leaf`` values is summed by numpy itself, as
  ``np.add.reduce(node, initial=-0.0)`` (-0.0 + x is x for every x, -0.0 included: the
  node's sum bit for bit);
- the nodes above it are added here, in the same tree and order.

``leaf`` must be at least ``PAIRWISE_BLOCK``: below it numpy stops splitting, and so must
we. tests/test_risk_chunked.py checks the results against ``np.add.reduce``, ``np.mean``
and ``np.std(ddof=1)`` of the whole array: a numpy that summed differently would fail there.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

#: numpy's PW_BLOCKSIZE: the longest range its pairwise sum adds without splitting
PAIRWISE_BLOCK = 128
#: numpy splits a range at a multiple of its unroll factor (8 accumulators)
_UNROLL = 8
#: values summed by one numpy call: 1 << 14 float64 values are 128 KiB a slice
DEFAULT_LEAF = 1 << 14

ValuesAt = Callable[[int, int], np.ndarray]


def pairwise_split(count: int) -> int:
    """Size of the left part where numpy's pairwise sum splits ``count`` (> 128) values."""
    half = count // 2
    return half - half % _UNROLL


def pairwise_sum(count: int, values_at: ValuesAt, leaf: int = DEFAULT_LEAF) -> float:
    """``float(np.add.reduce(a))`` of the virtual float64 array ``a`` of ``count`` values.

    ``values_at(start, stop)`` returns ``a[start:stop]`` (float64, length ``stop - start``);
    it is called once for each node of numpy's summation tree with at most ``leaf`` values,
    in order, so the caller's slices cover ``[0, count)`` once and hold at most ``leaf``
    values at a time. 0.0 for ``count == 0`` (as numpy's empty sum).
    """
    return pairwise_sums(count, lambda start, stop: (values_at(start, stop),), leaf)[0]


def pairwise_sums(count: int, arrays_at: Callable[[int, int], Sequence[np.ndarray]],
                  leaf: int = DEFAULT_LEAF) -> tuple[float, ...]:
    """:func:`pairwise_sum` of several virtual arrays of ``count`` values in one traversal.

    ``arrays_at(start, stop)`` returns a sequence of k float64 arrays, each the slice
    ``[start, stop)`` of its own virtual array (k the same on every call): one pass computes
    what the k arrays share (the bar returns, say) once. Returns the k sums, each
    ``float(np.add.reduce(...))`` of its whole array.
    """
    if leaf < PAIRWISE_BLOCK:
        raise ValueError(f"leaf must be >= {PAIRWISE_BLOCK} (numpy splits no shorter range)")
    if count < 0:
        raise ValueError("count must be >= 0")
    tree = _node_sums(0, count, arrays_at, leaf)
    # numpy's reduction starts from add's identity +0.0 (an all -0.0 array sums to +0.0)
    return tuple(0.0 + total for total in tree)


def _node_sums(start: int, count: int, arrays_at, leaf: int) -> tuple[float, ...]:
    """Pairwise sums of the node ``[start, start + count)``, numpy's recursion above ``leaf``."""
    if count <= leaf:
        return tuple(_leaf_sum(values, count) for values in arrays_at(start, start + count))
    left_count = pairwise_split(count)
    left = _node_sums(start, left_count, arrays_at, leaf)
    right = _node_sums(start + left_count, count - left_count, arrays_at, leaf)
    return tuple(a + b for a, b in zip(left, right))


def _leaf_sum(values: np.ndarray, count: int) -> float:
    """numpy's pairwise sum of one node, exactly (started from -0.0, which changes nothing)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.shape != (count,):
        raise ValueError(f"values_at returned shape {values.shape}, expected ({count},)")
    return float(np.add.reduce(values, initial=-0.0))


def mean(count: int, values_at: ValuesAt, leaf: int = DEFAULT_LEAF) -> float:
    """``float(np.mean(a))`` of the virtual float64 array: its pairwise sum / ``count``.

    np.mean of float64 is ``np.add.reduce(a) / a.size`` (one true division). NaN for
    ``count == 0``, as numpy's mean of nothing (without its warning).
    """
    if count == 0:
        return math.nan
    return pairwise_sum(count, values_at, leaf) / count


def sample_std(count: int, values_at: ValuesAt, leaf: int = DEFAULT_LEAF,
               mean_value: float | None = None) -> float:
    """``float(np.std(a, ddof=1))`` of the virtual float64 array.

    numpy's order of operations (``_var`` and ``_std`` in numpy/_core/_methods.py):
    ``m = sum(a) / n``; ``d = a - m``; ``d = square(d)``; ``sqrt(sum(d) / (n - 1))``.
    ``mean_value``, when given, must be :func:`mean` of the same array (it saves that
    pass); ``values_at`` is then called once a node, else twice. NaN for ``count < 2``
    (numpy: NaN and a warning).
    """
    if count < 2:
        return math.nan
    centre = mean(count, values_at, leaf) if mean_value is None else mean_value

    def squared_deviations(start: int, stop: int) -> np.ndarray:
        deviations = np.subtract(np.asarray(values_at(start, stop), dtype=np.float64), centre)
        return np.square(deviations, out=deviations)

    variance = pairwise_sum(count, squared_deviations, leaf) / (count - 1)
    return float(np.sqrt(variance))
