"""Isolated vs cross side by side: the pure comparison, the sweep CLI and the report section."""
import json

import pytest

from backtrader_leverage import cli as run_backtest
from backtrader_leverage.backtest.compare import liquidation_loss, mode_comparison

CASH = 10_000.0
BARS = 1500


def row(leverage, mode, final, *, liquidations=0, margin_lost=0.0, deficit=0.0, absorbed=0.0,
        drawdown=0.1, error=None):
    return {"leverage": leverage, "margin_mode": mode, "cash": CASH, "final_value": final,
            "max_drawdown": drawdown, "liquidations": liquidations, "margin_lost": margin_lost,
            "deficit": deficit, "absorbed_deficit": absorbed, "error": error}


def test_liquidation_loss_adds_the_carried_deficit():
    # margin 500 + deficit 80 of which 30 absorbed -> 500 + 50
    assert liquidation_loss(row(5, "cross", 1.0, margin_lost=500.0, deficit=80.0,
                                absorbed=30.0)) == pytest.approx(550.0)
    assert liquidation_loss(row(5, "cross", None, error="boom", margin_lost=None)) is None


def test_mode_comparison_pairs_rows_and_says_who_lost_less():
    rows = [row(10, "isolated", 6_000.0, liquidations=2, margin_lost=3_000.0),
            row(10, "cross", 2_500.0, liquidations=1, margin_lost=7_000.0),
            row(2, "cross", 11_000.0), row(2, "isolated", 11_000.0)]
    two, ten = mode_comparison(rows)
    assert (two["leverage"], ten["leverage"]) == (2, 10)          # leverage order
    assert two["better"] is None and two["difference"] == 0.0
    assert two["sentence"] == ("2x: both modes ended the same, final equity 11,000.00 "
                               "(+1,000.00 on the starting cash).")
    # isolated lost 10000 - 6000 = 4000, cross 10000 - 2500 = 7500: isolated lost 3500 less
    assert ten["better"] == "isolated" and ten["difference"] == pytest.approx(3_500.0)
    assert ten["sentence"] == ("10x: isolated lost 3,500.00 less than cross (isolated lost "
                               "4,000.00, cross lost 7,500.00 of the 10,000.00 starting cash).")
    # a mode that gained: 'came out ... ahead of'
    (three,) = mode_comparison([row(3, "isolated", 9_000.0), row(3, "cross", 12_000.0)])
    assert three["sentence"] == ("3x: cross came out 3,000.00 ahead of isolated (cross gained "
                                 "2,000.00, isolated lost 1,000.00 of the 10,000.00 starting cash).")
    assert ten["isolated"]["liquidation_loss"] == 3_000.0 and ten["cross"]["liquidations"] == 1


def test_mode_comparison_skips_unpaired_and_reports_failures():
    rows = [row(3, "isolated", 9_000.0), row(5, "isolated", 8_000.0),
            row(5, "cross", None, error="ValueError: x", margin_lost=None)]
    (five,) = mode_comparison(rows)
    assert five["better"] is None and "cross run failed" in five["sentence"]


@pytest.fixture(scope="module")
def small_csv(shared_data, tmp_path_factory):
    """The last BARS hourly bars of the real Binance USDⓈ-M BTCUSDT perpetual file."""
    lines = (shared_data / "binance_um_BTCUSDT_1h.csv").read_text().splitlines()
    path = tmp_path_factory.mktemp("data") / "btcusdt_perp_1h_tail.csv"
    path.write_text("\n".join([lines[0]] + lines[-BARS:]) + "\n")
    return path


def test_sweep_runs_each_leverage_in_both_modes(small_csv, tmp_path, capsys):
    out = tmp_path / "modes"
    code = run_backtest.main(["sweep", "--csv", str(small_csv), "--leverage", "2,40",
                              "--margin-mode", "isolated,cross", "--workers", "1",
                              "--out", str(out)])
    assert code == 0
    rows = json.loads((out / "metrics.json").read_text())
    assert [(r["leverage"], r["margin_mode"]) for r in rows] == [
        (2.0, "isolated"), (2.0, "cross"), (40.0, "isolated"), (40.0, "cross")]
    printed = capsys.readouterr().out
    entries = mode_comparison(rows)
    assert len(entries) == 2
    html = (out / "report.html").read_text()
    assert 'id="margin-modes"' in html
    for entry in entries:
        assert entry["sentence"] in printed
        assert entry["sentence"].replace("'", "&#39;") in html
    # the comparison is rebuilt from the folder alone
    (out / "report.html").unlink()
    assert run_backtest.main(["report", str(out)]) == 0
    assert 'id="margin-modes"' in (out / "report.html").read_text()


def test_one_mode_sweep_has_no_comparison_and_bad_modes_are_exit_2(small_csv, tmp_path, capsys):
    out = tmp_path / "one"
    assert run_backtest.main(["sweep", "--csv", str(small_csv), "--leverage", "3",
                              "--margin-mode", "cross", "--workers", "1", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())[0]["margin_mode"] == "cross"
    assert 'id="margin-modes"' not in (out / "report.html").read_text()
    capsys.readouterr()
    for args, fragment in ((["sweep", "--margin-mode", "portfolio"], "'portfolio'"),
                           (["run", "--margin-mode", "isolated,cross"], "takes one mode")):
        bad = tmp_path / "bad"
        code = run_backtest.main(args + ["--csv", str(small_csv), "--out", str(bad)])
        assert code == 2 and not bad.exists()
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: --margin-mode") and fragment in err[0]


@pytest.fixture(scope="module")
def eth_csv(shared_data, tmp_path_factory):
    """The last BARS hourly bars of the real Binance USDⓈ-M ETHUSDT perpetual file."""
    lines = (shared_data / "binance_um_ETHUSDT_1h.csv").read_text().splitlines()
    path = tmp_path_factory.mktemp("data") / "ethusdt_perp_1h_tail.csv"
    path.write_text("\n".join([lines[0]] + lines[-BARS:]) + "\n")
    return path


def test_feed_tiers_with_several_symbols(small_csv, eth_csv, tmp_path, capsys):
    out = tmp_path / "pair"
    code = run_backtest.main(["sweep", "--csv", f"BTC={small_csv}", "--csv", f"ETH={eth_csv}",
                              "--tiers", "binance_btcusdt_perp",
                              "--feed-tiers", "ETH=binance_ethusdt_perp", "--leverage", "3",
                              "--margin-mode", "isolated,cross", "--workers", "1",
                              "--no-refine", "--out", str(out)])
    assert code == 0
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["margin_mode"] for r in rows] == ["isolated", "cross"]
    assert all(json.loads(r["feed_tiers"]) == {"ETH": "binance_ethusdt_perp"} for r in rows)
    capsys.readouterr()
    for tiers, fragment in (("SOL=binance_ethusdt_perp", "--feed-tiers SOL: no feed of that name"),
                            ("ETH=no_such_table", "--feed-tiers ETH=no_such_table")):
        bad = tmp_path / "bad"
        code = run_backtest.main(["sweep", "--csv", f"BTC={small_csv}", "--csv", f"ETH={eth_csv}",
                                  "--feed-tiers", tiers, "--leverage", "3", "--out", str(bad)])
        assert code == 2 and not bad.exists()
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err


def test_apply_feed_tiers_sets_the_named_feeds_table():
    import backtrader as bt
    from _bars import bars_feed, flat
    from backtrader_leverage.backtest import BacktestConfig
    from backtrader_leverage.backtest.single import apply_feed_tiers
    from backtrader_leverage.broker import MarginBroker
    feeds = [bars_feed([flat(100)] * 2, name="BTC"), bars_feed([flat(100)] * 2, name="ETH")]
    broker = MarginBroker(tiers="binance_btcusdt_perp")
    apply_feed_tiers(broker, feeds, BacktestConfig(feed_tiers=(("ETH", "binance_ethusdt_perp"),)))
    # ETHUSDT bracket 3 starts at 600,000 (0.65 %); BTCUSDT's table (this repo's) at 500,000 (1 %)
    assert broker.tiers_for(feeds[1])[2].notional_floor == 600_000
    assert broker.tiers_for(feeds[0])[2].notional_floor == 500_000
    with pytest.raises(ValueError, match="no such feed"):
        apply_feed_tiers(broker, feeds, BacktestConfig(feed_tiers=(("SOL", "binance_ethusdt_perp"),)))


def test_python_sweep_runs_both_modes_like_the_cli(small_csv, tmp_path, capsys):
    import backtrader_leverage as btl
    result = btl.sweep("sma_cross", str(small_csv), [2, 40], margin_mode=["isolated", "cross"],
                       workers=1)
    assert list(zip(result.metrics["leverage"], result.metrics["margin_mode"])) == [
        (2.0, "isolated"), (2.0, "cross"), (40.0, "isolated"), (40.0, "cross")]
    table = result.margin_modes()
    assert list(table["leverage"]) == [2.0, 40.0]
    assert list(table["sentence"]) == [entry["sentence"] for entry in mode_comparison(result.rows)]
    assert table.loc[1, "cross_final_value"] == result.rows[3]["final_value"]
    # the same settings from the command line give the same rows (timing aside)
    out = tmp_path / "cli"
    assert run_backtest.main(["sweep", "--csv", str(small_csv), "--leverage", "2,40",
                              "--margin-mode", "isolated,cross", "--workers", "1", "--no-refine",
                              "--out", str(out)]) == 0
    cli_rows = json.loads((out / "metrics.json").read_text())
    for api_row, cli_row in zip(result.rows, cli_rows):
        assert {k: v for k, v in api_row.items() if k != "seconds"} == \
            {k: v for k, v in cli_row.items() if k != "seconds"}
    assert btl.sweep("sma_cross", str(small_csv), [2], workers=1).margin_modes().empty
    with pytest.raises(ValueError, match="margin_mode"):
        btl.sweep("sma_cross", str(small_csv), [2], margin_mode="portfolio")
    with pytest.raises(ValueError, match="feed_tiers: no feed named 'ETH'"):
        btl.sweep("sma_cross", str(small_csv), [2], feed_tiers={"ETH": "binance_ethusdt_perp"})
