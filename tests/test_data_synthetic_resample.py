"""Synthetic demo series and OHLCV resampling."""
import time

import numpy as np
import pandas as pd
import pytest

from backtrader_leverage.data import DataError, load_csv, load_ohlcv, resample_ohlcv, synthetic_ohlcv


def test_synthetic_is_deterministic_and_labelled():
    first, again = synthetic_ohlcv(bars=2000, seed=7), synthetic_ohlcv(bars=2000, seed=7)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(synthetic_ohlcv(bars=2000, seed=8))
    assert first.attrs["synthetic"] is True and first.attrs["source"] == "synthetic"
    assert "SYNTHETIC" in first.attrs["symbol"]


def test_synthetic_has_fat_tails_clustering_and_a_crash():
    frame = synthetic_ohlcv(bars=8760, interval="1h")
    log_returns = pd.Series(np.diff(np.log(frame["close"].to_numpy())))
    # Student-t(4) innovations: excess kurtosis well above a normal's 0
    assert log_returns.kurt() > 3.0
    # GARCH clustering: absolute returns are autocorrelated (iid would give ~0 +- 0.01)
    assert log_returns.abs().autocorr(lag=1) > 0.1
    # crash: within 24 hourly bars of attrs['crash_start'] the close falls >= 30 %
    crash_position = frame.index.get_loc(pd.Timestamp(frame.attrs["crash_start"]))
    window = frame["close"].iloc[crash_position - 1: crash_position + 24]
    assert window.min() / window.iloc[0] <= 0.70


def test_load_ohlcv_synthetic_for_the_cli_demo_is_fast_and_valid():
    started = time.perf_counter()
    frame = load_ohlcv("BTC-USD", "1h", source="synthetic")
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert 2000 <= len(frame) <= 20_000
    assert frame.attrs["interval"] == "1h" and frame.attrs["symbol"] == "SYNTHETIC-BTC-USD"
    assert str(frame.index.tz) == "UTC" and list(frame.columns) == [
        "open", "high", "low", "close", "volume"]


def test_load_ohlcv_synthetic_honours_the_range():
    frame = load_ohlcv("ETH-USD", "1d", start="2023-01-01", end="2023-03-01", source="synthetic")
    # Jan (31) + Feb (28) = 59 daily bars, end exclusive
    assert len(frame) == 59
    assert frame.index[0] == pd.Timestamp("2023-01-01", tz="UTC")


@pytest.fixture(scope="module")
def five_minute(shared_data):
    return load_csv(shared_data / "binance_BTCUSDT_5m.csv")


def test_resample_5m_to_1h_first_hour_by_hand(five_minute):
    hourly = resample_ohlcv(five_minute, "1h")
    first = hourly.iloc[0]
    # binance_BTCUSDT_5m.csv lines 2-13 (00:00 .. 00:55 on 2024-01-01):
    assert first["open"] == 42283.58    # open of the 00:00 bar
    assert first["high"] == 42554.57    # max high, the 00:15 bar
    assert first["low"] == 42261.02     # min low, the 00:00 bar
    assert first["close"] == 42475.23   # close of the 00:55 bar
    # volumes 155.25731 + 141.31102 + 135.14249 + 163.32541 + 117.27112 + 111.65236
    #       + 77.85936 + 149.18862 + 92.85846 + 59.74817 + 33.134 + 34.93276 = 1271.68108
    assert first["volume"] == pytest.approx(1271.68108, abs=1e-9)
    assert hourly.index[0] == pd.Timestamp("2024-01-01 00:00", tz="UTC")
    assert hourly.attrs["interval"] == "1h" and hourly.attrs["resampled_from"] == "5m"
    # the file ends at 04:15, so the last hour holds 4 of 12 bars: kept and counted
    assert hourly.attrs["incomplete_bars"] == 1
    assert len(hourly) == -(-len(five_minute) // 12)  # ceil(76948 / 12) = 6413


def test_resample_5m_to_1d_matches_the_readme_crash_day(five_minute):
    daily = resample_ohlcv(five_minute, "1d")
    crash_day = daily.loc[pd.Timestamp("2024-08-05", tz="UTC")]
    # README: "the day opened at 58161.00 and hit a low of 49000.00 at 06:20 UTC"
    assert crash_day["open"] == 58161.00
    assert crash_day["low"] == 49000.00


def test_resample_keeps_gaps_as_gaps(shared_data):
    with pytest.warns(UserWarning):
        hourly = load_csv(shared_data / "binance_BTCUSDT_1h.csv")
    four_hourly = resample_ohlcv(hourly.loc["2018-02-07":"2018-02-10"], "4h")
    # the 34 h outage after 2018-02-08 00:00 leaves the 04:00 ... 2018-02-09 04:00 bins empty
    assert pd.Timestamp("2018-02-08 04:00", tz="UTC") not in four_hourly.index
    assert four_hourly.attrs["missing_bars"] > 0
    assert not four_hourly.isna().any().any()


def test_resample_refuses_a_finer_or_uneven_target(five_minute):
    with pytest.raises(DataError, match="whole multiple"):
        resample_ohlcv(five_minute, "1m")
    with pytest.raises(DataError, match="whole multiple"):
        resample_ohlcv(five_minute, "7m")


def test_select_range_reports_the_gaps_of_the_window_only(shared_data):
    import warnings as _warnings
    from backtrader_leverage.data import DataGapWarning, load_csv, select_range
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore", DataGapWarning)
        frame = load_csv(shared_data / "binance_BTCUSDT_1h.csv")
    assert frame.attrs["missing_bars"] == 128          # the whole file: 28 outages
    start, end = pd.Timestamp("2022-11-01", tz="UTC"), pd.Timestamp("2022-12-01", tz="UTC")
    with _warnings.catch_warnings():
        _warnings.simplefilter("error", DataGapWarning)
        window = select_range(frame, start, end)     # no outage in November 2022: no warning
    assert len(window) == 30 * 24                      # 30 days of hourly bars, [start, end)
    assert (window.index[0], window.index[-1]) == (start, end - pd.Timedelta(hours=1))
    assert window.attrs["missing_bars"] == 0 and window.attrs["largest_gap"] == 0.0
    assert window.attrs["symbol"] == frame.attrs["symbol"]
    # the 34 h outage after 2018-02-08 00:00 misses 33 bars
    with pytest.warns(DataGapWarning, match="33 missing 1h bars in 1 gaps"):
        outage = select_range(frame, pd.Timestamp("2018-02-07", tz="UTC"),
                              pd.Timestamp("2018-02-11", tz="UTC"))
    assert outage.attrs["largest_gap"] == 34 * 3600.0
