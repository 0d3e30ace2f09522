"""Resampling OHLCV bars to a coarser interval (e.g. 5m -> 1h, 1h -> 1d).

Aggregation per output bar: open = first open, high = max high, low = min low,
close = last close, volume = sum of volumes.  Output bars are labelled by
their open time (left edge, left-closed bins) and aligned to the Unix epoch
(00:00 UTC for hours and days; weeks start on Monday 00:00 UTC).  A bin with
no source bars is not created (the gap stays a gap, never filled); a bin with
fewer source bars than it should hold is kept and counted in
``attrs['incomplete_bars']``.

With ``start``/``end``, only source bars in [start, end) are aggregated, and a
bin the range cuts short (it begins before ``start`` or ends after ``end``) is
dropped and listed in ``attrs['dropped_partial_bars']`` (ISO-8601 strings).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataError
from .intervals import (SECONDS_PER_WEEK, infer_interval_seconds, interval_seconds,
                        normalize_interval)
from .validate import OHLCV_COLUMNS, gap_report

_AGGREGATION = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
_FIRST_MONDAY_UTC = pd.Timestamp("1970-01-05", tz="UTC")


def resample_ohlcv(frame: pd.DataFrame, interval: str, *, start: pd.Timestamp | None = None,
                   end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Aggregate a standard OHLCV frame into ``interval`` bars (see the module docstring).

    The target must be a whole multiple of the source interval.  ``start``
    (inclusive) and ``end`` (exclusive) are UTC Timestamps or None.  Returns a
    new standard frame; attrs are copied with ``interval``, the gap keys,
    ``resampled_from``, ``incomplete_bars`` and ``dropped_partial_bars`` updated.
    """
    target = normalize_interval(interval)
    target_seconds = interval_seconds(target)
    source_interval = frame.attrs.get("interval")
    source_seconds = (interval_seconds(source_interval) if source_interval
                      else infer_interval_seconds(frame.index))
    if target_seconds is None:
        raise DataError(f"resampling to calendar interval {target!r} is not supported; "
                        "use a fixed interval such as 1d or 1wk")
    if source_seconds is None or target_seconds < source_seconds or \
            target_seconds % source_seconds:
        raise DataError(f"cannot resample {source_interval or 'these'} bars to {target}: "
                        "the target must be a whole multiple of the source interval")
    origin = _FIRST_MONDAY_UTC if target_seconds % SECONDS_PER_WEEK == 0 else "epoch"
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= frame.index >= start
    if end is not None:
        keep &= frame.index < end
    bins = frame.loc[keep, list(OHLCV_COLUMNS)].resample(
        pd.Timedelta(seconds=target_seconds), closed="left", label="left", origin=origin)
    result = bins.agg(_AGGREGATION)
    counts = bins["close"].count()
    filled = counts.to_numpy() > 0
    bin_length = pd.Timedelta(seconds=target_seconds)
    cut_short = np.zeros(len(result), dtype=bool)
    if start is not None:
        cut_short |= result.index < start
    if end is not None:
        cut_short |= result.index + bin_length > end
    dropped = [stamp.isoformat() for stamp in result.index[filled & cut_short]]
    kept = filled & ~cut_short
    result = result.loc[kept]
    expected_per_bin = int(target_seconds // source_seconds)
    incomplete = int(np.count_nonzero(counts.to_numpy()[kept] < expected_per_bin))

    result.index.name = "datetime"
    report = gap_report(result.index, target_seconds)
    result.attrs = dict(frame.attrs)
    result.attrs.update({
        "interval": target,
        "resampled_from": source_interval,
        "incomplete_bars": incomplete,
        "dropped_partial_bars": dropped,
        **report.as_attrs(),
    })
    return result
