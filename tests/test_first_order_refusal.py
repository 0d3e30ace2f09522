"""Refused up front: a leverage whose first order cannot open in its tier bracket."""
import pytest

from backtrader_leverage import cli as run_backtest
from backtrader_leverage.broker import MarginBroker
from backtrader_leverage.broker.margin import bracket_allows, max_openable_leverage

BTCUSDT = MarginBroker(tiers="binance_btcusdt_perp").tiers_for(None)


def test_max_openable_leverage_arithmetic():
    # margin 0.9 x 10,000 = 9,000: the 125x bracket ends at 50,000 -> 50,000 / 9,000 = 5.56x;
    # the 100x bracket [50,000, 500,000) reaches 500,000 / 9,000 = 55.56x; the 50x bracket
    # starts at 500,000, which 50x x 9,000 = 450,000 cannot reach
    assert max_openable_leverage(9_000.0, BTCUSDT) == pytest.approx(500_000 / 9_000)
    # margin 100: the 125x bracket holds up to 125 x 100 = 12,500 < 50,000
    assert max_openable_leverage(100.0, BTCUSDT) == 125.0
    assert bracket_allows(9_000 * 55, 55, BTCUSDT)
    assert not bracket_allows(9_000 * 125, 125, BTCUSDT)      # 1,125,000 sits in the 50x bracket


def test_sweep_refuses_the_leverage_before_running(tmp_path, capsys):
    out = tmp_path / "out"
    code = run_backtest.main(["sweep", "--csv", "unused.csv", "--tiers", "binance_btcusdt_perp",
                              "--leverage", "1,10,125", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --leverage 125:")
    assert "1,125,000 notional" in err[0] and "maximum is 50x" in err[0]
    assert "the maximum leverage at this size is 55.55x" in err[0]
    assert not out.exists()                                    # refused before the data load


def test_a_smaller_account_may_use_the_leverage(tmp_path, capsys):
    # 0.9 x 100 cash x 125 = 11,250 notional: inside the 125x bracket; the check passes and
    # the (missing) data file is what stops the run
    code = run_backtest.main(["run", "--csv", str(tmp_path / "missing.csv"), "--cash", "100",
                              "--tiers", "binance_btcusdt_perp", "--leverage", "125",
                              "--out", str(tmp_path / "out")])
    assert code == 2 and "missing.csv" in capsys.readouterr().err
