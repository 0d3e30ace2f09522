"""Downloading OHLCV bars from Yahoo Finance through yfinance 1.x.

What yfinance really does, and how it is handled here:

* ``yf.download`` returns two-level columns (Price, Ticker) even for one
  ticker; the ticker's columns are selected and lower-cased.
* ``auto_adjust=True`` (the default) is passed explicitly; crypto has no
  dividends or splits, so Close is the traded close.
* ``end`` is exclusive, as it is for :func:`data.load_ohlcv`.
* Daily indexes come back tz-naive (dates in UTC for crypto), intraday ones
  tz-aware: both are made UTC.
* With no network ``download`` raises nothing and returns an EMPTY frame:
  an empty answer is a failure (:class:`DataUnavailable`).  HTTP 429 raises
  ``YFRateLimitError``; other network errors raise ``OSError`` and friends;
  all become one-line ``DataUnavailable`` messages.
* Under pandas 3 yfinance triggers ``Pandas4Warning``: filtered, not fatal.
  yfinance's own error log lines are muted during the call (the failure is
  reported by our exception instead).

Interval limits (``INTERVAL_LIMITS``, days): 1m bars only for the last 30
days, in requests of at most 7 days; 2m, 5m, 15m, 30m, 90m the last 60 days;
1h the last 730 days; daily and longer without limit.  Long requests are
split into allowed chunks; a start older than the limit is refused with a
message that states the limit.
"""
from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager

import pandas as pd

from .errors import DataError, DataUnavailable
from .validate import OHLCV_COLUMNS, validate_ohlcv

# interval -> (how far back yfinance serves bars, longest single request), in days;
# None means no limit.
INTERVAL_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "1m": (30, 7),
    "2m": (60, 60), "5m": (60, 60), "15m": (60, 60), "30m": (60, 60), "90m": (60, 60),
    "1h": (730, 365),
    "1d": (None, None), "5d": (None, None), "1wk": (None, None),
    "1mo": (None, None), "3mo": (None, None),
}
# Yahoo's earliest crypto bars are from 2014; a daily request without a start
# begins at Bitcoin's genesis block so nothing is cut off.
EARLIEST_DAILY_START = pd.Timestamp("2009-01-03", tz="UTC")
# Keep a default intraday start this far inside the lookback limit.
LOOKBACK_SAFETY = pd.Timedelta(hours=1)

TWO_WAYS_OUT = "pass --csv FILE, or run the synthetic demo with --source synthetic"


def utcnow() -> pd.Timestamp:
    """Current UTC time (a seam for tests)."""
    return pd.Timestamp.now(tz="UTC")


def check_supported(interval: str) -> None:
    """Raise DataError when yfinance has no such interval."""
    if interval not in INTERVAL_LIMITS:
        raise DataError(f"yfinance has no {interval!r} bars; use one of "
                        f"{', '.join(INTERVAL_LIMITS)} (or --csv FILE with resampling)")


def default_start(interval: str, now: pd.Timestamp) -> pd.Timestamp:
    """Earliest start yfinance serves for ``interval`` (daily: EARLIEST_DAILY_START)."""
    lookback_days, _ = INTERVAL_LIMITS[interval]
    if lookback_days is None:
        return EARLIEST_DAILY_START
    return (now - pd.Timedelta(days=lookback_days) + LOOKBACK_SAFETY).floor("h")


def check_lookback(symbol: str, interval: str, start: pd.Timestamp, now: pd.Timestamp) -> None:
    """Refuse a start older than yfinance serves for this interval, naming the limit."""
    lookback_days, _ = INTERVAL_LIMITS[interval]
    if lookback_days is None:
        return
    oldest = now - pd.Timedelta(days=lookback_days)
    if start < oldest:
        raise DataError(f"yfinance serves {interval} bars only for the last {lookback_days:g} days "
                        f"(from {oldest:%Y-%m-%d %H:%M} UTC); {symbol} start {start:%Y-%m-%d} is "
                        "older: use a coarser interval, or pass --csv FILE")


def request_chunks(interval: str, start: pd.Timestamp,
                   end: pd.Timestamp) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Split [start, end) into consecutive requests no longer than the interval allows."""
    _, chunk_days = INTERVAL_LIMITS[interval]
    if chunk_days is None:
        return [(start, end)]
    step = pd.Timedelta(days=chunk_days)
    chunks, chunk_start = [], start
    while chunk_start < end:
        chunk_end = min(chunk_start + step, end)
        chunks.append((chunk_start, chunk_end))
        chunk_start = chunk_end
    return chunks


@contextmanager
def _quiet_yfinance():
    """Filter Pandas4Warning and mute yfinance's error log during a call."""
    yf_logger = logging.getLogger("yfinance")
    previous_level = yf_logger.level
    yf_logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
            yield
    finally:
        yf_logger.setLevel(previous_level)


def _download_once(symbol: str, interval: str, start: pd.Timestamp,
                   end: pd.Timestamp) -> pd.DataFrame:
    """One ``yf.download`` call; network failures become DataUnavailable."""
    import yfinance

    what = f"{symbol} {interval} {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} UTC"
    try:
        with _quiet_yfinance():
            raw = yfinance.download(symbol, start=start.to_pydatetime(), end=end.to_pydatetime(),
                                    interval=interval, auto_adjust=True, progress=False,
                                    threads=False, multi_level_index=True)
    except yfinance.exceptions.YFRateLimitError:
        raise DataUnavailable(f"yfinance is rate limited (HTTP 429) for {what}: wait a few "
                              f"minutes, or {TWO_WAYS_OUT}") from None
    except Exception as error:  # network stacks raise many types; all mean "unavailable"
        raise DataUnavailable(f"yfinance failed for {what} ({type(error).__name__}: {error}): "
                              f"{TWO_WAYS_OUT}") from None
    return normalize_download(raw, symbol, f"yfinance {symbol} {interval}")


def normalize_download(raw: pd.DataFrame | None, symbol: str, label: str) -> pd.DataFrame:
    """yfinance ``download`` output -> OHLCV frame with a UTC index (maybe empty).

    Accepts two-level (Price, Ticker) or flat columns and naive (daily) or
    aware (intraday) indexes.
    """
    if raw is None or len(raw) == 0:
        return pd.DataFrame({column: pd.Series(dtype="float64") for column in OHLCV_COLUMNS},
                            index=pd.DatetimeIndex([], tz="UTC", name="datetime"))
    columns = raw.columns
    if isinstance(columns, pd.MultiIndex):
        ticker_level = columns.names.index("Ticker") if "Ticker" in columns.names else 1
        tickers = list(dict.fromkeys(columns.get_level_values(ticker_level)))
        if symbol in tickers:
            chosen = symbol
        elif len(tickers) == 1:
            chosen = tickers[0]
        else:
            raise DataError(f"{label}: answer holds tickers {', '.join(map(str, tickers))}, "
                            f"not {symbol}")
        raw = raw.xs(chosen, axis=1, level=ticker_level)
    frame = raw.rename(columns=lambda name: str(name).strip().lower())
    missing = [column for column in OHLCV_COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(f"{label}: answer lacks column '{missing[0]}' "
                        f"(got {', '.join(map(str, frame.columns))})")
    index = pd.DatetimeIndex(frame.index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    frame = frame.loc[:, list(OHLCV_COLUMNS)].astype("float64")
    frame.index = index.rename("datetime")
    return frame


def fetch_yfinance(symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp,
                   now: pd.Timestamp) -> pd.DataFrame:
    """All bars of [start, end) from yfinance, in allowed chunks, validated.

    Raises DataError for an impossible request (start beyond the lookback
    limit) and DataUnavailable when every chunk comes back empty or fails.
    """
    check_supported(interval)
    check_lookback(symbol, interval, start, now)
    label = f"yfinance {symbol} {interval}"
    parts = [_download_once(symbol, interval, chunk_start, chunk_end)
             for chunk_start, chunk_end in request_chunks(interval, start, end)]
    frame = pd.concat(parts)
    frame = frame[(frame.index >= start) & (frame.index < end)]
    if len(frame) == 0:
        raise DataUnavailable(f"yfinance returned no {interval} bars for {symbol} from "
                              f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC (offline, "
                              f"unknown symbol, or no trading then): {TWO_WAYS_OUT}")
    frame = frame[~frame.index.duplicated(keep="last")]
    validate_ohlcv(frame, label)
    return frame
