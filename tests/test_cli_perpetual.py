"""The command line with perpetual funding and the mark price: options, output and bad input."""
import json

import pytest

from backtrader_leverage import cli as run_backtest
from backtrader_leverage.data import ccxt_source

from test_data_perpetual import FakeExchange

BARS_FROM, BARS_TO = "2021-05-10", "2021-05-25"       # around the 2021-05-19 crash


@pytest.fixture(scope="module")
def perp_files(shared_data):
    return {"trade": shared_data / "binance_um_BTCUSDT_1h.csv",
            "mark": shared_data / "binance_um_BTCUSDT_mark_1h.csv",
            "funding": shared_data / "binance_um_BTCUSDT_funding_8h.csv"}


def rows_of(out):
    return json.loads((out / "metrics.json").read_text())


def test_sweep_with_funding_csv_and_mark_csv(perp_files, tmp_path, capsys):
    out = tmp_path / "perp"
    code = run_backtest.main([
        "sweep", "--csv", str(perp_files["trade"]), "--start", BARS_FROM, "--end", BARS_TO,
        "--strategy", "buy_hold", "--leverage", "1,3", "--workers", "1",
        "--funding-csv", str(perp_files["funding"]), "--mark-csv", str(perp_files["mark"]),
        "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    # 15 days x 3 settlements in [May 10 00:00, May 24 23:00]
    assert ("perpetual: funding binance_um_BTCUSDT_funding_8h.csv (45 settlements in the data's "
            "range); liquidation on the mark price (binance_um_BTCUSDT_mark_1h.csv)") in printed
    assert "funding paid" in printed
    one, three = rows_of(out)
    # the 1x long opens at the second bar's open (01:00 May 10) and holds: every settlement
    # from 08:00 May 10 to 16:00 May 24 = 45 - 1 = 44 payments
    assert one["funding_payments"] == 44 and one["funding_paid"] > 0
    # 3x is liquidated in the May 19 crash, on the mark price, and pays no funding after it
    assert three["liquidations"] == 1 and three["funding_payments"] < 44
    assert one["trigger_price"].startswith("mark price")


def test_a_constant_funding_rate(perp_files, tmp_path, capsys):
    out = tmp_path / "constant"
    assert run_backtest.main([
        "run", "--csv", str(perp_files["trade"]), "--start", BARS_FROM, "--end", BARS_TO,
        "--strategy", "buy_hold", "--leverage", "1", "--funding-rate", "0.0001",
        "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "perpetual: funding 0.0001 per 8 h (constant); liquidation on the trade price" in printed
    (row,) = rows_of(out)
    assert row["funding"] == "0.0001 per 8 h (constant)" and row["funding_payments"] == 44


def test_funding_off_by_default(perp_files, tmp_path, capsys):
    out = tmp_path / "off"
    assert run_backtest.main(["run", "--csv", str(perp_files["trade"]), "--start", BARS_FROM,
                              "--end", BARS_TO, "--strategy", "buy_hold", "--out", str(out)]) == 0
    assert "perpetual: funding not modelled; liquidation on the trade price" in \
        capsys.readouterr().out
    (row,) = rows_of(out)
    assert row["funding"] == "funding not modelled" and row["funding_paid"] == 0.0


def test_ccxt_source_with_its_funding_and_mark(tmp_path, monkeypatch, capsys):
    fake = FakeExchange(bars=240)
    monkeypatch.setattr(ccxt_source, "make_exchange", lambda exchange: fake)
    monkeypatch.setenv("BTLEV_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "ccxt"
    code = run_backtest.main([
        "run", "--source", "ccxt", "--exchange", "fakeusdm", "--symbol", "BTC/USDT:USDT",
        "--interval", "1h", "--start", "2024-01-01", "--end", "2024-01-11",
        "--strategy", "buy_hold", "--funding", "ccxt", "--mark", "ccxt", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    (row,) = rows_of(out)
    assert row["source"] == "ccxt" and row["bars"] == 240
    assert row["trigger_price"] == "mark price (ccxt fakeusdm BTC/USDT:USDT)"
    assert row["funding"].startswith("fakeusdm BTC/USDT:USDT funding")
    # trade klines, mark klines and funding, each in its own checksummed cache file
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == [
        "ccxt_fakeusdm_BTC_USDT_USDT_1h.csv", "ccxt_fakeusdm_BTC_USDT_USDT_funding.csv",
        "ccxt_fakeusdm_BTC_USDT_USDT_mark_1h.csv"]


@pytest.mark.parametrize("extra, fragments", [
    (["--funding", "ccxt"], ["--funding ccxt", "--source ccxt"]),
    (["--mark", "ccxt"], ["--source ccxt"]),
    (["--funding-rate", "0.5"], ["--funding-rate", "±0.05"]),
    (["--funding-rate", "0.0001", "--funding-csv", "x.csv"], ["not allowed with"]),
    (["--funding-csv", "no_such_file.csv"], ["no_such_file.csv"]),
])
def test_bad_perpetual_options_are_one_line_and_exit_2(perp_files, tmp_path, capsys, extra,
                                                       fragments):
    out = tmp_path / "bad"
    code = run_backtest.main(["run", "--csv", str(perp_files["trade"]), "--start", BARS_FROM,
                              "--end", BARS_TO, "--out", str(out)] + extra)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_a_mark_file_of_another_period_is_refused(perp_files, tmp_path, capsys):
    mark = tmp_path / "mark.csv"
    lines = perp_files["mark"].read_text().splitlines()
    mark.write_text("\n".join(lines[:100]) + "\n")                # December 2019 only
    out = tmp_path / "bad"
    assert run_backtest.main(["run", "--csv", str(perp_files["trade"]), "--start", BARS_FROM,
                              "--end", BARS_TO, "--mark-csv", str(mark), "--out", str(out)]) == 2
    assert "has no bar at the data's times" in capsys.readouterr().err


def test_an_hourly_mark_file_follows_the_interval_of_the_trade_bars(perp_files):
    # --interval 4h aggregates the trade bars; the 1h mark file is aggregated the same way:
    # the 4h mark low of 2021-05-19 12:00 is the lowest of its four hourly mark lows
    args = run_backtest.build_parser().parse_args([
        "run", "--csv", str(perp_files["trade"]), "--start", BARS_FROM, "--end", BARS_TO,
        "--interval", "4h", "--mark-csv", str(perp_files["mark"])])
    (frame,) = run_backtest.attach_perpetual_to_feeds(args, [run_backtest.load_frame(args)])
    hourly = run_backtest.load_frame(run_backtest.build_parser().parse_args([
        "run", "--csv", str(perp_files["mark"]), "--start", "2021-05-19 12:00",
        "--end", "2021-05-19 16:00"]))
    assert frame.attrs["interval"] == "4h" and len(frame) == 15 * 6
    assert frame.loc["2021-05-19 12:00", "mark_low"] == hourly["low"].min() == 29563.37


def test_several_feeds_take_symbol_equals_file(perp_files, shared_data, tmp_path, capsys):
    out = tmp_path / "two"
    eth = {"trade": shared_data / "binance_um_ETHUSDT_1h.csv",
           "mark": shared_data / "binance_um_ETHUSDT_mark_1h.csv",
           "funding": shared_data / "binance_um_ETHUSDT_funding_8h.csv"}
    code = run_backtest.main([
        "run", "--csv", f"BTC={perp_files['trade']}", "--csv", f"ETH={eth['trade']}",
        "--start", BARS_FROM, "--end", BARS_TO, "--strategy", "buy_hold", "--leverage", "1",
        "--mark-csv", f"BTC={perp_files['mark']}", "--mark-csv", f"ETH={eth['mark']}",
        "--funding-csv", f"BTC={perp_files['funding']}", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    (row,) = rows_of(out)
    # ETH has a mark file but no funding file: the row says so per feed
    assert row["funding"] == ("BTC: binance_um_BTCUSDT_funding_8h.csv (45 settlements in the "
                              "data's range); ETH: funding not modelled")
    assert row["trigger_price"] == ("BTC: mark price (binance_um_BTCUSDT_mark_1h.csv); "
                                    "ETH: mark price (binance_um_ETHUSDT_mark_1h.csv)")
    assert row["funding_payments"] > 0


@pytest.mark.parametrize("marks, fragment", [
    (["{btc}"], "say which one it is for"),
    (["SOL={btc}"], "no feed named 'SOL'"),
    (["BTC={btc}", "BTC={btc}"], "two files for BTC"),
])
def test_bad_symbol_equals_file(perp_files, shared_data, tmp_path, capsys, marks, fragment):
    extra = []
    for item in marks:
        extra += ["--mark-csv", item.format(btc=perp_files["mark"])]
    code = run_backtest.main([
        "run", "--csv", f"BTC={perp_files['trade']}",
        "--csv", f"ETH={shared_data / 'binance_um_ETHUSDT_1h.csv'}",
        "--start", BARS_FROM, "--end", BARS_TO, "--out", str(tmp_path / "bad")] + extra)
    assert code == 2 and fragment in capsys.readouterr().err
