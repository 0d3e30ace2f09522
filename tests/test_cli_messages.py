"""Messages that name what the user can type, and leverages refused before any work.

- a one-row CSV says to give the interval explicitly: the CLI has ``--csv-interval``;
- a corrupt cache names the CLI's ``--refresh`` option, and ``--refresh`` works;
- no message says "None" for an open end of a range;
- ``--leverage 1e9``, ``300`` (flat mmr 0.005 allows 1 / 0.005 = 200x), ``126 --tiers
  binance_btcusdt_perp`` (table max 125x) and ``--mmr 0`` are exit 2 up front, naming the
  maximum or the allowed range, with no data loaded and nothing written.
"""
import pytest

from backtrader_leverage import cli
from backtrader_leverage.data import DataUnavailable, load_ohlcv


def one_error_line(capsys):
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0], captured.out


@pytest.fixture
def small_csv(shared_data, tmp_path):
    lines = (shared_data / "binance_BTCUSDT_1h.csv").read_text().splitlines()
    path = tmp_path / "tail.csv"
    path.write_text("\n".join([lines[0]] + lines[-300:]) + "\n")
    return path


@pytest.mark.parametrize("extra, fragments", [
    (["--leverage", "1e9"], ["--leverage 1e+09", "maximum of 200x", "--mmr 0.005"]),
    (["--leverage", "300"], ["--leverage 300", "maximum of 200x", "--mmr 0.005"]),
    (["--leverage", "126", "--tiers", "binance_btcusdt_perp"],
     ["--leverage 126", "maximum of 125x", "binance_btcusdt_perp"]),
    (["--mmr", "0"], ["--mmr", "(0, 1)"]),
    (["--maintenance-margin-rate", "0"], ["--maintenance-margin-rate", "(0, 1)"]),
])
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_impossible_settings_are_refused_up_front(command, extra, fragments, small_csv, tmp_path,
                                                  capsys):
    out = tmp_path / "out"
    argv = [command, "--csv", str(small_csv), "--out", str(out)] + extra
    if command == "sweep" and "--leverage" in extra:
        index = argv.index("--leverage") + 1
        argv[index] = "2," + argv[index]                 # one good setting beside it
    assert cli.main(argv) == 2
    line, printed = one_error_line(capsys)
    for fragment in fragments:
        assert fragment in line, line
    assert "data:" not in printed                        # refused before loading data
    assert not out.exists()


def test_one_row_csv_names_the_cli_option_and_the_option_works(tmp_path, capsys):
    one_row = tmp_path / "one.csv"
    one_row.write_text("date,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n")
    assert cli.main(["run", "--csv", str(one_row), "--out", str(tmp_path / "a")]) == 2
    line, _ = one_error_line(capsys)
    assert "--csv-interval" in line
    assert cli.main(["run", "--csv", str(one_row), "--csv-interval", "1h",
                     "--out", str(tmp_path / "a")]) == 2
    line, _ = one_error_line(capsys)
    assert "needs at least" in line and "interval" not in line   # the interval was taken


def test_corrupt_cache_names_the_refresh_option(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BTLEV_CACHE_DIR", str(tmp_path))
    (tmp_path / "BTC-USD_1d.csv").write_text("# broken\nnot,a,cache\n")
    assert cli.main(["run", "--symbol", "BTC-USD", "--source", "cache",
                     "--out", str(tmp_path / "out")]) == 2
    line, _ = one_error_line(capsys)
    assert "--refresh" in line


def test_refresh_option_reaches_the_loader(tmp_path, monkeypatch):
    seen = {}

    def fake_load_ohlcv(symbol, **options):
        seen.update(options)
        raise DataUnavailable("offline")

    monkeypatch.setattr("backtrader_leverage.data.load_ohlcv", fake_load_ohlcv)
    assert cli.main(["run", "--symbol", "BTC-USD", "--refresh",
                     "--out", str(tmp_path / "out")]) == 2
    assert seen["refresh"] is True


def test_an_open_ended_range_is_not_called_none(tmp_path, monkeypatch, capsys, small_csv,
                                                shared_data):
    from backtrader_leverage.data import load_csv
    from backtrader_leverage.data.cache import CacheEntry, cache_path, write_cache
    cached = load_csv(shared_data / "yahoo_BTC-USD_1d.csv").iloc[-30:-1]
    write_cache(cache_path("BTC-USD", "1d", tmp_path), CacheEntry(
        cached, cached.index[0], cached.index[-1], cached.index[-1]), "BTC-USD", "1d")
    with pytest.raises(DataUnavailable) as caught:
        load_ohlcv("BTC-USD", "1d", start="2030-01-01", source="cache", cache_folder=tmp_path)
    assert "None" not in str(caught.value) and "from 2030-01-01" in str(caught.value)
    assert cli.main(["run", "--csv", str(small_csv), "--start", "2030-01-01",
                     "--out", str(tmp_path / "out")]) == 2
    line, _ = one_error_line(capsys)
    assert "None" not in line and "from 2030-01-01" in line
