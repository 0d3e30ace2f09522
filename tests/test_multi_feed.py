"""Several symbols: repeated --csv, feed names, --feed-leverage, alignment, per-feed outputs."""
import json

import numpy as np
import pytest

from backtrader_leverage import cli as run_backtest
from backtrader_leverage.backtest import BacktestConfig, run_backtest as run_one
from backtrader_leverage.backtest.feeds import clock, feed_names, named
from backtrader_leverage.data import load_csv

# Long-only SMA cross on every feed it is given, sized by the sizer (no size passed);
# it writes the leverage the broker applies to each feed to a file in the folder its `record`
# param names, one file per setting (named by the first feed's leverage).
PER_FEED_CROSS = '''
import json
import backtrader as bt


class PerFeedCross(bt.Strategy):
    params = (("fast", 10), ("slow", 30), ("record", ""))

    def __init__(self):
        self.cross = {data: bt.ind.CrossOver(bt.ind.SMA(data.close, period=self.p.fast),
                                             bt.ind.SMA(data.close, period=self.p.slow))
                      for data in self.datas}

    def next(self):
        for data, cross in self.cross.items():
            held = self.getposition(data).size
            if cross[0] > 0 and not held:
                self.buy(data=data)
            elif cross[0] < 0 and held:
                self.close(data=data)

    def stop(self):
        if self.p.record:
            name = f"{self.broker.get_leverage(self.datas[0]):g}.json"
            with open(f"{self.p.record}/{name}", "w") as handle:
                json.dump({data._name: self.broker.get_leverage(data) for data in self.datas},
                          handle)
'''


@pytest.fixture(scope="module")
def perp_csvs(shared_data, tmp_path_factory):
    """BTCUSDT perp Apr-May 2021 (1464 h) and ETHUSDT perp May 2021 only (744 h, shorter)."""
    folder = tmp_path_factory.mktemp("perp")
    paths = {}
    for symbol, months in (("BTCUSDT", ("2021-04", "2021-05")), ("ETHUSDT", ("2021-05",))):
        lines = (shared_data / f"binance_um_{symbol}_1h.csv").read_text().splitlines()
        kept = [line for line in lines[1:] if line[:7] in months]
        paths[symbol] = folder / f"binance_um_{symbol}_1h.csv"
        paths[symbol].write_text("\n".join([lines[0]] + kept) + "\n")
    return paths


@pytest.fixture(scope="module")
def strategy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "my_strategies.py"
    path.write_text(PER_FEED_CROSS)
    return path


def read_rows(out):
    return json.loads((out / "metrics.json").read_text())


def test_two_csv_feeds_with_a_per_feed_leverage(perp_csvs, strategy_file, tmp_path, capsys):
    out, record = tmp_path / "sweep", tmp_path / "leverages"
    record.mkdir()
    code = run_backtest.main([
        "sweep", "--csv", f"BTC={perp_csvs['BTCUSDT']}", "--csv", f"ETH={perp_csvs['ETHUSDT']}",
        "--strategy", f"{strategy_file}:PerFeedCross", "--param", f"record={record}",
        "--leverage", "2,25", "--feed-leverage", "ETH=3", "--workers", "2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    rows = read_rows(out)
    assert [row["leverage"] for row in rows] == [2.0, 25.0]
    # BTC at the swept leverage, ETH at its override 3x, in both settings
    assert json.loads((record / "2.json").read_text()) == {"BTC": 2.0, "ETH": 3.0}
    assert json.loads((record / "25.json").read_text()) == {"BTC": 25.0, "ETH": 3.0}
    for row in rows:
        by_feed = json.loads(row["liquidations_by_feed"])
        assert list(by_feed) == ["BTC", "ETH"]                 # every feed, in the order given
        assert sum(by_feed.values()) == row["liquidations"]
        assert row["symbol"] == "BTC,ETH" and row["feed_leverage"] == '{"ETH": 3.0}'
        assert row["bars"] == 1464          # union of the bar times: BTC's April + May
        assert row["strategy_class"] == "PerFeedCross"
        assert row["strategy_file"] == str(strategy_file.resolve())
    # 25x longs on BTC in April-May 2021 get liquidated (a 4 % fall is enough)
    assert json.loads(rows[1]["liquidations_by_feed"])["BTC"] > 0
    assert all(row["sized_orders"] > 0 and row["explicit_orders"] == 0 for row in rows)
    printed = capsys.readouterr().out
    assert "data: BTC 1h" in printed and "data: ETH 1h" in printed and "BTC: " in printed


def test_series_hold_every_feed_on_the_shared_clock(perp_csvs, tmp_path):
    out = tmp_path / "run"
    assert run_backtest.main(["run", "--csv", str(perp_csvs["BTCUSDT"]), "--csv",
                              str(perp_csvs["ETHUSDT"]), "--leverage", "20",
                              "--out", str(out)]) == 0
    (row,) = read_rows(out)
    names = ["binance_um_BTCUSDT_1h", "binance_um_ETHUSDT_1h"]   # file stems name the feeds
    assert list(json.loads(row["liquidations_by_feed"])) == names
    with np.load(out / "series.npz") as bundle:
        assert list(bundle["feed_names"]) == names
        closes = bundle["close_by_feed"]
        assert closes.shape == (2, 1464) and bundle["0/margin_ratio_by_feed"].shape == (2, 1464)
        # ETH has no bar in April (30 days x 24 h = 720 clock steps), then every hour of May
        assert np.isnan(closes[1, :720]).all() and not np.isnan(closes[1, 720:]).any()
        assert not np.isnan(closes[0]).any()
        owners = bundle["0/liquidation_feed"]
        assert len(owners) == row["liquidations"]
        assert [int(np.sum(owners == i)) for i in range(2)] == \
            list(json.loads(row["liquidations_by_feed"]).values())
    html = (out / "report.html").read_text()
    assert 'data-key="liquidations_by_feed"' in html and "binance_um_ETHUSDT_1h" in html


def test_unknown_feed_in_feed_leverage_is_exit_2_and_writes_nothing(perp_csvs, tmp_path, capsys):
    out = tmp_path / "never"
    assert run_backtest.main(["run", "--csv", f"BTC={perp_csvs['BTCUSDT']}", "--csv",
                              f"ETH={perp_csvs['ETHUSDT']}", "--feed-leverage", "SOL=3",
                              "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --feed-leverage SOL")
    assert "BTC, ETH" in err[0]
    assert not out.exists()


def test_two_feeds_with_one_name_is_exit_2(perp_csvs, tmp_path, capsys):
    out = tmp_path / "never"
    assert run_backtest.main(["run", "--csv", f"X={perp_csvs['BTCUSDT']}", "--csv",
                              f"X={perp_csvs['ETHUSDT']}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "two feeds are named 'X'" in err[0]
    assert not out.exists()


def test_feed_names_and_clock(perp_csvs):
    btc, eth = load_csv(perp_csvs["BTCUSDT"]), load_csv(perp_csvs["ETHUSDT"])
    assert feed_names([btc, named(eth, "ETH")]) == ["binance_um_BTCUSDT_1h", "ETH"]
    assert len(clock([eth, btc])) == 1464 and clock([eth, btc]).is_monotonic_increasing
    with pytest.raises(ValueError, match="unknown feed 'SOL'"):
        run_one([btc, eth], BacktestConfig(feed_leverage=(("SOL", 2.0),)))


def test_symbol_list_gives_one_feed_per_ticker(tmp_path):
    out = tmp_path / "symbols"
    assert run_backtest.main(["run", "--symbol", "BTC-USD,ETH-USD", "--source", "synthetic",
                              "--interval", "1h", "--start", "2022-01-01", "--end", "2022-02-01",
                              "--feed-leverage", "SYNTHETIC-ETH-USD=2", "--leverage", "5",
                              "--out", str(out)]) == 0
    (row,) = read_rows(out)
    assert row["symbol"] == "SYNTHETIC-BTC-USD,SYNTHETIC-ETH-USD" and row["synthetic"] is True
    assert list(json.loads(row["liquidations_by_feed"])) == ["SYNTHETIC-BTC-USD",
                                                             "SYNTHETIC-ETH-USD"]
    assert row["bars"] == 31 * 24                       # both feeds on the same hours
