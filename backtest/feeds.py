"""The price data of a backtest: one or several validated OHLCV frames, each a named feed.

A backtest takes a frame or a list of frames (the strategy sees them as ``datas`` in that
order). A feed is named by its frame's ``attrs['symbol']`` (``load_csv`` sets the file
stem when the file names none, ``load_ohlcv`` the ticker); names must be unique, because
``feed_leverage`` and the per-feed liquidation counts are keyed by them.

backtrader aligns feeds by timestamp: each step of the strategy's clock is the next
timestamp of any feed, and a feed without a bar at that time keeps its last bar (before its
first bar it has none). :func:`clock` is that time line, the union of the feeds' bar times;
the per-bar series of a run have one value per clock step.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def as_frames(data) -> list[pd.DataFrame]:
    """A frame or a sequence of frames -> a list of frames (at least one)."""
    frames = [data] if isinstance(data, pd.DataFrame) else list(data)
    if not frames:
        raise ValueError("no price data: give at least one OHLCV frame")
    for frame in frames:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"price data must be pandas DataFrames, got {type(frame).__name__}")
    return frames


def feed_names(frames) -> list[str]:
    """Name of each feed: ``attrs['symbol']``, else ``data0``, ``data1``, ...; unique."""
    names = [str(frame.attrs.get("symbol") or f"data{index}")
             for index, frame in enumerate(as_frames(frames))]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"two feeds are named {duplicates[0]!r}; name them apart "
                         "(e.g. --csv ETH-USD=eth.csv, or a dict name -> frame)")
    return names


def named(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The frame (data shared, not copied) with ``attrs['symbol'] = name``."""
    out = frame.copy(deep=False)
    out.attrs = {**frame.attrs, "symbol": str(name)}
    return out


def clock(frames) -> pd.DatetimeIndex:
    """Sorted union of the feeds' bar times: the strategy's clock."""
    frames = as_frames(frames)
    index = frames[0].index
    for frame in frames[1:]:
        index = index.union(frame.index)
    return index


def utc_nanoseconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Bar times as int64 nanoseconds since the epoch, UTC (naive times taken as UTC)."""
    stamps = index.tz_convert("UTC") if index.tz is not None else index
    return stamps.as_unit("ns").asi8.astype(np.int64)


def close_on_clock(frames) -> np.ndarray:
    """Closes of every feed on the clock: float64 array (feeds x clock steps).

    NaN where a feed has no bar at that time (before its first bar, after its last, or in
    one of its gaps), so a plot shows where the feed had no data.
    """
    frames = as_frames(frames)
    index = clock(frames)
    return np.vstack([frame["close"].reindex(index).to_numpy(dtype=np.float64)
                      for frame in frames])
