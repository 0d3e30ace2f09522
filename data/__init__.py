"""Historical OHLCV data for leveraged-crypto backtests.

Public API::

    load_ohlcv(symbol, interval="1d", start=None, end=None, source="auto", refresh=False)
    load_ohlcv("BTC/USDT:USDT", "1h", start, end, source="ccxt", exchange="binanceusdm")
    load_mark_ohlcv(symbol, interval, start, end, exchange=...)    # mark-price klines (ccxt)
    load_funding_rates(symbol, start, end, exchange=...)          # funding history (ccxt)
    load_csv(path, format=None)            # 'yahoo', 'yfinance', 'binance', 'ccxt', 'ohlcv'
    load_funding_csv(path, format=None)    # funding rates: 'binance', 'ccxt', 'plain'
    load_mark_csv(path)                    # mark-price klines, as load_csv
    synthetic_ohlcv(bars=8760, interval="1h", seed=...)
    resample_ohlcv(frame, "1h")
    select_range(frame, start, end)        # [start, end), gap figures of the slice
    ArrayFeed(dataname=frame)              # fast, picklable backtrader feed
    interval_to_timeframe("1h")            # (bt.TimeFrame.Minutes, 60)
    DataError(ValueError), DataUnavailable(DataError), CacheCorrupt(DataError)

Every frame has a UTC DatetimeIndex named ``datetime``, float64 columns
``open, high, low, close, volume`` and the attrs listed in :mod:`data.frames`.
"""
from .cache import CACHE_DIR_ENV_VAR
from .csvfile import FORMATS, load_csv
from .errors import CacheCorrupt, CacheWarning, DataError, DataGapWarning, DataUnavailable
from .feed import ArrayFeed, bt_date_numbers
from .funding import (FUNDING_FORMATS, MARK_COLUMNS, funding_series_from_attrs,
                      load_funding_csv, load_mark_csv, mark_frame_from_columns,
                      with_perpetual_data)
from .frames import select_range
from .intervals import interval_to_timeframe
from .loader import SOURCES, load_funding_rates, load_mark_ohlcv, load_ohlcv
from .resample import resample_ohlcv
from .sample import SAMPLE_SYMBOL, load_perpetual_sample
from .synthetic import synthetic_ohlcv

__all__ = [
    "load_ohlcv", "load_csv", "synthetic_ohlcv", "resample_ohlcv", "select_range", "ArrayFeed",
    "interval_to_timeframe", "bt_date_numbers", "DataError", "DataUnavailable", "CacheCorrupt",
    "DataGapWarning", "CacheWarning", "FORMATS", "SOURCES", "CACHE_DIR_ENV_VAR",
    "load_funding_csv", "load_mark_csv", "FUNDING_FORMATS", "load_mark_ohlcv",
    "load_funding_rates", "with_perpetual_data", "funding_series_from_attrs",
    "mark_frame_from_columns", "MARK_COLUMNS", "load_perpetual_sample", "SAMPLE_SYMBOL",
]
