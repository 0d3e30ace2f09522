"""numpy's float64 sums, bit for bit, over values made a chunk at a time.

``np.add.reduce`` of a contiguous float64 array is a pairwise sum over the
whole array: halves split at a multiple of 8 down to blocks numpy sums itself.
:func:`pairwise_sum` walks the same splits over a *virtual* array whose values
a callable hands out a range at a time, so a summary of millions of bars
(a mean, a deviation) needs no array of every bar (issue 15: ~8 B a bar of
peak memory per temporary at the analyzers' stop()).
"""
from __future__ import annotations

import numpy as np

#: largest range handed to numpy in one piece (a multiple of 8, >= numpy's 128-value block)
LEAF = 1 << 13


def pairwise_sum(count: int, values_at, leaf: int = LEAF) -> float:
    """``np.add.reduce(v)`` of the virtual float64 array ``v`` of ``count`` values.

    ``values_at(start, stop)`` returns ``v[start:stop]`` as a contiguous
    float64 array; the ranges asked for are disjoint and come left to right.
    Each range of up to ``leaf`` values is a node of numpy's own split, summed
    by numpy (``initial=-0.0`` adds nothing to any value, -0.0 included).
    """
    if count <= 0:
        return 0.0
    return float(_node(0, count, values_at, max(leaf, 128)))


def _node(start: int, count: int, values_at, leaf: int):
    if count <= leaf:
        return np.add.reduce(values_at(start, start + count), initial=-0.0)
    half = count // 2
    half -= half % 8
    return _node(start, half, values_at, leaf) + _node(start + half, count - half, values_at, leaf)
