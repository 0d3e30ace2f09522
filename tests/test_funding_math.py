"""Funding math of broker.margin, checked against hand-computed values."""
import math
from datetime import datetime, timezone

import pandas as pd
import pytest

from backtrader_leverage.broker import margin as mm

LONG, SHORT = 1, -1
SIZE = 1.0          # BTC
MARK = 100.0        # quote per BTC
RATE = 0.0001       # per 8 h


def seconds(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def test_long_pays_and_short_receives_a_positive_rate():
    # amount = -side * size * mark * rate = -1 * 1 * 100 * 0.0001 = -0.01 (paid)
    assert mm.funding_payment(LONG, SIZE, MARK, RATE) == pytest.approx(-0.01)
    assert mm.funding_payment(SHORT, SIZE, MARK, RATE) == pytest.approx(+0.01)


def test_negative_rate_reverses_the_flow():
    # 0.5 BTC short marked at 30000, rate -0.003 (2020-03-13 08:00): -(-1) * 0.5 * 30000 * -0.003 = -45
    assert mm.funding_payment(SHORT, 0.5, 30_000.0, -0.003) == pytest.approx(-45.0)
    assert mm.funding_payment(LONG, 0.5, 30_000.0, -0.003) == pytest.approx(+45.0)


def test_flat_pays_nothing_and_bad_inputs_are_refused():
    assert mm.funding_payment(LONG, 0.0, MARK, RATE) == 0.0
    with pytest.raises(ValueError, match="side"):
        mm.funding_payment(0, SIZE, MARK, RATE)
    with pytest.raises(ValueError, match="size"):
        mm.funding_payment(LONG, -1.0, MARK, RATE)


def test_hourly_bars_hold_a_funding_time_only_at_00_08_16():
    # one day of hourly bars [00:00, 24:00): funding at 00:00, 08:00 and 16:00
    day = seconds("2024-01-01T00:00:00")
    times = [t for hour in range(24)
             for t in mm.funding_times(day + 3600 * hour, day + 3600 * (hour + 1))]
    assert times == [day, day + 8 * 3600, day + 16 * 3600]
    assert mm.funding_times(seconds("2024-01-01T09:00:00"), seconds("2024-01-01T10:00:00")) == []


def test_a_daily_bar_holds_three_funding_times():
    day = seconds("2024-01-01T00:00:00")
    assert mm.funding_times(day, day + 86_400) == [day, day + 28_800, day + 57_600]


def test_a_4h_interval_and_a_start_between_funding_times():
    # [03:00, 13:00) with 4 h funding: 04:00, 08:00, 12:00
    start, end = seconds("2024-01-01T03:00:00"), seconds("2024-01-01T13:00:00")
    day = seconds("2024-01-01T00:00:00")
    assert mm.funding_times(start, end, 4) == [day + 4 * 3600, day + 8 * 3600, day + 12 * 3600]
    with pytest.raises(ValueError, match="interval"):
        mm.funding_times(start, end, 0)


def test_a_year_of_the_typical_rate_costs_about_11_percent_of_notional():
    # 3 payments a day x 365 days x 0.0001 = 0.1095 of notional (the "about 11 %")
    year = sum(mm.funding_payment(LONG, SIZE, MARK, RATE) for _ in range(3 * 365))
    assert year == pytest.approx(-0.1095 * SIZE * MARK)


def test_first_time_from_is_the_next_funding_time_and_agrees_with_between():
    from backtrader_leverage.broker.perpetual import FundingSchedule
    # constant 8 h grid: times at multiples of 28,800 s since the epoch
    grid = FundingSchedule.constant(0.0001, 8)
    assert grid.first_time_from(1) == 28_800
    assert grid.first_time_from(28_800) == 28_800          # a time at start counts
    assert grid.first_time_from(28_801) == 57_600
    # a series: its own times 100 s and 200 s (asked out of order to test the cache)
    series = FundingSchedule.from_series(
        pd.Series([0.0001, -0.0002], index=pd.to_datetime([100, 200], unit="s", utc=True)), 8)
    assert series.first_time_from(50) == 100
    assert series.first_time_from(100) == 100
    assert series.first_time_from(150) == 200
    assert series.first_time_from(60) == 100
    assert series.first_time_from(201) == math.inf
    # between(start, end) is empty exactly when end <= first_time_from(start)
    for schedule in (grid, series):
        for start in range(0, 60_000, 97):
            for end in (start + 1, start + 150, start + 3_600, start + 30_000):
                assert (not schedule.between(start, end)) == (end <= schedule.first_time_from(start))


def test_payment_due_is_a_funding_time_in_the_window_or_a_window_outside_the_series():
    from backtrader_leverage.broker.perpetual import FundingSchedule
    grid = FundingSchedule.constant(0.0001, 8)
    assert grid.payment_due(0, 3_600)                      # the hour from 00:00 holds 00:00
    assert not grid.payment_due(3_600, 7_200)              # 01:00-02:00: none
    assert grid.payment_due(28_799, 28_801)                # 08:00 inside
    assert not grid.payment_due(28_800, 28_800)            # an empty window: nothing
    # the series' times 100 s and 200 s cover [100 - 8 h, 200 + 8 h]: outside it -> due
    # (the broker warns there), inside it only where a time falls in the window
    series = FundingSchedule.from_series(
        pd.Series([0.0001, -0.0002], index=pd.to_datetime([100, 200], unit="s", utc=True)), 8)
    assert series.payment_due(50, 150) and not series.payment_due(101, 200)
    assert series.payment_due(200 + 28_800 + 1, 200 + 28_800 + 60)    # past the cover
    assert not series.payment_due(300, 400)                # covered, no time in it
    for schedule in (grid, series):
        for start in range(0, 60_000, 97):
            for end in (start, start + 1, start + 150, start + 3_600, start + 30_000):
                expected = end > start and (not schedule.covers(start, end) or
                                            bool(schedule.between(start, end)))
                assert schedule.payment_due(start, end) == expected


def test_quiet_until_bounds_the_windows_without_work():
    from backtrader_leverage.broker.perpetual import FundingSchedule
    grid = FundingSchedule.constant(0.0001, 8)
    # from 01:00 the next funding time is 08:00 (28,800 s): windows inside [01:00, 08:00) are quiet
    assert grid.quiet_until(3_600) == 28_800
    assert grid.quiet_until(28_800) == 28_800              # at a funding time: nothing is quiet
    # a series at 100 s and 200 s covers [100 - 28,800, 200 + 28,800]
    series = FundingSchedule.from_series(
        pd.Series([0.0001, -0.0002], index=pd.to_datetime([100, 200], unit="s", utc=True)), 8)
    assert series.quiet_until(150) == 200
    assert series.quiet_until(201) == 200 + 28_800           # after the last time: the cover's end
    assert series.quiet_until(100 - 28_801) == -math.inf     # before the data: the warning is due
    # the bound holds: no window [s, e) with start <= s < e <= quiet_until(start) has work
    for schedule in (grid, series):
        for start in range(-40_000, 60_000, 331):
            quiet = schedule.quiet_until(start)
            for s in (start, start + 7, start + 999):
                for e in (s + 1, s + 60, s + 3_600, quiet):
                    if s < e <= quiet:
                        assert not schedule.payment_due(s, e)
