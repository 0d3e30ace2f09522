"""RiskAnalyzer on real data with a plain BackBroker, cross-checked against empyrical-reloaded.

The interval must come from the timestamps (PandasData calls hourly data daily by default), the
year has 365 days, and VaR/CVaR use daily returns (pandas' own day resampling as the reference).
"""
import backtrader as bt
import empyrical
import numpy as np
import pandas as pd
import pytest

from backtrader_leverage.analyzers import RiskAnalyzer

HOUR, DAY = 3600.0, 86_400.0
YEAR = 365 * DAY
CASH = 10_000.0
UNITS = 0.1  # BTC bought at the second bar's open and held


class BuyAndHold(bt.Strategy):
    def next(self):
        if len(self) == 1:
            self.buy(size=UNITS)


def _run(frame, **feed_kwargs):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, **feed_kwargs))  # timeframe left as declared
    cerebro.broker.setcash(CASH)
    cerebro.addstrategy(BuyAndHold)
    cerebro.addanalyzer(RiskAnalyzer, _name="risk")
    return cerebro.run()[0].analyzers.risk


def _check_against_empyrical(risk, interval, daily_reference):
    result = risk.get_analysis()
    series = risk.series()
    equity = np.concatenate(([CASH], series["equity"]))
    returns = equity[1:] / equity[:-1] - 1
    periods = YEAR / interval
    assert result["bar_interval"] == interval and result["periods_per_year"] == periods
    assert result["volatility"] == pytest.approx(empyrical.annual_volatility(returns, annualization=periods))
    assert result["sharpe"] == pytest.approx(empyrical.sharpe_ratio(returns, annualization=periods))
    assert result["sortino"] == pytest.approx(empyrical.sortino_ratio(returns, annualization=periods))
    assert result["cagr"] == pytest.approx(empyrical.annual_return(returns, annualization=periods))
    assert result["calmar"] == pytest.approx(empyrical.calmar_ratio(returns, annualization=periods))
    assert result["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(returns))
    for suffix, cutoff in (("95", 0.05), ("99", 0.01)):
        assert result["var_" + suffix] == pytest.approx(empyrical.value_at_risk(daily_reference, cutoff))
        assert result["cvar_" + suffix] == pytest.approx(
            empyrical.conditional_value_at_risk(daily_reference, cutoff))
    assert result["total_return"] == pytest.approx(equity[-1] / CASH - 1)
    assert result["exposure_fraction"] == pytest.approx((len(returns) - 1) / len(returns))  # bar 0 flat


def test_hourly_bars_declared_daily(shared_data):
    frame = pd.read_csv(shared_data / "binance_BTCUSDT_1h.csv", index_col="date")
    frame.index = pd.to_datetime(frame.index, utc=True)
    frame = frame.loc["2020-02-01":"2020-04-30"]          # through the March 2020 crash
    risk = _run(frame)                                     # PandasData's default: TimeFrame.Days
    series = risk.series()
    # reference daily returns: pandas' last value of each UTC day, the start cash before them
    equity = pd.Series(series["equity"], index=pd.DatetimeIndex(series["time"]))
    daily = pd.concat([pd.Series([CASH]), equity.resample("D").last().dropna()], ignore_index=True)
    _check_against_empyrical(risk, HOUR, daily.pct_change().dropna().to_numpy())
    assert risk.get_analysis()["bars"] == len(frame)


def test_daily_bars_use_bar_returns(shared_data):
    frame = pd.read_csv(shared_data / "yahoo_BTC-USD_1d.csv", index_col="Date", parse_dates=True)
    frame = frame.loc["2020-01-01":"2021-12-31"].rename(columns=str.lower)
    frame.index = frame.index.tz_localize("UTC")
    risk = _run(frame, close="close", volume="volume")
    equity = np.concatenate(([CASH], risk.series()["equity"]))
    _check_against_empyrical(risk, DAY, equity[1:] / equity[:-1] - 1)
    result = risk.get_analysis()
    assert result["years"] == pytest.approx(len(frame) * DAY / YEAR)
