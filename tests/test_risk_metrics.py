"""Pure risk metrics (analyzers/risk_metrics.py): hand-made curves and an empyrical cross-check.

Every expected value is written as arithmetic of the named constants of its test.
"""
import json
import math

import empyrical
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backtrader_leverage.analyzers import risk_metrics as rm

HOUR = 3600.0
DAY = 86_400.0
YEAR = 365 * DAY
T0 = 1_600_000_000.0 - (1_600_000_000.0 % DAY)  # 2020-09-13 00:00 UTC, a day boundary


def stamps(count, interval, first=T0):
    """``count`` observation stamps spaced ``interval`` seconds apart."""
    return first + interval * np.arange(count)


# -- small building blocks ------------------------------------------------------------

def test_median_interval_ignores_gaps_and_duplicates():
    # three 1 h steps and one 34 h exchange outage: the median step stays 1 h
    times = [0.0, HOUR, HOUR, 2 * HOUR, 3 * HOUR, 37 * HOUR]
    assert rm.median_interval(times) == HOUR
    assert rm.median_interval([5.0]) is None
    assert rm.periods_per_year(HOUR) == 365 * 24
    assert rm.periods_per_year(None) is None


def test_truncate_at_ruin_ends_series_at_first_non_positive_value():
    START, HALF, DEBT, LATER = 100.0, 50.0, -20.0, 30.0
    curve, ruin = rm.truncate_at_ruin([START, HALF, DEBT, LATER])
    assert ruin == 2
    assert curve.tolist() == [START, HALF, 0.0]
    assert rm.simple_returns(curve).tolist() == [HALF / START - 1, -1.0]
    untouched, none = rm.truncate_at_ruin([START, HALF])
    assert none is None and untouched.tolist() == [START, HALF]


def test_drawdown_with_known_depth_and_length():
    # 100 -> peak 110 -> 99 -> trough 88 -> back at 110 -> 121
    START, PEAK, DIP, TROUGH, HIGHER = 100.0, 110.0, 99.0, 88.0, 121.0
    equity = [START, PEAK, DIP, TROUGH, PEAK, HIGHER]
    times = stamps(len(equity), HOUR)
    details = rm.max_drawdown_details(equity)
    assert details["max_drawdown"] == pytest.approx(1 - TROUGH / PEAK)  # 0.2
    assert (details["peak_index"], details["trough_index"], details["recovery_index"]) == (1, 3, 4)
    assert rm.drawdown_series(equity) == pytest.approx([0, 0, 1 - DIP / PEAK, 1 - TROUGH / PEAK, 0, 0])
    # under water from the peak (obs 1) to the recovery (obs 4): 3 bars
    assert rm.longest_under_water(equity, times) == 3 * HOUR


def test_unrecovered_drawdown_lasts_to_the_end_and_picks_the_longest():
    START, DOWN, BACK, PEAK2, LOW2 = 100.0, 90.0, 100.0, 120.0, 60.0
    # short dip (1 bar under), recovery, new peak, then down for 3 bars to the end
    equity = [START, DOWN, BACK, PEAK2, LOW2, LOW2, LOW2]
    times = stamps(len(equity), HOUR)
    details = rm.max_drawdown_details(equity)
    assert details["max_drawdown"] == pytest.approx(1 - LOW2 / PEAK2)
    assert details["peak_index"] == 3 and details["trough_index"] == 4
    assert details["recovery_index"] is None
    assert rm.longest_under_water(equity, times) == (6 - 3) * HOUR
    END = times[-1] + 10 * HOUR
    assert rm.longest_under_water(equity, times, end_time=END) == END - times[3]


def test_sharpe_sortino_volatility_by_hand_on_daily_bars():
    UP, DOWN = 0.10, -0.05
    START = 100.0
    equity = [START, START * (1 + UP), START * (1 + UP) * (1 + DOWN)]
    returns = rm.simple_returns(equity)
    periods = rm.periods_per_year(DAY)  # 365
    mean = (UP + DOWN) / 2
    std = abs(UP - DOWN) / math.sqrt(2)  # sample std of two values
    downside = math.sqrt((0 + DOWN ** 2) / 2)
    assert rm.annual_volatility(returns, periods) == pytest.approx(std * math.sqrt(365))
    assert rm.sharpe_ratio(returns, periods) == pytest.approx(mean / std * math.sqrt(365))
    assert rm.sortino_ratio(returns, periods) == pytest.approx(mean * 365 / (downside * math.sqrt(365)))


def test_undefined_ratios_are_none():
    FLAT = [0.0, 0.0, 0.0]
    periods = rm.periods_per_year(HOUR)
    assert rm.sharpe_ratio(FLAT, periods) is None          # zero deviation
    assert rm.sortino_ratio([0.01, 0.02], periods) is None  # no downside
    assert rm.annual_volatility([0.01], periods) is None    # one return
    assert rm.annual_volatility(FLAT, periods) == 0.0       # defined: no movement
    assert rm.value_at_risk([], 0.05) is None
    assert rm.conditional_value_at_risk([], 0.05) is None
    assert rm.cagr(100.0, 200.0, None) is None
    assert rm.cagr(100.0, 1e300, 1 / 8760) is None          # overflows a float
    assert rm.calmar_ratio(0.5, 0.0) is None
    assert rm.calmar_ratio(-6.5e-13, 2.2e-16) is None       # a rounding-level "drawdown"


def test_cagr_and_calmar_by_hand():
    START, END = 100.0, 150.0
    BARS, INTERVAL = 730, DAY  # two 365-day years
    years = BARS * INTERVAL / YEAR
    growth = rm.cagr(START, END, years)
    assert growth == pytest.approx((END / START) ** (1 / 2) - 1)
    MAX_DD = 0.25
    assert rm.calmar_ratio(growth, MAX_DD) == pytest.approx(growth / MAX_DD)
    assert rm.cagr(START, -5.0, years) == -1.0


def test_var_and_cvar_by_hand():
    R = [-0.10, -0.05, 0.0, 0.05, 0.10]
    # 5th percentile, linear: position (5-1)*0.05 = 0.2 between -0.10 and -0.05
    assert rm.value_at_risk(R, 0.05) == pytest.approx(-0.10 + 0.2 * (-0.05 - -0.10))
    # tail of int((5-1)*0.05) + 1 = 1 value
    assert rm.conditional_value_at_risk(R, 0.05) == pytest.approx(-0.10)
    many = np.linspace(-0.5, 0.5, 101)  # 101 values: tail int(100*0.05)+1 = 6 lowest
    assert rm.conditional_value_at_risk(many, 0.05) == pytest.approx(np.mean(many[:6]))


def test_daily_resample_takes_last_value_of_each_utc_day():
    START = 1000.0
    DAY1_LAST, DAY2_LAST = 1100.0, 990.0
    # hourly bars 22:00, 23:00 of day 1 then 00:00, 01:00 of day 2
    times = [T0 + 21 * HOUR, T0 + 22 * HOUR, T0 + 23 * HOUR, T0 + DAY, T0 + DAY + HOUR]
    equity = [START, 1050.0, DAY1_LAST, 1000.0, DAY2_LAST]
    daily = rm.daily_returns(equity, times, HOUR)
    assert daily == pytest.approx([DAY1_LAST / START - 1, DAY2_LAST / DAY1_LAST - 1])
    # daily bars are used as they are
    assert rm.daily_returns(equity, stamps(5, DAY), DAY) == pytest.approx(rm.simple_returns(equity))


# -- the whole summary ------------------------------------------------------------------

def test_summary_of_a_ruined_carry_account():
    START, HALF, DEBT, LATER = 1000.0, 500.0, -200.0, -150.0
    equity = [START, HALF, DEBT, LATER]
    times = stamps(len(equity), HOUR)
    s = rm.risk_summary(equity, times, HOUR)
    assert s["ruined"] is True
    assert s["max_drawdown"] == 1.0
    assert s["cagr"] == -1.0
    assert s["calmar"] == -1.0 / 1.0
    assert s["total_return"] == pytest.approx(LATER / START - 1)  # -1.15, below -1
    assert s["bankrupt_dt"] == rm.iso_utc(times[2])
    # 500 is not below 10 % of 1000; the debt bar is the first one below it
    assert s["ruin_dt"] == rm.iso_utc(times[2])
    json.dumps(s)


def test_summary_takes_the_stamps_as_a_function_called_once():
    # RiskAnalyzer passes a function, so the stamps are made after the bar returns
    # are done with (a lower memory peak); the figures are the same as with the array
    equity = [1000.0, 1100.0, 990.0, -20.0, 1200.0]
    times = stamps(len(equity), HOUR)
    calls = []
    lazy = rm.risk_summary(equity, lambda: calls.append(1) or times, HOUR)
    assert lazy == rm.risk_summary(equity, times, HOUR) and calls == [1]


def test_ruin_threshold_and_bankruptcy_are_separate():
    START, MID, LOW, BUST = 1000.0, 500.0, 50.0, 0.0
    THRESHOLD = 0.10
    times = stamps(4, HOUR)
    s = rm.risk_summary([START, MID, LOW, BUST], times, HOUR, ruin_threshold=THRESHOLD)
    assert LOW < THRESHOLD * START
    assert s["ruin_dt"] == rm.iso_utc(times[2])       # first value below 100
    assert s["bankrupt_dt"] == rm.iso_utc(times[3])   # first value <= 0
    safe = rm.risk_summary([START, START * 0.95, START], stamps(3, HOUR), HOUR)
    assert safe["ruined"] is False and safe["ruin_dt"] is None and safe["bankrupt_dt"] is None


def test_zero_bar_summary_has_every_key_and_no_nan():
    START = 10_000.0
    s = rm.risk_summary([START], [math.nan], None)
    text = json.dumps(s, allow_nan=False)
    assert s["total_return"] == 0.0 and s["bars"] == 0 and s["max_drawdown"] == 0.0
    for key in ("cagr", "volatility", "sharpe", "sortino", "calmar", "var_95", "cvar_95",
                "var_99", "cvar_99", "max_drawdown_start", "bar_interval"):
        assert s[key] is None, key
    assert '"ruined": false' in text


# -- cross-check against empyrical-reloaded on ordinary curves ---------------------------

def _empyrical_reference(equity, periods):
    returns = np.asarray(rm.simple_returns(equity))
    return {
        "volatility": empyrical.annual_volatility(returns, annualization=periods),
        "sharpe": empyrical.sharpe_ratio(returns, annualization=periods),
        "sortino": empyrical.sortino_ratio(returns, annualization=periods),
        "cagr": empyrical.annual_return(returns, annualization=periods),
        "calmar": empyrical.calmar_ratio(returns, annualization=periods),
        "max_drawdown": -empyrical.max_drawdown(returns),  # empyrical's is negative
    }


@pytest.mark.parametrize("interval", [HOUR, DAY])
def test_matches_empyrical_on_a_random_walk(interval):
    rng = np.random.default_rng(7)
    BARS, START = 2000, 10_000.0
    equity = START * np.cumprod(np.concatenate(([1.0], 1 + rng.normal(0.0002, 0.01, BARS))))
    times = stamps(BARS + 1, interval)
    ours = rm.risk_summary(equity, times, interval)
    periods = YEAR / interval
    for key, expected in _empyrical_reference(equity, periods).items():
        assert ours[key] == pytest.approx(expected, rel=1e-9), key
    daily = rm.daily_returns(equity, times, interval)
    for suffix, cutoff in rm.VAR_CUTOFFS.items():
        assert ours["var_" + suffix] == pytest.approx(empyrical.value_at_risk(daily, cutoff))
        assert ours["cvar_" + suffix] == pytest.approx(
            empyrical.conditional_value_at_risk(daily, cutoff))


@given(st.lists(st.floats(min_value=-0.5, max_value=0.5, allow_nan=False), min_size=3, max_size=60))
def test_matches_empyrical_on_any_positive_curve(returns):
    START, PERIODS = 1000.0, 365.0 * 24
    equity = START * np.cumprod(np.concatenate(([1.0], 1 + np.asarray(returns))))
    ours = rm.risk_summary(equity, stamps(equity.size, HOUR), HOUR)
    with np.errstate(over="ignore"):  # empyrical's CAGR overflows to inf where ours is None
        reference = _empyrical_reference(equity, PERIODS)
    for key in ("volatility", "max_drawdown"):
        assert ours[key] == pytest.approx(reference[key], rel=1e-9, abs=1e-12), key
    for key in ("sharpe", "sortino", "cagr", "calmar"):
        expected = reference[key]
        if key == "calmar" and ours["max_drawdown"] <= rm.NOISE_DRAWDOWN:
            assert ours[key] is None   # a drawdown of a few ulps is no drawdown
            continue
        if ours[key] is None:  # undefined here: empyrical gives nan/inf or 0-deviation
            assert not np.isfinite(expected), key
        else:
            assert ours[key] == pytest.approx(expected, rel=1e-7, abs=1e-9), key
