"""Each validation rule raises one DataError naming the file, the line/row and the column.

Inputs are the first five bars of ../shared/data/binance_BTCUSDT_1h.csv (file
lines 2-6, header on line 1) with one field broken per test.
"""
from pathlib import Path

import pandas as pd
import pytest

from backtrader_leverage.data import DataError, load_csv, load_ohlcv
from backtrader_leverage.data.validate import validate_ohlcv

FIRST_BARS = 5


@pytest.fixture
def good_lines(shared_data) -> list[str]:
    with open(shared_data / "binance_BTCUSDT_1h.csv") as handle:
        return [next(handle).rstrip("\n") for _ in range(FIRST_BARS + 1)]


def write_csv(tmp_path: Path, lines: list[str], name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def replace_field(line: str, column: int, value: str) -> str:
    fields = line.split(",")
    fields[column] = value
    return ",".join(fields)


# column positions in date,open,high,low,close,volume
OPEN, HIGH, LOW, CLOSE, VOLUME = 1, 2, 3, 4, 5


def test_unbroken_lines_load(tmp_path, good_lines):
    frame = load_csv(write_csv(tmp_path, good_lines))
    assert len(frame) == FIRST_BARS


def test_nan_price_names_file_line_and_column(tmp_path, good_lines):
    good_lines[3] = replace_field(good_lines[3], CLOSE, "")  # file line 4 = data row 3
    with pytest.raises(DataError, match=r"^bars\.csv line 4 \(row 3, 2017-08-17 06:00:00\+00:00\)"
                                        r": NaN in column 'close'"):
        load_csv(write_csv(tmp_path, good_lines))


def test_non_positive_price(tmp_path, good_lines):
    good_lines[2] = replace_field(good_lines[2], OPEN, "0")
    with pytest.raises(DataError, match=r"bars\.csv line 3 \(row 2.*open is 0\.0 \(prices must be > 0\)"):
        load_csv(write_csv(tmp_path, good_lines))


def test_negative_price(tmp_path, good_lines):
    good_lines[5] = replace_field(good_lines[5], LOW, "-1.5")
    with pytest.raises(DataError, match=r"line 6 \(row 5.*low is -1\.5 \(prices must be > 0\)"):
        load_csv(write_csv(tmp_path, good_lines))


def test_negative_volume(tmp_path, good_lines):
    good_lines[1] = replace_field(good_lines[1], VOLUME, "-3")
    with pytest.raises(DataError, match=r"line 2 \(row 1.*volume is -3\.0 \(volume must be >= 0\)"):
        load_csv(write_csv(tmp_path, good_lines))


def test_high_below_body(tmp_path, good_lines):
    # line 2 bar: open 4261.48, close 4308.83 -> max(open, close) = 4308.83 > high 4300.0
    good_lines[1] = replace_field(good_lines[1], HIGH, "4300.0")
    with pytest.raises(DataError, match=r"line 2 \(row 1.*high 4300\.0 < max\(open, close\) 4308\.83"):
        load_csv(write_csv(tmp_path, good_lines))


def test_low_above_body(tmp_path, good_lines):
    # line 2 bar: min(open 4261.48, close 4308.83) = 4261.48 < low 4270.0
    good_lines[1] = replace_field(good_lines[1], LOW, "4270.0")
    with pytest.raises(DataError, match=r"line 2 \(row 1.*low 4270\.0 > min\(open, close\) 4261\.48"):
        load_csv(write_csv(tmp_path, good_lines))


def test_unsorted_timestamps(tmp_path, good_lines):
    good_lines[3], good_lines[4] = good_lines[4], good_lines[3]  # 07:00 now before 06:00
    with pytest.raises(DataError, match=r"line 5 \(row 4.*timestamps not sorted "
                                        r"\(2017-08-17 06:00:00\+00:00 comes after "
                                        r"2017-08-17 07:00:00\+00:00\)"):
        load_csv(write_csv(tmp_path, good_lines))


def test_duplicate_timestamp(tmp_path, good_lines):
    good_lines[4] = replace_field(good_lines[4], 0, good_lines[3].split(",")[0])
    with pytest.raises(DataError, match=r"line 5 \(row 4.*duplicate timestamp 2017-08-17 06:00"):
        load_csv(write_csv(tmp_path, good_lines))


def test_missing_column(tmp_path, good_lines):
    without_volume = [line.rsplit(",", 1)[0] for line in good_lines]
    with pytest.raises(DataError, match=r"^bars\.csv: missing column 'volume' "
                                        r"\(found: date, open, high, low, close\)"):
        load_csv(write_csv(tmp_path, without_volume))


def test_empty_data_with_header_only(tmp_path, good_lines):
    with pytest.raises(DataError, match=r"^bars\.csv: no data rows \(empty data\)$"):
        load_csv(write_csv(tmp_path, good_lines[:1]))


def test_empty_file(tmp_path):
    path = tmp_path / "nothing.csv"
    path.write_text("")
    with pytest.raises(DataError, match=r"^nothing\.csv: empty file"):
        load_csv(path)


def test_text_in_a_number_column(tmp_path, good_lines):
    good_lines[2] = replace_field(good_lines[2], HIGH, "4328,69".replace(",", ";"))
    with pytest.raises(DataError, match=r"line 3 \(row 2\): column 'high' value '4328;69' "
                                        r"is not a number"):
        load_csv(write_csv(tmp_path, good_lines))


def test_unparseable_timestamp(tmp_path, good_lines):
    good_lines[2] = replace_field(good_lines[2], 0, "17/08/2017 05h")
    with pytest.raises(DataError, match=r"line 3 \(row 2\): column 'date' value '17/08/2017 05h' "
                                        r"is not an ISO-8601"):
        load_csv(write_csv(tmp_path, good_lines))


def test_blank_line_inside_data_is_reported_not_skipped(tmp_path, good_lines):
    lines = good_lines[:3] + [""] + good_lines[3:]
    with pytest.raises(DataError, match=r"line 4 \(row 3\): missing timestamp"):
        load_csv(write_csv(tmp_path, lines))


def test_start_after_end():
    with pytest.raises(DataError, match=r"start 2024-02-01 00:00:00\+00:00 is after end "
                                        r"2024-01-01 00:00:00\+00:00"):
        load_ohlcv("BTC-USD", "1h", start="2024-02-01", end="2024-01-01", source="synthetic")


def test_start_equal_to_end_is_an_empty_range():
    with pytest.raises(DataError, match=r"equals end .*end is exclusive"):
        load_ohlcv("BTC-USD", "1d", start="2024-01-01", end="2024-01-01", source="cache")


def test_messages_are_single_lines(tmp_path, good_lines):
    good_lines[3] = replace_field(good_lines[3], CLOSE, "")
    with pytest.raises(DataError) as caught:
        load_csv(write_csv(tmp_path, good_lines))
    assert "\n" not in str(caught.value)


def test_bad_file_is_left_untouched(tmp_path, good_lines):
    good_lines[3] = replace_field(good_lines[3], CLOSE, "")
    path = write_csv(tmp_path, good_lines)
    before = path.read_bytes()
    with pytest.raises(DataError):
        load_csv(path)
    assert path.read_bytes() == before


def test_validate_ohlcv_names_a_non_file_source():
    index = pd.DatetimeIndex(["2024-01-01", "2024-01-02"], tz="UTC")
    frame = pd.DataFrame({"open": [1.0, 2.0], "high": [1.0, 2.0], "low": [1.0, 2.0],
                          "close": [1.0, float("nan")], "volume": [0.0, 0.0]}, index=index)
    with pytest.raises(DataError, match=r"^yfinance BTC-USD 1d \(row 2, 2024-01-02 "
                                        r"00:00:00\+00:00\): NaN in column 'close'"):
        validate_ohlcv(frame, "yfinance BTC-USD 1d")
