"""``load_ohlcv``: one entry point for symbol data (cache, yfinance, synthetic).

Sources
-------
``auto``       cache first; what the cache lacks (before, after, and the newest
               cached bar, which may have been partial) is fetched from yfinance
               and merged into the cache.  If yfinance cannot be reached, the
               cached bars in range are used with one warning; with nothing
               cached, DataUnavailable names the two ways out.
``yfinance``   download the whole range (no cache read) and update the cache.
``cache``      cached bars only, never the network.
``synthetic``  the deterministic demo series of :mod:`data.synthetic`.
``ccxt``       an exchange through ccxt (``exchange=``, default ``binanceusdm``;
               unified symbols such as ``BTC/USDT:USDT``), paginated, cached and
               topped up the same way (:mod:`data.ccxt_source`). Mark-price
               klines: :func:`load_mark_ohlcv`; funding: :func:`load_funding_rates`.

``refresh=True`` re-downloads the whole range even when cached.  ``start``
is inclusive and ``end`` exclusive (as in yfinance); both are UTC (naive
values are read as UTC).
"""
from __future__ import annotations

import datetime as dt
import warnings

import pandas as pd

from . import yahoo
from .cache import CacheEntry, cache_dir, cache_path, read_cache, write_cache
from .errors import CacheCorrupt, CacheWarning, DataError, DataUnavailable
from .frames import finalize_frame
from .intervals import interval_seconds, normalize_interval
from .synthetic import DEFAULT_BARS, synthetic_ohlcv

SOURCES = ("auto", "yfinance", "cache", "synthetic", "ccxt")
MAX_SYNTHETIC_BARS = 500_000


def to_utc_timestamp(value, name: str) -> pd.Timestamp | None:
    """Parse a start/end value (str, date, datetime, Timestamp); naive means UTC."""
    if value is None:
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise DataError(f"{name} {value!r} is not a date/time (use e.g. 2024-01-31)") from None
    if pd.isna(stamp):
        raise DataError(f"{name} {value!r} is not a date/time (use e.g. 2024-01-31)")
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def range_text(start, end) -> str:
    """'between A and B', 'from A on', 'before B' or 'at all': a range with open ends named."""
    if start is not None and end is not None:
        return f"between {start} and {end}"
    if start is not None:
        return f"from {start} on"
    if end is not None:
        return f"before {end}"
    return "at all"


def check_range(start: pd.Timestamp | None, end: pd.Timestamp | None) -> None:
    """Raise DataError when start is not before end (end is exclusive)."""
    if start is not None and end is not None and start >= end:
        relation = "equals" if start == end else "is after"
        raise DataError(f"start {start} {relation} end {end} (end is exclusive): "
                        "give a start before the end")


def load_ohlcv(symbol: str, interval: str = "1d", start=None, end=None, source: str = "auto",
               refresh: bool = False, *, cache_folder=None,
               exchange="binanceusdm") -> pd.DataFrame:
    """Validated OHLCV bars for ``symbol`` (see the module docstring for sources).

    Returns the standard frame (UTC index, float open/high/low/close/volume,
    attrs symbol/source/synthetic/interval/missing_bars/largest_gap/...).
    ``cache_folder`` overrides the cache folder ($BTLEV_CACHE_DIR, data/cache/).
    Raises DataError (one line) for bad arguments or data, DataUnavailable when
    the data cannot be obtained, CacheCorrupt for a damaged cache file.
    """
    if source not in SOURCES:
        raise DataError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    interval = normalize_interval(interval)
    start_at, end_at = to_utc_timestamp(start, "start"), to_utc_timestamp(end, "end")
    check_range(start_at, end_at)
    if source == "synthetic":
        return _synthetic(symbol, interval, start_at, end_at)
    if source == "ccxt":
        from .ccxt_source import load_ccxt_klines
        return load_ccxt_klines(symbol, interval, start_at, end_at, exchange=exchange,
                                refresh=refresh, cache_folder=cache_folder)
    folder = cache_dir(cache_folder)
    path = cache_path(symbol, interval, folder)
    if source == "cache":
        entry = read_cache(path)
        if entry is None:
            raise DataUnavailable(f"nothing is cached for {symbol} {interval} in {folder}: "
                                  f"{yahoo.TWO_WAYS_OUT}")
        return _result(entry.frame, symbol, interval, start_at, end_at, "cache", path)
    yahoo.check_supported(interval)
    now = yahoo.utcnow()
    start_at = start_at if start_at is not None else yahoo.default_start(interval, now)
    end_at = end_at if end_at is not None else now
    check_range(start_at, end_at)
    if source == "yfinance" or refresh:
        return _download_all(symbol, interval, start_at, end_at, now, path, source)
    return _cache_then_download(symbol, interval, start_at, end_at, now, path)


def _synthetic(symbol, interval, start_at, end_at) -> pd.DataFrame:
    """The demo series over [start, end) when given, else DEFAULT_BARS bars."""
    bar_seconds = interval_seconds(interval)
    bars = DEFAULT_BARS
    if start_at is not None and end_at is not None and bar_seconds:
        bars = int((end_at - start_at).total_seconds() // bar_seconds)
    if bars > MAX_SYNTHETIC_BARS:
        raise DataError(f"synthetic range asks for {bars} {interval} bars; the limit is "
                        f"{MAX_SYNTHETIC_BARS}: shorten the range or use a coarser interval")
    if start_at is None and end_at is not None and bar_seconds:
        start_at = end_at - pd.Timedelta(seconds=bar_seconds * bars)
    kwargs = {"start": start_at} if start_at is not None else {}
    return synthetic_ohlcv(bars=bars, interval=interval, symbol=symbol, **kwargs)


def _result(frame, symbol, interval, start_at, end_at, source, path) -> pd.DataFrame:
    """Slice [start, end) and finalize; an empty slice is DataUnavailable."""
    selected = frame
    if start_at is not None:
        selected = selected[selected.index >= start_at]
    if end_at is not None:
        selected = selected[selected.index < end_at]
    if len(selected) == 0:
        held = (f"{frame.index[0]} to {frame.index[-1]}" if len(frame) else "no bars")
        raise DataUnavailable(f"no {symbol} {interval} bars {range_text(start_at, end_at)} "
                              f"(cache holds {held}): {yahoo.TWO_WAYS_OUT}")
    result = finalize_frame(selected, symbol=symbol, source=source,
                            label=f"{source} {symbol} {interval}", interval=interval)
    result.attrs["path"] = str(path)
    return result


def _merge(cached: pd.DataFrame | None, fetched: pd.DataFrame) -> pd.DataFrame:
    """Union of bars; a fetched bar replaces the cached bar with the same timestamp."""
    if cached is None or len(cached) == 0:
        return fetched
    combined = pd.concat([cached, fetched])
    combined = combined[~combined.index.duplicated(keep="last")]
    return combined.sort_index()


def _store(path, entry: CacheEntry, symbol: str, interval: str) -> None:
    write_cache(path, entry, symbol, interval)


def _download_all(symbol, interval, start_at, end_at, now, path, source) -> pd.DataFrame:
    """Fetch the whole range, merge it into the cache (replacing a damaged one), return it."""
    fetched = yahoo.fetch_yfinance(symbol, interval, start_at, end_at, now)
    try:
        entry = read_cache(path)
    except CacheCorrupt as error:
        warnings.warn(f"{error}; replacing it with the fresh download", CacheWarning,
                      stacklevel=3)
        entry = None
    if entry is None:
        merged = CacheEntry(fetched, start_at, end_at, now)
    else:
        kept = entry.frame[(entry.frame.index < start_at) | (entry.frame.index >= end_at)]
        merged = CacheEntry(_merge(kept, fetched), min(entry.covered_start, start_at),
                            max(entry.covered_end, end_at), now)
    _store(path, merged, symbol, interval)
    return _result(fetched, symbol, interval, start_at, end_at, "yfinance", path)


def missing_ranges(entry: CacheEntry, start_at, end_at,
                   bar_seconds: float | None) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Ranges of [start, end) that must be fetched to complete a cache entry.

    Before: [start, covered_start) when the request starts earlier.  After:
    from the newest cached bar (fetched again: it may have been partial) to
    end, when the request reaches past what was covered, or when it includes
    that newest bar and the bar had not closed when it was fetched.
    """
    ranges = []
    if start_at < entry.covered_start:
        ranges.append((start_at, min(entry.covered_start, end_at)))
    newest = entry.frame.index[-1]
    bar_length = pd.Timedelta(seconds=bar_seconds or 86400)
    newest_maybe_partial = entry.fetched_at < newest + bar_length
    if end_at > entry.covered_end or (newest_maybe_partial and start_at <= newest < end_at):
        ranges.append((max(newest, start_at), end_at))
    return ranges


def _cache_then_download(symbol, interval, start_at, end_at, now, path) -> pd.DataFrame:
    """The ``auto`` source: cached bars, topped up from yfinance (see module docstring)."""
    entry = read_cache(path)
    if entry is None:
        try:
            return _download_all(symbol, interval, start_at, end_at, now, path, "yfinance")
        except DataUnavailable as error:
            raise DataUnavailable(f"yfinance could not be reached and nothing is cached for "
                                  f"{symbol} {interval} ({_reason(error)}): "
                                  f"{yahoo.TWO_WAYS_OUT}") from None
    ranges = missing_ranges(entry, start_at, end_at, interval_seconds(interval))
    if not ranges:
        return _result(entry.frame, symbol, interval, start_at, end_at, "cache", path)
    try:
        fetched = [yahoo.fetch_yfinance(symbol, interval, first, stop, now)
                   for first, stop in ranges]
    except DataUnavailable as error:
        cached = entry.frame[(entry.frame.index >= start_at) & (entry.frame.index < end_at)]
        if len(cached) == 0:
            raise DataUnavailable(f"yfinance could not be reached and nothing is cached for "
                                  f"{symbol} {interval} in this range ({_reason(error)}): "
                                  f"{yahoo.TWO_WAYS_OUT}") from None
        warnings.warn(f"yfinance unavailable ({_reason(error)}); using {len(cached)} cached "
                      f"{symbol} {interval} bars from {cached.index[0]} to {cached.index[-1]}",
                      CacheWarning, stacklevel=3)
        return _result(entry.frame, symbol, interval, start_at, end_at, "cache", path)
    merged_frame = entry.frame
    for part in fetched:
        merged_frame = _merge(merged_frame, part)
    merged = CacheEntry(merged_frame, min(entry.covered_start, start_at),
                        max(entry.covered_end, end_at), now)
    _store(path, merged, symbol, interval)
    return _result(merged_frame, symbol, interval, start_at, end_at, "yfinance", path)


def _reason(error: DataError) -> str:
    """The part of a DataUnavailable message before the advice (for nesting)."""
    return str(error).split(": pass --csv", 1)[0]


def load_mark_ohlcv(symbol: str, interval: str = "1h", start=None, end=None, *,
                    exchange="binanceusdm", refresh: bool = False,
                    cache_folder=None) -> pd.DataFrame:
    """Mark-price klines of a perpetual through ccxt (``fetch_mark_ohlcv``), cached.

    Same frame as :func:`load_ohlcv` (volume 0), ``attrs['price'] == 'mark'``.
    An exchange whose ccxt class has ``has['fetchMarkOHLCV']`` False raises
    DataError naming the way out (a mark-price CSV).
    """
    from .ccxt_source import load_ccxt_klines
    return load_ccxt_klines(symbol, interval, start, end, exchange=exchange, mark=True,
                            refresh=refresh, cache_folder=cache_folder)


def load_funding_rates(symbol: str, start=None, end=None, *, exchange="binanceusdm",
                       refresh: bool = False, cache_folder=None) -> pd.Series:
    """Funding-rate history of a perpetual through ccxt (``fetch_funding_rate_history``), cached.

    A Series of rates (fractions per interval) indexed by UTC settlement time;
    ``attrs['interval_hours']`` where the venue reports it, else the spacing.
    """
    from .ccxt_source import load_ccxt_funding
    return load_ccxt_funding(symbol, start, end, exchange=exchange, refresh=refresh,
                             cache_folder=cache_folder)
