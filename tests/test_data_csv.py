"""CSV import: every shared file loads and agrees with a plain pandas read;
each supported format is detected; attrs and gap reports match the data README."""
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtrader_leverage.data import DataError, DataGapWarning, load_csv

SHARED_FILES = ["binance_BTCUSDT_1h.csv", "binance_BTCUSDT_5m.csv", "yahoo_BTC-USD_1d.csv",
                "yahoo_BTC-USD_1h_yf-multiheader.csv", "yahoo_ETH-USD_1d.csv"]


def plain_pandas_read(path: Path) -> pd.DataFrame:
    """The independent reading recipe of ../shared/data/README.md, per file kind."""
    if "multiheader" in path.name:
        raw = pd.read_csv(path, header=[0, 1], index_col=0, skiprows=[2])
        raw.columns = [price.lower() for price, _ in raw.columns]
    elif path.name.startswith("yahoo"):
        raw = pd.read_csv(path, index_col="Date").rename(columns=str.lower)
    else:
        raw = pd.read_csv(path, index_col="date")
    raw.index = pd.to_datetime(raw.index, utc=True)
    return raw[["open", "high", "low", "close", "volume"]].astype(float)


FILES_WITH_GAPS = {"binance_BTCUSDT_1h.csv", "yahoo_BTC-USD_1h_yf-multiheader.csv"}


@pytest.mark.parametrize("name", SHARED_FILES)
def test_every_shared_file_loads_and_agrees_with_plain_pandas(shared_data, name):
    path = shared_data / name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = load_csv(path)
    gap_warnings = [w for w in caught if issubclass(w.category, DataGapWarning)]
    # README: only these two files have gaps; one warning line each, none for the rest
    assert len(gap_warnings) == (1 if name in FILES_WITH_GAPS else 0)
    expected = plain_pandas_read(path)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(frame.index.tz) == "UTC" and frame.index.name == "datetime"
    assert (frame.dtypes == np.float64).all()
    pd.testing.assert_frame_equal(frame, expected, check_names=False, check_freq=False)
    assert frame.attrs["symbol"] == path.stem
    assert frame.attrs["source"] == "csv" and frame.attrs["synthetic"] is False
    assert frame.attrs["path"] == str(path)


def test_known_values_from_the_data_readme(shared_data):
    # ../shared/data/README.md: "2021-11-10 close is 64995.23", "2020-03-12 close is 4970.79",
    # ETH "2021-11-10 close is 4636.17" (the file stores 6 decimals, hence the tolerance).
    btc = load_csv(shared_data / "yahoo_BTC-USD_1d.csv")
    eth = load_csv(shared_data / "yahoo_ETH-USD_1d.csv")
    assert btc.loc["2021-11-10", "close"].item() == pytest.approx(64995.23, abs=0.005)
    assert btc.loc["2020-03-12", "close"].item() == pytest.approx(4970.79, abs=0.005)
    assert eth.loc["2021-11-10", "close"].item() == pytest.approx(4636.17, abs=0.005)
    # README: binance 1h low 3782.13 at 2020-03-13 02:00 UTC.
    with pytest.warns(DataGapWarning):
        binance = load_csv(shared_data / "binance_BTCUSDT_1h.csv")
    assert binance.loc[pd.Timestamp("2020-03-13 02:00", tz="UTC"), "low"] == 3782.13


def test_intervals_are_inferred_from_median_spacing(shared_data):
    assert load_csv(shared_data / "binance_BTCUSDT_5m.csv").attrs["interval"] == "5m"
    assert load_csv(shared_data / "yahoo_BTC-USD_1d.csv").attrs["interval"] == "1d"
    with pytest.warns(DataGapWarning):
        assert load_csv(shared_data / "binance_BTCUSDT_1h.csv").attrs["interval"] == "1h"


def test_binance_1h_gaps_match_the_readme(shared_data):
    # README: "28 gaps from exchange outages; the largest is 34 h, starting 2018-02-08 00:00".
    # File lines 4191/4192: 2018-02-08T00:00Z then 2018-02-09T10:00Z, a 34 h step.
    with pytest.warns(DataGapWarning, match=r"28 gaps, largest 34 h") as caught:
        frame = load_csv(shared_data / "binance_BTCUSDT_1h.csv")
    assert len([w for w in caught if issubclass(w.category, DataGapWarning)]) == 1
    assert frame.attrs["gap_count"] == 28
    assert frame.attrs["largest_gap"] == 34 * 3600.0
    assert frame.attrs["largest_gap_start"] == "2018-02-08T00:00:00+00:00"
    # missing bars = hours spanned + 1 - rows present
    span_hours = (frame.index[-1] - frame.index[0]) / pd.Timedelta(hours=1)
    assert frame.attrs["missing_bars"] == int(span_hours) + 1 - len(frame)
    assert len(frame) == 58419  # nothing filled: README row count


def test_yfinance_multiheader_file_reports_its_single_missing_bar(shared_data):
    # README: "1 gap of one missing bar (2025-01-02 14:00)": 13:00 is followed by 15:00.
    with pytest.warns(DataGapWarning, match="1 missing 1h bars"):
        frame = load_csv(shared_data / "yahoo_BTC-USD_1h_yf-multiheader.csv")
    assert frame.attrs["csv_format"] == "yfinance"
    assert frame.attrs["missing_bars"] == 1
    assert frame.attrs["largest_gap"] == 2 * 3600.0
    assert frame.attrs["largest_gap_start"] == "2025-01-02T13:00:00+00:00"
    # README: 2024-08-05 crash low 49578.89 at 12:00 UTC (stored as float32-ish digits).
    assert frame.loc[pd.Timestamp("2024-08-05 12:00", tz="UTC"), "low"] == pytest.approx(
        49578.89, abs=0.01)


BINANCE_ROWS_MS = [
    # open_time, open, high, low, close, volume, close_time, quote_volume, trades,
    # taker_buy_base, taker_buy_quote, ignore  (values from the shared 1h file, 2017-08-17)
    "1502942400000,4261.48,4313.62,4261.32,4308.83,47.181009,1502945999999,202366.1,171,35.16,150952.5,0",
    "1502946000000,4308.83,4328.69,4291.37,4315.32,23.234916,1502949599999,100304.8,102,21.44,92608.2,0",
    "1502949600000,4330.29,4345.45,4309.37,4324.35,7.229691,1502953199999,31282.3,36,4.8,20834.4,0",
]
BINANCE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                  "taker_buy_volume,taker_buy_quote_volume,ignore")


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_binance_klines_without_header_in_milliseconds(tmp_path):
    path = _write(tmp_path, "BTCUSDT-1h-2017-08.csv", BINANCE_ROWS_MS)
    frame = load_csv(path)
    assert frame.attrs["csv_format"] == "binance"
    # 1502942400000 ms = 1502942400 s = 2017-08-17 04:00:00 UTC (first row of the shared file)
    assert frame.index[0] == pd.Timestamp("2017-08-17 04:00", tz="UTC")
    assert frame.attrs["interval"] == "1h"
    assert frame.iloc[0].tolist() == [4261.48, 4313.62, 4261.32, 4308.83, 47.181009]


def test_binance_klines_with_header_in_microseconds(tmp_path):
    # Spot files from 2025 on stamp microseconds: 1735689600000000 us = 2025-01-01 00:00 UTC.
    rows = [row.replace("1502942400000,", "1735689600000000,", 1)
            .replace("1502946000000,", "1735693200000000,", 1)
            .replace("1502949600000,", "1735696800000000,", 1) for row in BINANCE_ROWS_MS]
    path = _write(tmp_path, "BTCUSDT-1h-2025-01.csv", [BINANCE_HEADER] + rows)
    frame = load_csv(path, format="binance")
    assert list(frame.index) == list(pd.date_range("2025-01-01", periods=3, freq="h", tz="UTC"))
    assert frame["close"].tolist() == [4308.83, 4315.32, 4324.35]


def test_ccxt_rows_are_detected(tmp_path):
    rows = [",".join(row.split(",")[:6]) for row in BINANCE_ROWS_MS]
    frame = load_csv(_write(tmp_path, "ccxt_btc.csv", rows))
    assert frame.attrs["csv_format"] == "ccxt"
    assert frame.index[-1] == pd.Timestamp("2017-08-17 06:00", tz="UTC")
    assert frame["volume"].tolist() == [47.181009, 23.234916, 7.229691]


def test_yahoo_named_format_and_symbol_override(shared_data):
    frame = load_csv(shared_data / "yahoo_ETH-USD_1d.csv", format="yahoo", symbol="ETH-USD")
    assert frame.attrs["symbol"] == "ETH-USD"
    # Close is kept, Adj Close is not a column of the result
    assert "adj close" not in frame.columns
    assert frame.index[0] == pd.Timestamp("2017-11-09", tz="UTC")


def test_plain_ohlcv_with_offsets_is_converted_to_utc(tmp_path):
    path = _write(tmp_path, "offsets.csv", [
        "Timestamp,Open,High,Low,Close,Volume",
        "2024-01-01T02:00:00+02:00,10,12,9,11,5",   # = 00:00 UTC
        "2024-01-01T01:00:00Z,11,13,10,12,6",       # = 01:00 UTC
    ])
    frame = load_csv(path)
    assert list(frame.index) == [pd.Timestamp("2024-01-01 00:00", tz="UTC"),
                                 pd.Timestamp("2024-01-01 01:00", tz="UTC")]


def test_unknown_header_is_reported_with_the_file_and_line(tmp_path):
    path = _write(tmp_path, "mystery.csv", ["a,b,c", "1,2,3"])
    with pytest.raises(DataError, match=r"mystery\.csv line 1: cannot detect the CSV format"):
        load_csv(path)
