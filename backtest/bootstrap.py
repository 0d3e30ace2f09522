"""Stationary block bootstrap of OHLC bars (Politis & Romano, 1994), pure numpy.

A synthetic path re-orders the data's bars in blocks of random length, so that volatility
clusters and intrabar wicks survive resampling:

* the close moves by the data's close-to-close log returns, taken in blocks: each block
  starts at a uniformly drawn bar and runs on bar by bar (wrapping round from the last
  return to the first), and a new block starts at each bar with probability
  ``1 / mean_block_bars`` (so block lengths are geometric with that mean);
* each bar keeps its source bar's open, high and low *relative to its own close*
  (open/close, high/close, low/close ratios), so a bar that wicked 8 % below its close in
  the data wicks 8 % below its close on the path;
* the path starts at the data's first bar as it is (its open, high, low and close), so it
  starts at the first real close; bar ``t`` of the path stands at the data's bar ``t``'s
  timestamp (the caller keeps the real index).

Units: prices in quote currency per base unit; ``log_returns`` natural-log returns per bar;
``mean_block_bars`` bars. Every path is drawn from a ``numpy.random.Generator``; the ruin
runner gives path ``k`` of seed ``s`` the generator of ``SeedSequence(s, spawn_key=(k,))``
(:func:`path_generator`), so a path is the same whoever draws it and in whatever order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SECONDS_PER_HOUR = 3600.0


def mean_block_bars(block_hours: float, bar_seconds: float) -> float:
    """Mean block length in bars for a block length in hours and a bar length in seconds.

    24 hours of 1 h bars = 24 bars; of 5 min bars = 288; of 1 d bars = 1. Never below one
    bar (a block shorter than a bar means independent bars).
    """
    if not (math.isfinite(block_hours) and block_hours > 0):
        raise ValueError(f"block length must be > 0 hours, got {block_hours}")
    if not (math.isfinite(bar_seconds) and bar_seconds > 0):
        raise ValueError(f"bar length must be > 0 seconds, got {bar_seconds}")
    return max(1.0, block_hours * SECONDS_PER_HOUR / bar_seconds)


def path_generator(seed: int, path_number: int) -> np.random.Generator:
    """The generator of path ``path_number`` for ``seed``: child ``path_number`` of the seed.

    Equal to ``np.random.default_rng(np.random.SeedSequence(seed).spawn(n)[path_number])``
    for any n > path_number, without spawning the others.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(path_number),)))


def stationary_indices(generator: np.random.Generator, count: int, length: int,
                       mean_block: float) -> np.ndarray:
    """``length`` indices into ``count`` items, drawn by the stationary bootstrap.

    Index 0 and each index where a new block starts (probability ``1 / mean_block``) are
    uniform on ``[0, count)``; every other index is the previous one plus one, modulo
    ``count`` (the circular variant, so every item is equally likely at every position).
    """
    if count < 1:
        raise ValueError("the bootstrap needs at least one item to draw from")
    if length <= 0:
        return np.empty(0, dtype=np.int64)
    new_block = generator.random(length) < 1.0 / max(1.0, float(mean_block))
    new_block[0] = True
    block_starts = np.flatnonzero(new_block)
    first_items = generator.integers(0, count, size=len(block_starts))
    block_of = np.cumsum(new_block) - 1                    # block number of each position
    offsets = np.arange(length) - block_starts[block_of]   # position within its block
    return (first_items[block_of] + offsets) % count


@dataclass(frozen=True)
class BarBootstrap:
    """The data's bars prepared once for drawing many paths.

    Attributes
    ----------
    first_bar : ndarray, shape (4,)
        open, high, low, close of the data's first bar [quote currency].
    log_returns : ndarray, shape (n - 1,)
        log(close[t] / close[t - 1]) for t = 1 .. n - 1.
    ratios : ndarray, shape (n - 1, 3)
        open/close, high/close, low/close of bar t (the bar that return t ends on).
    volume : ndarray, shape (n - 1,)
        volume of bar t [base units], carried with its bar.
    mean_block : float
        mean block length [bars].
    """

    first_bar: np.ndarray
    first_volume: float
    log_returns: np.ndarray
    ratios: np.ndarray
    volume: np.ndarray
    mean_block: float

    @classmethod
    def from_arrays(cls, open_, high, low, close, volume, *, mean_block: float) -> "BarBootstrap":
        """Prepare bars from equal-length price arrays (quote currency, all > 0)."""
        open_, high, low, close, volume = (np.asarray(values, dtype=np.float64)
                                           for values in (open_, high, low, close, volume))
        if len(close) < 2:
            raise ValueError("the bootstrap needs at least 2 bars")
        if not (np.all(close > 0) and np.all(open_ > 0) and np.all(low > 0)):
            raise ValueError("the bootstrap needs prices > 0")
        ratios = np.column_stack([open_ / close, high / close, low / close])
        return cls(first_bar=np.array([open_[0], high[0], low[0], close[0]]),
                   first_volume=float(volume[0]),
                   log_returns=np.diff(np.log(close)), ratios=ratios[1:],
                   volume=volume[1:].copy(), mean_block=float(mean_block))

    @property
    def bars(self) -> int:
        """Bars per path [count]: the data's bar count."""
        return len(self.log_returns) + 1

    def draw(self, generator: np.random.Generator) -> dict:
        """One path: ``{"open", "high", "low", "close", "volume"}`` float64 arrays of n bars."""
        picks = stationary_indices(generator, len(self.log_returns), len(self.log_returns),
                                   self.mean_block)
        first_open, first_high, first_low, first_close = self.first_bar
        close = np.empty(self.bars)
        close[0] = first_close
        close[1:] = first_close * np.exp(np.cumsum(self.log_returns[picks]))
        ratios = self.ratios[picks]
        return {
            "open": np.concatenate([[first_open], close[1:] * ratios[:, 0]]),
            "high": np.concatenate([[first_high], close[1:] * ratios[:, 1]]),
            "low": np.concatenate([[first_low], close[1:] * ratios[:, 2]]),
            "close": close,
            "volume": np.concatenate([[self.first_volume], self.volume[picks]]),
        }
