"""Safe leverage of a sweep: grid boundary, bisection by re-running, best CAGR/Calmar, headline."""
import dataclasses
import json

import pytest

from backtrader_leverage.backtest import BacktestConfig, run_task, sweep
from backtrader_leverage.backtest.safe_leverage import (duration_words, grid_boundary, headline,
                                                        refine, row_status,
                                                        safe_leverage_summary, tolerance)
from tests._bars import bars_frame, flat

ENTRY = 100.0
FALL = 0.28            # the path falls 28 % below the entry, then recovers
MMR = 0.005


def falling_path():
    """Entry fills at bar 1's open (100); the low reaches 72 at bar 20, then back to 100."""
    bars = [flat(ENTRY), flat(ENTRY)]
    bottom = ENTRY * (1 - FALL)
    for step in range(1, 21):                      # down to 72
        close = ENTRY - (ENTRY - bottom) * step / 20
        bars.append((bars[-1][3], bars[-1][3], close, close))
    for step in range(1, 21):                      # and back up
        close = bottom + (ENTRY - bottom) * step / 20
        bars.append((bars[-1][3], close, bars[-1][3], close))
    frame = bars_frame(bars)
    frame.attrs.update(symbol="PATH", source="test", interval="1h", synthetic=False)
    return frame


@pytest.fixture(scope="module")
def path_sweep():
    frame = falling_path()
    base = BacktestConfig(strategy="buy_hold", commission=0.0, maintenance_margin_rate=MMR)
    configs = [dataclasses.replace(base, leverage=leverage) for leverage in (1, 2, 3, 4, 5)]
    rows = [result.row for result in sweep(frame, configs, workers=1, progress=False)]
    runs = []

    def run(leverage):
        runs.append(leverage)
        return run_task(frame, dataclasses.replace(base, leverage=leverage)).row

    return rows, run, runs


def test_three_x_survives_four_x_is_liquidated_refined_to_3_53(path_sweep):
    rows, run, runs = path_sweep
    assert [row_status(row) for row in rows] == ["safe", "safe", "safe", "liquidated", "liquidated"]
    # a long isolated position is liquidated when the low reaches
    # LP = entry * (1 - 1/L) / (1 - mmr); it survives a 28 % fall while
    # 0.72 * (1 - mmr) <= 1 - 1/L, i.e. up to L = 1 / (1 - 0.72 * 0.995) = 1 / 0.2836 = 3.526x
    boundary = 1 / (1 - (1 - FALL) * (1 - MMR))
    assert boundary == pytest.approx(3.526, abs=5e-4)
    summary = safe_leverage_summary(rows, run)
    assert summary["max_safe_leverage_grid"] == 3 and summary["first_liquidated_leverage_grid"] == 4
    assert summary["max_safe_leverage"] <= boundary < summary["first_liquidated_leverage"]
    # bisection stops once the bracket is within max(0.05x, 2 % x 3.5 = 0.07x)
    assert summary["first_liquidated_leverage"] - summary["max_safe_leverage"] <= \
        tolerance(summary["max_safe_leverage"])
    assert summary["max_safe_leverage"] == pytest.approx(boundary, abs=0.07)
    # 3.5 (safe), 3.75, 3.625, 3.5625 (liquidated): [3.5, 3.5625] is 0.0625 <= 0.07 wide
    assert [point["leverage"] for point in summary["bisection"]] == runs == \
        [3.5, 3.75, 3.625, 3.5625]
    assert [point["status"] for point in summary["bisection"]] == \
        ["safe", "liquidated", "liquidated", "liquidated"]
    assert summary["liquidated_at_and_above"] is True
    # bar k + 1 has low 100 - 28 k / 20; 4x's LP 75 / 0.995 = 75.38 is first crossed at
    # k = 18 (low 74.8; k = 17 gives 76.2), bar 19: 19 hours after the first bar
    assert summary["first_liquidation_dt"] == "2024-01-01T19:00:00"
    assert summary["first_liquidation_after"] == 19 * 3_600
    assert summary["headline"].startswith(
        "Highest leverage without liquidation: 3.5x (3x in the grid).")
    assert "At 4x and above: liquidated, first after" in summary["headline"]


def test_no_refine_keeps_the_grid_answer(path_sweep):
    rows, _, _ = path_sweep
    summary = safe_leverage_summary(rows, None)
    assert summary["max_safe_leverage"] == 3 and summary["first_liquidated_leverage"] == 4
    assert summary["bisection"] == [] and summary["refined"] is False


def row(leverage, **values):
    base = {"leverage": float(leverage), "error": None, "all_orders_rejected": False,
            "liquidations": 0, "ruined": False, "cagr": 0.1, "calmar": 1.0,
            "total_return": 0.1, "first_liquidation_dt": None, "rejections": "{}",
            "data_start": "2024-01-01T00:00:00+00:00",
            "cagr_reason": None}
    base.update(values)
    return base


def test_rejected_and_ruined_rows_are_never_best():
    rows = [row(1, cagr=0.2, calmar=2.0), row(2, cagr=0.5, calmar=1.5),
            row(5, cagr=3.0, liquidations=2, ruined=True,
                first_liquidation_dt="2024-01-03T05:00:00"),
            row(125, cagr=0.0, calmar=None, all_orders_rejected=True, rejections='{"tier": 3}')]
    summary = safe_leverage_summary(rows)
    assert summary["best_cagr_leverage"] == 2 and summary["best_calmar_leverage"] == 1
    assert grid_boundary(rows)[0]["leverage"] == 2
    assert {"leverage": 125.0, "reason": "every order refused (tier)"} in summary["excluded"]
    assert summary["headline"] == ("Highest leverage without liquidation: 2x (in the grid). "
                                   "Best CAGR: 2x. At 5x and above: liquidated, first after "
                                   "2 days. Never traded (every order refused): 125x.")


def test_short_window_names_the_best_return_instead():
    rows = [row(1, cagr=None, cagr_reason="window shorter than 30 days", total_return=0.01),
            row(3, cagr=None, cagr_reason="window shorter than 30 days", total_return=0.03)]
    text = headline(safe_leverage_summary(rows), rows)
    assert "Best return: 3x (CAGR n/a: window shorter than 30 days)." in text


def test_duration_words():
    assert duration_words(2 * 86_400 + 5 * 3_600) == "2 days"
    assert duration_words(3_600) == "1 hour"
    assert duration_words(None) == "an unknown time"


@pytest.fixture
def path_csv(tmp_path):
    frame = falling_path()
    path = tmp_path / "path.csv"
    frame.reset_index(names="date").to_csv(path, index=False)
    return path


def sweep_argv(path_csv, out, *extra):
    return ["sweep", "--csv", str(path_csv), "--strategy", "buy_hold", "--commission", "0",
            "--mmr", str(MMR), "--leverage", "1,2,3,4,5", "--workers", "1", "--out", str(out),
            *extra]


def test_cli_sweep_writes_summary_json_and_refines(path_csv, tmp_path, capsys):
    from backtrader_leverage import cli as run_backtest
    out = tmp_path / "refined"
    assert run_backtest.main(sweep_argv(path_csv, out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_safe_leverage"] == 3.5 and summary["first_liquidated_leverage"] == 3.5625
    assert summary["max_safe_leverage_grid"] == 3.0
    assert summary["best_cagr_leverage"] is None                 # a 42-hour window: CAGR n/a
    # the path ends where it started: every safe leverage returns 0 %, a tie goes to the lowest
    assert summary["best_return_leverage"] == 1.0
    printed = capsys.readouterr().out
    assert ("refine: between 3x (no liquidation) and 4x (liquidated), 1 leverage(s) per round"
            in printed)
    assert summary["headline"] in printed


def test_cli_no_refine_and_carry_note(path_csv, tmp_path, capsys):
    from backtrader_leverage import cli as run_backtest
    out = tmp_path / "grid"
    assert run_backtest.main(sweep_argv(path_csv, out, "--no-refine",
                                        "--negative-balance", "carry")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_safe_leverage"] == 3.0 and summary["bisection"] == []
    (note,) = summary["notes"]           # the path never gaps: liquidations fill at the LP
    assert note.startswith("Negative balance 'carry': no deficit occurred")
    printed = capsys.readouterr().out
    assert "refine:" not in printed and note in printed


def test_several_leverages_per_round_shrink_the_bracket_faster():
    # the same path without backtests: liquidated once entry * (1 - 1/L) / (1 - mmr) >= 72
    boundary = 1 / (1 - (1 - FALL) * (1 - MMR))           # 3.526x
    asked = []

    def fake(leverage):
        return {"leverage": leverage, "liquidations": int(leverage > boundary), "error": None}

    def fake_many(leverages):
        asked.append(list(leverages))
        return [fake(leverage) for leverage in leverages]

    low, high, points = refine(3.0, 4.0, fake, run_many=fake_many, points_per_round=3)
    # round 1: 3.25, 3.5 safe, 3.75 liquidated -> [3.5, 3.75]; round 2: 3.5625, 3.625,
    # 3.6875 all liquidated -> [3.5, 3.5625], 0.0625 <= max(0.05, 0.02 x 3.5 = 0.07): done
    assert asked == [[3.25, 3.5, 3.75], [3.5625, 3.625, 3.6875]]
    assert (low, high) == (3.5, 3.5625) and len(points) == 6
    assert low <= boundary < high


def test_cli_refines_on_two_workers_to_the_same_answer(path_csv, tmp_path, capsys):
    from backtrader_leverage import cli as run_backtest
    out = tmp_path / "two"
    argv = sweep_argv(path_csv, out)
    argv[argv.index("--workers") + 1] = "2"
    assert run_backtest.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    # 2 per round: 3.333, 3.667 -> [3.333, 3.667]; 3.444, 3.556 -> [3.444, 3.556] (0.111 >
    # 0.069); 3.481, 3.519 safe -> [3.519, 3.556], 0.037 <= 0.07
    assert summary["max_safe_leverage"] == pytest.approx(3.5185, abs=1e-3)
    assert summary["max_safe_leverage"] <= 1 / (1 - (1 - FALL) * (1 - MMR)) < \
        summary["first_liquidated_leverage"]
    assert "2 leverage(s) per round" in capsys.readouterr().out
