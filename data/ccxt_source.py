"""Perpetual-futures data through ccxt (optional): trade klines, mark-price klines, funding.

``pip install 'ccxt==4.5.90'`` (in requirements.txt; the ``ccxt`` extra). Symbols
are ccxt's unified ones (``BTC/USDT:USDT`` for Binance's USDⓈ-M BTCUSDT
perpetual); ``exchange`` is a ccxt exchange id (default ``binanceusdm``) or an
exchange object you made yourself (anything answering like ccxt's:
``fetch_ohlcv``, ``fetch_mark_ohlcv``, ``fetch_funding_rate_history``, ``has``).

Every download is paginated (``since`` + ``limit``, from the start until the
end) with ccxt's own rate limiter (``enableRateLimit``); a
``ccxt.RateLimitExceeded`` is retried after a pause, a few times. Results go
into the checksummed, atomic cache of :mod:`data.cache` (one file per
exchange, symbol and kind) and later calls fetch only what the cache lacks.
Offline with nothing cached: one ``DataUnavailable`` line naming the way out.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from .cache import CacheEntry, cache_dir, cache_path, read_cache, write_cache
from .errors import CacheCorrupt, CacheWarning, DataError, DataUnavailable
from .frames import finalize_frame
from .funding import finish_funding
from .intervals import interval_seconds, normalize_interval

DEFAULT_EXCHANGE = "binanceusdm"
PAGE_LIMIT = {"ohlcv": 1500, "mark": 1500, "funding": 1000}   # Binance's maxima per request
RATE_LIMIT_RETRIES = 4
DEFAULT_DAYS = 365
WAY_OUT = {
    "ohlcv": "pass --csv FILE (e.g. a Binance kline CSV), or --source synthetic",
    "mark": "pass --mark-csv FILE (the exchange's mark-price kline CSV), or leave the mark "
            "price off",
    "funding": "pass --funding-csv FILE or --funding-rate RATE, or leave funding off",
}


def make_exchange(exchange):
    """A ccxt exchange with its rate limiter on; an object passed in is used as it is."""
    if not isinstance(exchange, str):
        return exchange
    try:
        import ccxt
    except ImportError:
        raise DataError("the ccxt source needs the ccxt package: pip install 'ccxt==4.5.90'") \
            from None
    exchange_class = getattr(ccxt, exchange, None)
    if exchange_class is None or not isinstance(exchange_class, type):
        raise DataError(f"ccxt has no exchange {exchange!r} (perpetuals: binanceusdm, bybit, "
                        "okx, ...)")
    return exchange_class({"enableRateLimit": True})


def _exchange_id(exchange) -> str:
    return exchange if isinstance(exchange, str) else str(getattr(exchange, "id", "exchange"))


def _rate_limited_errors():
    """(RateLimitExceeded, NetworkError) classes of ccxt, or empty tuples without ccxt."""
    try:
        import ccxt
    except ImportError:
        return (), ()
    return (ccxt.RateLimitExceeded,), (ccxt.NetworkError, ccxt.ExchangeNotAvailable)


def _call(client, method, *args, **kwargs):
    """One request; RateLimitExceeded retried with a growing pause, network errors -> DataUnavailable."""
    rate_limited, network = _rate_limited_errors()
    name = _exchange_id(client)
    for attempt in range(RATE_LIMIT_RETRIES + 1):
        try:
            return getattr(client, method)(*args, **kwargs)
        except rate_limited as error:
            if attempt == RATE_LIMIT_RETRIES:
                raise DataUnavailable(f"{name} kept refusing requests (rate limit: "
                                      f"{_one_line(error)})") from None
            pause = max(float(getattr(client, "rateLimit", 1000) or 0), 1.0) / 1000 * 2 ** attempt
            time.sleep(min(pause, 30.0))
        except network as error:
            raise DataUnavailable(f"{name} could not be reached ({_one_line(error)})") from None


def _one_line(error) -> str:
    return " ".join(str(error).split())[:200] or type(error).__name__


def _milliseconds(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


# -- fetching one range ---------------------------------------------------------------------
def _fetch_klines(client, method, symbol, timeframe, start, end, step_ms, limit):
    """Unified OHLCV rows [ms, o, h, l, c, v] with start <= ms < end, page by page."""
    rows, since, end_ms = [], _milliseconds(start), _milliseconds(end)
    while since < end_ms:
        page = _call(client, method, symbol, timeframe, since=since, limit=limit) or []
        page = [row for row in page if row[0] >= since]
        if not page:
            break
        rows.extend(row for row in page if row[0] < end_ms)
        since = int(page[-1][0]) + step_ms
    return rows


def _klines_frame(rows, label):
    if not rows:
        return pd.DataFrame(columns=["open", "high", "low", "close", "volume"], dtype=float,
                            index=pd.DatetimeIndex([], tz="UTC", name="datetime"))
    table = np.asarray([row[:6] for row in rows], dtype=np.float64)
    index = pd.to_datetime(table[:, 0].astype(np.int64), unit="ms", utc=True)
    frame = pd.DataFrame(table[:, 1:], index=pd.DatetimeIndex(index, name="datetime"),
                         columns=["open", "high", "low", "close", "volume"])
    frame["volume"] = frame["volume"].fillna(0.0)    # mark klines may carry no volume
    return frame[~frame.index.duplicated(keep="last")]


def _fetch_funding(client, symbol, start, end, limit):
    """(times, rates, interval hours or None) of the funding history in [start, end)."""
    times, rates, intervals, since, end_ms = [], [], set(), _milliseconds(start), _milliseconds(end)
    while since < end_ms:
        page = _call(client, "fetch_funding_rate_history", symbol, since=since, limit=limit) or []
        page = [entry for entry in page if entry.get("timestamp") is not None
                and entry["timestamp"] >= since]
        if not page:
            break
        for entry in page:
            if entry["timestamp"] < end_ms:
                times.append(int(entry["timestamp"]))
                rates.append(entry.get("fundingRate"))
                if entry.get("interval"):
                    intervals.add(str(entry["interval"]))
        since = int(page[-1]["timestamp"]) + 1
    index = pd.DatetimeIndex(pd.to_datetime(np.asarray(times, dtype=np.int64), unit="ms",
                                            utc=True)).round("s")
    series = pd.Series(np.asarray([np.nan if r is None else r for r in rates], dtype=np.float64),
                       index=index, name="rate")
    series = series[~series.index.duplicated(keep="last")]
    hours = None
    if len(intervals) == 1:
        label = intervals.pop()
        seconds = interval_seconds(normalize_interval(label)) if label[-1] in "mhd" else None
        hours = seconds / 3600 if seconds else None
    return series, hours


# -- the cache around it --------------------------------------------------------------------
def _range(start, end, now):
    from .loader import check_range, to_utc_timestamp
    start_at, end_at = to_utc_timestamp(start, "start"), to_utc_timestamp(end, "end")
    end_at = end_at if end_at is not None else now
    start_at = start_at if start_at is not None else end_at - pd.Timedelta(days=DEFAULT_DAYS)
    check_range(start_at, end_at)
    return start_at, end_at


def _cached(kind, key, interval, bar_seconds, start_at, end_at, now, fetch, refresh,
            cache_folder, what):
    """Cached data topped up with ``fetch(first, stop)`` for what is missing; the merged frame."""
    from .loader import _merge, missing_ranges
    cache_kind = "funding" if kind == "funding" else "ohlcv"
    path = cache_path(key, interval, cache_dir(cache_folder))
    try:
        entry = None if refresh else read_cache(path, kind=cache_kind)
    except CacheCorrupt as error:
        warnings.warn(f"{error}; fetching it again", CacheWarning, stacklevel=4)
        entry = None
    if entry is None or len(entry.frame) == 0:
        ranges = [(start_at, end_at)]
    else:
        ranges = missing_ranges(entry, start_at, end_at, bar_seconds)
    try:
        fetched = [fetch(first, stop) for first, stop in ranges]
    except DataUnavailable as error:
        cached = None if entry is None else \
            entry.frame[(entry.frame.index >= start_at) & (entry.frame.index < end_at)]
        if cached is None or len(cached) == 0:
            raise DataUnavailable(f"{error} and nothing is cached for {what}: "
                                  f"{WAY_OUT[kind]}") from None
        warnings.warn(f"{error}; using {len(cached)} cached rows of {what} from "
                      f"{cached.index[0]} to {cached.index[-1]}", CacheWarning, stacklevel=4)
        return entry.frame, "cache"
    if not ranges:
        return entry.frame, "cache"
    merged = entry.frame if entry is not None else None
    for part in fetched:
        merged = part if merged is None else _merge(merged, part)
    if merged is None or len(merged) == 0:
        raise DataUnavailable(f"the exchange returned no data for {what} between {start_at} "
                              f"and {end_at}: {WAY_OUT[kind]}")
    covered_start = start_at if entry is None else min(entry.covered_start, start_at)
    covered_end = end_at if entry is None else max(entry.covered_end, end_at)
    write_cache(path, CacheEntry(merged, covered_start, covered_end, now), key, interval,
                kind=cache_kind)
    return merged, "ccxt"


def _select(frame, start_at, end_at):
    return frame[(frame.index >= start_at) & (frame.index < end_at)]


def load_ccxt_klines(symbol, interval="1h", start=None, end=None, *, exchange=DEFAULT_EXCHANGE,
                     mark=False, refresh=False, cache_folder=None) -> pd.DataFrame:
    """Trade (``mark=False``) or mark-price klines of ``symbol`` as the standard OHLCV frame."""
    from .yahoo import utcnow
    interval = normalize_interval(interval)
    bar_seconds = interval_seconds(interval)
    if not bar_seconds:
        raise DataError(f"interval {interval!r} has no fixed length; use e.g. 1h, 4h, 1d")
    client = make_exchange(exchange)
    kind = "mark" if mark else "ohlcv"
    method = "fetch_mark_ohlcv" if mark else "fetch_ohlcv"
    name = _exchange_id(client)
    capability = "fetchMarkOHLCV" if mark else "fetchOHLCV"
    if not (getattr(client, "has", {}) or {}).get(capability):
        raise DataError(f"{name} offers no {'mark-price ' if mark else ''}klines through ccxt "
                        f"(has['{capability}'] is False): {WAY_OUT[kind]}")
    timeframes = getattr(client, "timeframes", None)
    if timeframes and interval not in timeframes:
        raise DataError(f"{name} has no {interval} klines; it offers {', '.join(timeframes)}")
    now = utcnow()
    start_at, end_at = _range(start, end, now)
    what = f"{name} {symbol} {interval}{' mark' if mark else ''}"

    def fetch(first, stop):
        rows = _fetch_klines(client, method, symbol, interval, first, stop,
                             int(bar_seconds * 1000), PAGE_LIMIT[kind])
        return _klines_frame(rows, what)

    key = f"ccxt_{name}_{symbol}{'_mark' if mark else ''}"
    frame, source = _cached(kind, key, interval, bar_seconds, start_at, end_at, now, fetch,
                            refresh, cache_folder, what)
    selected = _select(frame, start_at, end_at)
    if len(selected) == 0:
        raise DataUnavailable(f"no {what} bars between {start_at} and {end_at}: {WAY_OUT[kind]}")
    result = finalize_frame(selected, symbol=symbol, source=source, label=what, interval=interval)
    result.attrs.update(exchange=name, price="mark" if mark else "trade")
    return result


def load_ccxt_funding(symbol, start=None, end=None, *, exchange=DEFAULT_EXCHANGE,
                      refresh=False, cache_folder=None) -> pd.Series:
    """Funding-rate history of ``symbol`` (a :mod:`data.funding` series)."""
    from .yahoo import utcnow
    client = make_exchange(exchange)
    name = _exchange_id(client)
    if not (getattr(client, "has", {}) or {}).get("fetchFundingRateHistory"):
        raise DataError(f"{name} offers no funding-rate history through ccxt "
                        f"(has['fetchFundingRateHistory'] is False): {WAY_OUT['funding']}")
    now = utcnow()
    start_at, end_at = _range(start, end, now)
    what = f"{name} {symbol} funding"
    reported = {}

    def fetch(first, stop):
        series, hours = _fetch_funding(client, symbol, first, stop, PAGE_LIMIT["funding"])
        if hours:
            reported["hours"] = hours
        return series.to_frame()

    frame, source = _cached("funding", f"ccxt_{name}_{symbol}", "funding", 8 * 3600,
                            start_at, end_at, now, fetch, refresh, cache_folder, what)
    selected = _select(frame, start_at, end_at)["rate"]
    if len(selected) == 0:
        raise DataUnavailable(f"no {what} rates between {start_at} and {end_at}: "
                              f"{WAY_OUT['funding']}")
    result = finish_funding(selected, what, interval_hours=reported.get("hours"))
    result.attrs.update(exchange=name, origin=source)
    return result
