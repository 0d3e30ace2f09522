"""load_ohlcv over yfinance and the cache, with yfinance.download replaced by fakes
shaped like yfinance 1.x output: two-level (Price, Ticker) columns in alphabetical
order, tz-naive 'Date' index for daily bars, tz-aware UTC 'Datetime' index intraday,
an EMPTY frame when offline, YFRateLimitError for HTTP 429."""
import warnings

import pandas as pd
import pytest
import yfinance

from backtrader_leverage.data import CacheCorrupt, DataError, DataUnavailable, load_ohlcv
from backtrader_leverage.data import yahoo
from backtrader_leverage.data.cache import cache_path, read_cache
from backtrader_leverage.data.errors import CacheWarning

NOW = pd.Timestamp("2024-04-21 15:00", tz="UTC")  # just after the shared 1h file ends


def yfinance_shape(frame: pd.DataFrame, ticker: str, daily: bool) -> pd.DataFrame:
    """Reshape a standard frame like yf.download(ticker) output."""
    shaped = frame.rename(columns=str.capitalize)[["Close", "High", "Low", "Open", "Volume"]]
    shaped.columns = pd.MultiIndex.from_product([shaped.columns, [ticker]],
                                                names=["Price", "Ticker"])
    index = shaped.index.tz_convert("UTC")
    shaped.index = index.tz_localize(None).rename("Date") if daily else index.rename("Datetime")
    return shaped


class FakeYahoo:
    """Stands in for yfinance.download; serves [start, end) of a frame, records calls."""

    def __init__(self, bars: pd.DataFrame, daily: bool = False):
        self.bars, self.daily, self.calls, self.offline = bars, daily, [], False

    def download(self, tickers, start=None, end=None, interval="1d", **options):
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        self.calls.append((start, end, interval, options.get("auto_adjust")))
        warnings.warn("yfinance under pandas 3", pd.errors.Pandas4Warning)
        if self.offline:
            return pd.DataFrame()
        selected = self.bars[(self.bars.index >= start) & (self.bars.index < end)]
        return yfinance_shape(selected, tickers, self.daily)


@pytest.fixture(scope="module")
def hourly_bars(shared_data):
    frame = pd.read_csv(shared_data / "binance_BTCUSDT_1h.csv", index_col="date",
                        skiprows=range(1, 55_001))  # last ~3400 bars, 2023-11-29 .. 2024-04-21
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame


@pytest.fixture
def fake(monkeypatch, tmp_path, hourly_bars):
    fake = FakeYahoo(hourly_bars)
    monkeypatch.setattr(yfinance, "download", fake.download)
    monkeypatch.setattr(yahoo, "utcnow", lambda: NOW)
    monkeypatch.setenv("BTLEV_CACHE_DIR", str(tmp_path / "cache"))
    return fake


def load(start, end, **options):
    return load_ohlcv("BTC-USD", "1h", start=start, end=end, **options)


def test_first_call_downloads_and_caches_then_cache_serves(fake, tmp_path, hourly_bars):
    first = load("2024-03-01", "2024-03-10")
    assert len(fake.calls) == 1
    assert fake.calls[0][:3] == (pd.Timestamp("2024-03-01", tz="UTC"),
                                 pd.Timestamp("2024-03-10", tz="UTC"), "1h")
    assert fake.calls[0][3] is True  # auto_adjust passed explicitly
    # 9 days x 24 h = 216 bars, end exclusive; values are the file's
    assert len(first) == 216 and first.attrs["source"] == "yfinance"
    expected = hourly_bars.loc["2024-03-01":"2024-03-09"]
    pd.testing.assert_frame_equal(first, expected, check_names=False, check_freq=False)
    assert (tmp_path / "cache" / "BTC-USD_1h.csv").is_file()

    again = load("2024-03-01", "2024-03-10")
    assert len(fake.calls) == 1  # fully covered, newest bar complete at fetch time
    assert again.attrs["source"] == "cache"
    pd.testing.assert_frame_equal(again, first, check_like=False)


def test_range_beyond_cache_fetches_only_the_missing_parts(fake):
    load("2024-03-01", "2024-03-10")
    load("2024-02-25", "2024-03-12")
    before, after = fake.calls[1], fake.calls[2]
    assert before[:2] == (pd.Timestamp("2024-02-25", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC"))
    # after: starts again at the newest cached bar (2024-03-09 23:00), which may have been partial
    assert after[:2] == (pd.Timestamp("2024-03-09 23:00", tz="UTC"),
                         pd.Timestamp("2024-03-12", tz="UTC"))
    merged = load("2024-02-25", "2024-03-12", source="cache")
    assert len(merged) == 16 * 24  # 25 Feb .. 11 Mar 2024 = 16 days


def test_partial_newest_bar_is_fetched_again(fake, monkeypatch, hourly_bars):
    partial_time = pd.Timestamp("2024-03-09 23:30", tz="UTC")  # the 23:00 bar is half done
    monkeypatch.setattr(yahoo, "utcnow", lambda: partial_time)
    partial = hourly_bars.copy()
    stamp = pd.Timestamp("2024-03-09 23:00", tz="UTC")
    partial.loc[stamp, ["close", "high"]] = partial.loc[stamp, "open"]
    partial.loc[stamp, "low"] = partial.loc[stamp, ["open", "low"]].min()
    fake.bars = partial
    load("2024-03-09", "2024-03-10")
    fake.bars = hourly_bars
    monkeypatch.setattr(yahoo, "utcnow", lambda: NOW)
    refreshed = load("2024-03-09", "2024-03-10")
    assert fake.calls[-1][:2] == (stamp, pd.Timestamp("2024-03-10", tz="UTC"))
    assert refreshed.loc[stamp, "close"] == hourly_bars.loc[stamp, "close"]


def test_refresh_downloads_the_whole_range_again(fake):
    load("2024-03-01", "2024-03-10")
    load("2024-03-01", "2024-03-10", refresh=True)
    assert len(fake.calls) == 2 and fake.calls[1][:2] == fake.calls[0][:2]


def test_pandas4warning_is_filtered(fake):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load("2024-03-01", "2024-03-02")
    assert not [w for w in caught if issubclass(w.category, pd.errors.Pandas4Warning)]


def test_offline_without_cache_names_the_two_ways_out(fake):
    fake.offline = True
    with pytest.raises(DataUnavailable) as caught:
        load("2024-03-01", "2024-03-10")
    message = str(caught.value)
    assert message.startswith("yfinance could not be reached and nothing is cached for BTC-USD 1h")
    assert "--csv FILE" in message and "--source synthetic" in message and "\n" not in message


def test_offline_with_cache_uses_cache_with_one_warning(fake):
    load("2024-03-01", "2024-03-10")
    fake.offline = True
    with pytest.warns(CacheWarning, match="yfinance unavailable") as caught:
        frame = load("2024-03-05", "2024-03-15")
    assert len([w for w in caught if issubclass(w.category, CacheWarning)]) == 1
    # cached bars 2024-03-05 00:00 .. 2024-03-09 23:00 = 5 days x 24 h
    assert len(frame) == 120 and frame.attrs["source"] == "cache"


def test_rate_limit_becomes_one_line_unavailable(fake, monkeypatch):
    def rate_limited(*args, **kwargs):
        raise yfinance.exceptions.YFRateLimitError()
    monkeypatch.setattr(yfinance, "download", rate_limited)
    with pytest.raises(DataUnavailable, match=r"rate limited \(HTTP 429\)"):
        load_ohlcv("BTC-USD", "1h", "2024-03-01", "2024-03-02", source="yfinance")


def test_network_error_becomes_unavailable(fake, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("Could not resolve host: query2.finance.yahoo.com")
    monkeypatch.setattr(yfinance, "download", broken)
    with pytest.raises(DataUnavailable, match="OSError: Could not resolve host"):
        load_ohlcv("BTC-USD", "1h", "2024-03-01", "2024-03-02", source="yfinance")


def test_start_beyond_the_interval_limit_is_refused(fake):
    # 5m bars: last 60 days only; NOW - 100 days is older
    with pytest.raises(DataError, match=r"yfinance serves 5m bars only for the last 60 days"):
        load_ohlcv("BTC-USD", "5m", start=NOW - pd.Timedelta(days=100), end=NOW)
    assert fake.calls == []


def test_one_minute_requests_are_split_into_seven_day_chunks(fake):
    minutes = pd.date_range(NOW - pd.Timedelta(days=20), NOW, freq="1min", inclusive="left")
    price = pd.Series(100.0, index=minutes)
    fake.bars = pd.DataFrame({"open": price, "high": price + 1, "low": price - 1,
                              "close": price, "volume": 1.0})
    frame = load_ohlcv("BTC-USD", "1m", start=NOW - pd.Timedelta(days=20), end=NOW)
    # 20 days = 7 + 7 + 6
    spans = [(stop - begin) / pd.Timedelta(days=1) for begin, stop, *_ in fake.calls]
    assert spans == [7.0, 7.0, 6.0]
    assert len(frame) == 20 * 24 * 60


def test_hourly_two_year_request_is_chunked(fake):
    load_ohlcv("BTC-USD", "1h", start=NOW - pd.Timedelta(days=700), end=NOW)
    assert len(fake.calls) == 2  # 700 days = 365 + 335


def test_daily_index_is_naive_in_yfinance_and_utc_here(monkeypatch, tmp_path, shared_data):
    daily = pd.read_csv(shared_data / "yahoo_BTC-USD_1d.csv", index_col="Date").rename(
        columns=str.lower)
    daily.index = pd.to_datetime(daily.index, utc=True)
    fake = FakeYahoo(daily, daily=True)
    monkeypatch.setattr(yfinance, "download", fake.download)
    monkeypatch.setattr(yahoo, "utcnow", lambda: pd.Timestamp("2024-05-27", tz="UTC"))
    frame = load_ohlcv("BTC-USD", "1d", start="2021-11-01", end="2021-12-01",
                       cache_folder=tmp_path)
    assert str(frame.index.tz) == "UTC" and frame.attrs["interval"] == "1d"
    # README: 2021-11-10 close is 64995.23
    assert frame.loc[pd.Timestamp("2021-11-10", tz="UTC"), "close"] == pytest.approx(
        64995.23, abs=0.005)
    assert len(frame) == 30


def test_corrupt_cache_is_reported_not_used(fake, tmp_path):
    load("2024-03-01", "2024-03-10")
    path = cache_path("BTC-USD", "1h", tmp_path / "cache")
    content = bytearray(path.read_bytes())
    content[-20] = ord("9") if content[-20] != ord("9") else ord("8")  # one digit changed
    path.write_bytes(bytes(content))
    with pytest.raises(CacheCorrupt, match=r"BTC-USD_1h\.csv is corrupt or truncated "
                                           r"\(checksum mismatch"):
        load("2024-03-01", "2024-03-10")
    # refresh=True replaces it (one warning) and works again
    with pytest.warns(CacheWarning, match="replacing it"):
        load("2024-03-01", "2024-03-10", refresh=True)
    assert read_cache(path) is not None


def test_truncated_cache_is_reported(fake, tmp_path):
    load("2024-03-01", "2024-03-10")
    path = cache_path("BTC-USD", "1h", tmp_path / "cache")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CacheCorrupt, match="corrupt or truncated"):
        load("2024-03-01", "2024-03-10", source="cache")


def test_unwritable_cache_folder_warns_once_and_runs_uncached(fake, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(CacheWarning, match="not writable") as caught:
        frame = load_ohlcv("BTC-USD", "1h", "2024-03-01", "2024-03-02",
                           cache_folder=blocker / "cache")
    assert len([w for w in caught if issubclass(w.category, CacheWarning)]) == 1
    assert len(frame) == 24


def test_failed_write_keeps_the_old_cache_and_leaves_no_temp_file(fake, tmp_path, monkeypatch):
    load("2024-03-01", "2024-03-10")
    folder = tmp_path / "cache"
    path = cache_path("BTC-USD", "1h", folder)
    before = path.read_bytes()

    def failing_replace(source, destination):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("data.cache.os.replace", failing_replace)
    with pytest.warns(CacheWarning):
        load("2024-03-01", "2024-03-12")
    assert path.read_bytes() == before
    assert [p.name for p in folder.iterdir()] == [path.name]


def test_cache_source_without_cache_names_the_ways_out(fake):
    with pytest.raises(DataUnavailable, match=r"nothing is cached for BTC-USD 1h.*--csv FILE"):
        load_ohlcv("BTC-USD", "1h", source="cache")
