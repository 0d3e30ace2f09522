"""Non-finite and absurd prices are a DataError in load_csv, load_ohlcv and ArrayFeed alike.

An ``inf`` (or 1e308, whose arithmetic overflows to inf) in a high or close
used to run to the end with equity ``inf`` and risk figures ``None``; ArrayFeed
took NaN, prices <= 0 and high < low (a NaN low hides a liquidation). Inputs
are the first five bars of ../shared/data/binance_BTCUSDT_1h.csv with one
field broken.
"""
from pathlib import Path

import pandas as pd
import pytest
import yfinance

from backtrader_leverage.data import ArrayFeed, DataError, load_csv, load_ohlcv
from backtrader_leverage.data import yahoo
from test_data_yfinance import NOW, FakeYahoo

FIRST_BARS = 5
OPEN, HIGH, LOW, CLOSE, VOLUME = 1, 2, 3, 4, 5  # columns of date,open,high,low,close,volume


@pytest.fixture
def good_lines(shared_data) -> list[str]:
    with open(shared_data / "binance_BTCUSDT_1h.csv") as handle:
        return [next(handle).rstrip("\n") for _ in range(FIRST_BARS + 1)]


def write_csv(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def broken(lines, line_index, column, value):
    fields = lines[line_index].split(",")
    fields[column] = value
    lines = list(lines)
    lines[line_index] = ",".join(fields)
    return lines


@pytest.mark.parametrize("column, name", [(HIGH, "high"), (CLOSE, "close"), (OPEN, "open"),
                                          (LOW, "low"), (VOLUME, "volume")])
@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity"])
def test_csv_non_finite_value_is_a_data_error(tmp_path, good_lines, column, name, value):
    lines = broken(good_lines, 3, column, value)  # file line 4 = data row 3
    with pytest.raises(DataError, match=rf"^bars\.csv line 4 \(row 3, 2017-08-17 06:00:00\+00:00\)"
                                        rf": {name} is -?inf \(not a finite number"):
        load_csv(write_csv(tmp_path, lines))


@pytest.mark.parametrize("column, name", [(HIGH, "high"), (CLOSE, "close")])
def test_csv_overflowing_price_is_a_data_error(tmp_path, good_lines, column, name):
    lines = broken(good_lines, 2, column, "1e308")
    with pytest.raises(DataError, match=rf"line 3 \(row 2.*: {name} is 1e\+308 \(prices must "
                                        rf"be at most 1e\+15"):
        load_csv(write_csv(tmp_path, lines))


def test_load_ohlcv_refuses_a_download_with_inf(monkeypatch, tmp_path, shared_data):
    bars = pd.read_csv(shared_data / "binance_BTCUSDT_1h.csv", index_col="date",
                       skiprows=range(1, 57_001))
    bars.index = pd.to_datetime(bars.index, utc=True)
    stamp = pd.Timestamp("2024-03-05 10:00", tz="UTC")
    bars.loc[stamp, ["high", "close"]] = float("inf")
    monkeypatch.setattr(yfinance, "download", FakeYahoo(bars).download)
    monkeypatch.setattr(yahoo, "utcnow", lambda: NOW)
    monkeypatch.setenv("BTLEV_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"row \d+, 2024-03-05 10:00:00\+00:00\): high is inf "
                                        r"\(not a finite number"):
        load_ohlcv("BTC-USD", "1h", start="2024-03-01", end="2024-03-10")
    assert not (tmp_path / "cache" / "BTC-USD_1h.csv").exists()  # nothing bad was cached


def feed_frame(**broken_values):
    """Three good hourly bars (open 100, high 102, low 99, close 101), one value replaced."""
    index = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    frame = pd.DataFrame({"open": 100.0, "high": 102.0, "low": 99.0, "close": 101.0,
                          "volume": 1.0}, index=index)
    for column, value in broken_values.items():
        frame.loc[index[1], column] = value
    return frame


@pytest.mark.parametrize("broken_values, message", [
    ({"high": float("inf")}, r"high is inf \(not a finite number"),
    ({"close": float("nan")}, r"NaN in column 'close'"),
    ({"low": float("nan")}, r"NaN in column 'low'"),
    ({"open": 0.0}, r"open is 0\.0 \(prices must be > 0\)"),
    ({"low": -1.0}, r"low is -1\.0 \(prices must be > 0\)"),
    ({"high": 98.0}, r"high 98\.0 < max\(open, close\) 101\.0"),
    ({"low": 101.5}, r"low 101\.5 > min\(open, close\) 100\.0"),
    ({"volume": float("inf")}, r"volume is inf \(not a finite number"),
])
def test_array_feed_validates_like_the_loaders(broken_values, message):
    with pytest.raises(DataError, match=r"^ArrayFeed \(row 2, 2024-01-01 01:00:00\+00:00\): "
                                        + message):
        ArrayFeed(dataname=feed_frame(**broken_values))


def test_array_feed_takes_a_naive_index_as_utc():
    frame = feed_frame()
    frame.index = frame.index.tz_localize(None)
    assert ArrayFeed(dataname=frame).p.compression == 60
