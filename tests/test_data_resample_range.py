"""Resampling a window: [start, end) is selected before the bars are aggregated.

``--interval 4h --end 2022-11-09T01:00`` on Binance 1h used to build its last
4h bar from the hourly bars of 00:00-03:00, i.e. from the 03:00 bar (close
18,313.68, low 18,000) that lies past --end. Bins the range cuts short at
either end are dropped and named in ``attrs['dropped_partial_bars']``.
"""
import pandas as pd
import pytest

from backtrader_leverage import cli
from backtrader_leverage.data import load_csv, resample_ohlcv


@pytest.fixture(scope="module")
def hourly(shared_data):
    return load_csv(shared_data / "binance_BTCUSDT_1h.csv").loc["2022-11-07":"2022-11-10"]


def stamp(text):
    return pd.Timestamp(text, tz="UTC")


def test_resample_with_end_uses_no_bar_at_or_after_end(hourly):
    end = stamp("2022-11-09 01:00")
    four_hourly = resample_ohlcv(hourly, "4h", start=stamp("2022-11-08"), end=end)
    # the 00:00 bin would hold only the 00:00 hourly bar (01:00-03:00 lie past the end): dropped
    assert four_hourly.index[-1] == stamp("2022-11-08 20:00")
    assert four_hourly.attrs["dropped_partial_bars"] == ["2022-11-09T00:00:00+00:00"]
    last_hours = hourly.loc["2022-11-08 20:00":"2022-11-08 23:00"]
    assert four_hourly["close"].iloc[-1] == last_hours["close"].iloc[-1]
    assert four_hourly["low"].iloc[-1] == last_hours["low"].min()
    assert four_hourly.index[0] == stamp("2022-11-08 00:00") and len(four_hourly) == 6


def test_resample_drops_a_first_bin_the_start_cuts_short(hourly):
    four_hourly = resample_ohlcv(hourly, "4h", start=stamp("2022-11-08 02:00"),
                                 end=stamp("2022-11-09"))
    assert four_hourly.index[0] == stamp("2022-11-08 04:00")
    assert four_hourly.attrs["dropped_partial_bars"] == ["2022-11-08T00:00:00+00:00"]
    assert four_hourly["open"].iloc[0] == hourly.loc[stamp("2022-11-08 04:00"), "open"]


def test_cli_interval_with_end_reads_nothing_past_end(shared_data, capsys):
    past_end = stamp("2022-11-09 03:00")
    hourly_file = load_csv(shared_data / "binance_BTCUSDT_1h.csv")
    assert hourly_file.loc[past_end, "close"] == 18313.68  # the bar the bug read
    args = cli.build_parser().parse_args([
        "run", "--csv", str(shared_data / "binance_BTCUSDT_1h.csv"), "--interval", "4h",
        "--start", "2022-11-01", "--end", "2022-11-09T01:00"])
    frame = cli.load_frame(args)
    assert frame.index[-1] == stamp("2022-11-08 20:00")
    assert frame.index[-1] + pd.Timedelta(hours=4) <= stamp("2022-11-09 01:00")
    assert 18313.68 not in frame["close"].to_numpy()
    last_hours = hourly_file.loc["2022-11-08 20:00":"2022-11-08 23:00"]
    assert frame["low"].iloc[-1] == last_hours["low"].min()          # 17,810.49, not 18,000
    assert frame["close"].iloc[-1] == last_hours["close"].iloc[-1]   # 18,547.23
    assert "dropped the partial 4h bar at 2022-11-09 00:00:00+00:00" in capsys.readouterr().out
