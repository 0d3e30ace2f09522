"""Perpetual data: funding CSV formats, mark-price klines, and the ccxt source on a fake exchange."""
import datetime as dt
import warnings

import ccxt
import numpy as np
import pandas as pd
import pytest

from backtrader_leverage.data import (CacheWarning, DataError, DataUnavailable, load_funding_csv,
                                      load_funding_rates, load_mark_csv, load_mark_ohlcv,
                                      load_ohlcv)
from backtrader_leverage.data import ccxt_source

HOUR_MS = 3_600_000
START = pd.Timestamp("2024-01-01", tz="UTC")
START_MS = int(START.value // 1_000_000)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------
# funding CSV formats
# ----------------------------------------------------------------------------
def test_binance_bulk_funding_file(tmp_path):
    # the exchange's monthly files: calc_time in ms, settlement stamps a few ms late
    path = write(tmp_path, "BTCUSDT-fundingRate-2024-01.csv",
                 "calc_time,funding_interval_hours,last_funding_rate\n"
                 f"{START_MS + 7},8,0.00010000\n"
                 f"{START_MS + 8 * HOUR_MS + 47},8,-0.00002500\n")
    series = load_funding_csv(path)
    assert list(series.index) == [START, START + pd.Timedelta(hours=8)]   # rounded to the second
    assert list(series) == [0.0001, -0.000025]
    assert series.attrs["interval_hours"] == 8.0


def test_ccxt_style_and_plain_funding_files(tmp_path):
    ccxt_file = write(tmp_path, "ccxt.csv", "timestamp,fundingRate,datetime,symbol\n"
                      f"{START_MS},0.0001,2024-01-01T00:00:00Z,BTC/USDT:USDT\n"
                      f"{START_MS + 4 * HOUR_MS},0.0002,2024-01-01T04:00:00Z,BTC/USDT:USDT\n")
    series = load_funding_csv(ccxt_file)
    assert list(series) == [0.0001, 0.0002] and series.attrs["interval_hours"] == 4.0
    plain = write(tmp_path, "plain.csv", "timestamp,rate\n1704067200,0.0001\n1704096000,0.0003\n")
    assert list(load_funding_csv(plain).index) == [START, START + pd.Timedelta(hours=8)]


def test_the_shared_funding_file(shared_data):
    # time,rate; 7119 settlements every 8 h; 2021-01-01 00:00: 0.00022753; 2020-03-13 08:00: -0.003
    series = load_funding_csv(shared_data / "binance_um_BTCUSDT_funding_8h.csv")
    assert len(series) == 7119 and series.attrs["interval_hours"] == 8.0
    assert series[pd.Timestamp("2021-01-01", tz="UTC")] == 0.00022753
    assert series[pd.Timestamp("2020-03-13 08:00", tz="UTC")] == -0.003
    assert series["2021"].mean() == pytest.approx(0.000280, abs=5e-7)


@pytest.mark.parametrize("rows, message", [
    ("2024-01-01T00:00Z,0.0001\n2024-01-01T08:00Z,\n", r"line 3 .*NaN"),
    ("2024-01-01T00:00Z,0.0001\n2024-01-01T08:00Z,nan\n", r"line 3 .*NaN"),
    ("2024-01-01T08:00Z,0.0001\n2024-01-01T00:00Z,0.0001\n", r"line 3 .*not sorted"),
    ("2024-01-01T08:00Z,0.0001\n2024-01-01T08:00Z,0.0002\n", r"line 3 .*duplicate"),
    ("2024-01-01T00:00Z,0.0001\n2024-01-01T08:00Z,0.01\n2024-01-01T16:00Z,1.5\n",
     r"line 4 .*1\.5 is beyond ±0\.05.*percent"),
])
def test_bad_funding_rows_are_refused_naming_file_and_line(tmp_path, rows, message):
    path = write(tmp_path, "bad.csv", "time,rate\n" + rows)
    with pytest.raises(DataError, match="bad.csv " + message):
        load_funding_csv(path)


def test_a_file_that_is_not_funding(tmp_path):
    path = write(tmp_path, "klines.csv", "date,open,high,low,close,volume\n")
    with pytest.raises(DataError, match="not a funding-rate CSV"):
        load_funding_csv(path)


def test_binance_mark_price_klines(tmp_path):
    # the exchange's markPriceKlines bulk files: 12 kline columns, volume 0
    rows = [f"{START_MS + i * HOUR_MS},100.{i},101,99,100.5,0,{START_MS + (i + 1) * HOUR_MS - 1},"
            "0,0,0,0,0" for i in range(3)]
    path = write(tmp_path, "BTCUSDT-1h-mark.csv",
                 "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                 "taker_buy_volume,taker_buy_quote_volume,ignore\n" + "\n".join(rows) + "\n")
    frame = load_mark_csv(path)
    assert len(frame) == 3 and frame.attrs["price"] == "mark" and (frame["volume"] == 0).all()
    assert frame["open"].iloc[1] == 100.1


def test_a_broker_takes_a_funding_csv_path(shared_data):
    from backtrader_leverage.broker import MarginBroker
    broker = MarginBroker(funding_rates=shared_data / "binance_um_BTCUSDT_funding_8h.csv")
    schedule = broker.funding_schedule(None)
    # 2021-01-01 00:00 and 08:00 fall in [00:00, 09:00)
    start = int(pd.Timestamp("2021-01-01", tz="UTC").timestamp())
    assert [rate for _t, rate in schedule.between(start, start + 9 * 3600)] == \
        [0.00022753, load_funding_csv(shared_data / "binance_um_BTCUSDT_funding_8h.csv")[
            pd.Timestamp("2021-01-01 08:00", tz="UTC")]]


# ----------------------------------------------------------------------------
# ccxt on a fake exchange
# ----------------------------------------------------------------------------
class FakeExchange:
    """Answers like ccxt's binanceusdm: unified OHLCV lists, funding dicts, since/limit pages."""

    id = "fakeusdm"
    rateLimit = 1                         # ms between requests (ccxt's unit)
    timeframes = {"1h": "1h", "1d": "1d"}

    def __init__(self, bars=48, mark=True, rate_limit_failures=0, offline=False):
        self.has = {"fetchOHLCV": True, "fetchMarkOHLCV": mark, "fetchFundingRateHistory": True}
        self.calls = []
        self.rate_limit_failures = rate_limit_failures
        self.offline = offline
        self.bars = [[START_MS + i * HOUR_MS, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 3.0]
                     for i in range(bars)]
        self.funding = [{"info": {}, "symbol": "BTC/USDT:USDT", "fundingRate": 0.0001 * (i % 3 - 1),
                         "timestamp": START_MS + i * 8 * HOUR_MS + 5, "datetime": None}
                        for i in range(bars // 8)]

    def _answer(self, rows, since, limit, key):
        self.calls.append((key, since, limit))
        if self.offline:
            raise ccxt.NetworkError("fakeusdm GET https://fapi.example/ failed: no route to host")
        if self.rate_limit_failures:
            self.rate_limit_failures -= 1
            raise ccxt.RateLimitExceeded("fakeusdm 429 Too Many Requests")
        chosen = [row for row in rows if key(row) >= (since or 0)]
        return [list(row) if isinstance(row, list) else dict(row) for row in chosen[:limit]]

    def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None, params={}):
        return self._answer(self.bars, since, limit, lambda row: row[0])

    def fetch_mark_ohlcv(self, symbol, timeframe="1m", since=None, limit=None, params={}):
        if not self.has["fetchMarkOHLCV"]:
            raise ccxt.NotSupported("fakeusdm fetchMarkOHLCV() is not supported yet")
        rows = [[row[0], row[1] + 0.5, row[2], row[3] + 1.0, row[4], 0.0] for row in self.bars]
        return self._answer(rows, since, limit, lambda row: row[0])

    def fetch_funding_rate_history(self, symbol=None, since=None, limit=None, params={}):
        return self._answer(self.funding, since, limit, lambda row: row["timestamp"])


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(ccxt_source, "PAGE_LIMIT", {"ohlcv": 10, "mark": 10, "funding": 2})


def test_klines_are_paginated_and_cached(tmp_path, small_pages):
    fake = FakeExchange(bars=48)
    frame = load_ohlcv("BTC/USDT:USDT", "1h", START, START + pd.Timedelta(hours=36),
                       source="ccxt", exchange=fake, cache_folder=tmp_path)
    assert len(frame) == 36 and frame["open"].iloc[35] == 135.0
    assert frame.attrs["source"] == "ccxt" and frame.attrs["exchange"] == "fakeusdm"
    # 36 bars in pages of 10: since = start, +10 h, +20 h, +30 h
    assert [since for _k, since, _l in fake.calls] == [START_MS + h * HOUR_MS for h in (0, 10, 20, 30)]
    again = FakeExchange(bars=48)
    cached = load_ohlcv("BTC/USDT:USDT", "1h", START, START + pd.Timedelta(hours=36),
                        source="ccxt", exchange=again, cache_folder=tmp_path)
    assert again.calls == [] and cached.equals(frame) and cached.attrs["source"] == "cache"


def test_the_next_call_tops_the_cache_up(tmp_path, small_pages):
    load_ohlcv("BTC/USDT:USDT", "1h", START, START + pd.Timedelta(hours=20), source="ccxt",
               exchange=FakeExchange(), cache_folder=tmp_path)
    later = FakeExchange()
    frame = load_ohlcv("BTC/USDT:USDT", "1h", START, START + pd.Timedelta(hours=30),
                       source="ccxt", exchange=later, cache_folder=tmp_path)
    assert len(frame) == 30
    # only from the newest cached bar (19:00) on is asked for again
    assert later.calls[0][1] == START_MS + 19 * HOUR_MS


def test_a_rate_limit_error_is_retried(tmp_path):
    fake = FakeExchange(rate_limit_failures=2)
    frame = load_ohlcv("BTC/USDT:USDT", "1h", START, START + pd.Timedelta(hours=5),
                       source="ccxt", exchange=fake, cache_folder=tmp_path)
    assert len(frame) == 5 and len(fake.calls) == 2 + 1   # two refused, one page with all five


def test_offline_with_nothing_cached_names_the_way_out(tmp_path):
    with pytest.raises(DataUnavailable) as caught:
        load_ohlcv("BTC/USDT:USDT", "1h", START, START + pd.Timedelta(hours=5), source="ccxt",
                   exchange=FakeExchange(offline=True), cache_folder=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "could not be reached" in message
    assert "nothing is cached" in message and "--csv FILE" in message


def test_offline_with_a_cache_uses_it_with_one_warning(tmp_path):
    load_ohlcv("BTC/USDT:USDT", "1h", START, START + pd.Timedelta(hours=5), source="ccxt",
               exchange=FakeExchange(), cache_folder=tmp_path)
    with pytest.warns(CacheWarning, match="using 5 cached rows"):
        frame = load_ohlcv("BTC/USDT:USDT", "1h", START, START + pd.Timedelta(hours=8),
                           source="ccxt", exchange=FakeExchange(offline=True),
                           cache_folder=tmp_path)
    assert len(frame) == 5


def test_mark_klines_and_an_exchange_without_them(tmp_path, small_pages):
    mark = load_mark_ohlcv("BTC/USDT:USDT", "1h", START, START + pd.Timedelta(hours=12),
                           exchange=FakeExchange(), cache_folder=tmp_path)
    assert len(mark) == 12 and mark.attrs["price"] == "mark" and mark["open"].iloc[0] == 100.5
    with pytest.raises(DataError, match=r"offers no mark-price klines .*--mark-csv FILE"):
        load_mark_ohlcv("BTC/USDT:USDT", "1h", START, START + pd.Timedelta(hours=12),
                        exchange=FakeExchange(mark=False), cache_folder=tmp_path)


def test_funding_history_is_paginated_cached_and_checked(tmp_path, small_pages):
    fake = FakeExchange(bars=48)     # 6 settlements every 8 h, 5 ms late
    series = load_funding_rates("BTC/USDT:USDT", START, START + pd.Timedelta(hours=48),
                                exchange=fake, cache_folder=tmp_path)
    assert list(series.index) == [START + pd.Timedelta(hours=8 * i) for i in range(6)]
    assert list(series) == pytest.approx([-0.0001, 0.0, 0.0001] * 2)
    assert series.attrs["interval_hours"] == 8.0
    assert len(fake.calls) == 4          # pages of 2: 3 full pages and an empty one
    again = FakeExchange(bars=48)
    assert load_funding_rates("BTC/USDT:USDT", START, START + pd.Timedelta(hours=48),
                              exchange=again, cache_folder=tmp_path).equals(series)
    assert again.calls == []


def test_funding_in_percent_from_an_exchange_is_refused(tmp_path):
    fake = FakeExchange(bars=16)
    fake.funding[1]["fundingRate"] = 1.0       # 1.0 = 100 % per interval: a unit error
    with pytest.raises(DataError, match="beyond ±0.05"):
        load_funding_rates("BTC/USDT:USDT", START, START + pd.Timedelta(hours=16),
                           exchange=fake, cache_folder=tmp_path)
