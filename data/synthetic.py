"""A synthetic crypto-like OHLCV series for offline demos and tests.

Model (per bar ``t``, log returns):

* volatility clustering: GARCH(1,1) variance
  ``variance[t] = omega + alpha * shock[t-1]**2 + beta * variance[t-1]`` with
  ``alpha = 0.08``, ``beta = 0.90`` and ``omega`` set so that the long-run
  variance equals ``annual_volatility**2 * bar_seconds / SECONDS_PER_YEAR``;
* no drift in the median: each bar's mean log return is ``variance / 2``;
* fat tails: Student-t innovations with 4 degrees of freedom, scaled to unit
  variance;
* one crash: starting at 60 % of the series, the price falls by
  ``CRASH_DROP`` (35 %) over ``CRASH_HOURS`` (6 h, at least one bar), then
  variance jumps to 9x its long-run level and decays back.

Opens equal the previous close; highs and lows extend the open-close body by
half-normal amounts scaled by the bar's volatility.  The same seed always
gives the same frame.  ``frame.attrs['synthetic']`` is True and the symbol is
``SYNTHETIC-<symbol>`` so the series is labelled wherever it is shown.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataError
from .frames import finalize_frame
from .intervals import interval_seconds

SECONDS_PER_YEAR = 365 * 86400  # crypto trades every day
GARCH_ALPHA = 0.08
GARCH_BETA = 0.90
STUDENT_T_DEGREES = 4.0
CRASH_DROP = 0.35          # fraction of the price lost in the crash
CRASH_HOURS = 6.0          # duration of the crash
CRASH_POSITION = 0.6       # where the crash starts, as a fraction of the bars
POST_CRASH_VARIANCE_MULTIPLE = 9.0
DEFAULT_BARS = 8760        # one year of hourly bars
DEFAULT_SEED = 20220509
SYNTHETIC_PREFIX = "SYNTHETIC-"


def synthetic_ohlcv(bars: int = DEFAULT_BARS, interval: str = "1h", seed: int = DEFAULT_SEED,
                    *, start="2022-01-01", start_price: float = 30_000.0,
                    annual_volatility: float = 0.65, symbol: str = "BTC-USD") -> pd.DataFrame:
    """Generate ``bars`` bars of synthetic OHLCV (prices in quote currency, volume in base units).

    ``start`` is the first bar's open time (UTC); ``annual_volatility`` is the
    long-run standard deviation of yearly log returns (0.65 = 65 %).
    Returns the standard frame with ``attrs['synthetic'] = True``,
    ``attrs['symbol'] = 'SYNTHETIC-' + symbol``, ``attrs['seed']`` and
    ``attrs['crash_start']`` (ISO-8601 time of the first crash bar).
    """
    bar_seconds = interval_seconds(interval)
    if bar_seconds is None:
        raise DataError(f"synthetic data needs a fixed interval, not {interval!r}")
    if bars < 2:
        raise DataError(f"synthetic data needs at least 2 bars, got {bars}")
    rng = np.random.default_rng(seed)
    long_run_variance = annual_volatility ** 2 * bar_seconds / SECONDS_PER_YEAR
    crash_start = int(bars * CRASH_POSITION)
    crash_bars = max(1, int(round(CRASH_HOURS * 3600 / bar_seconds)))
    crash_bars = min(crash_bars, bars - crash_start)

    t_draws = rng.standard_t(STUDENT_T_DEGREES, size=bars)
    innovations = t_draws / np.sqrt(STUDENT_T_DEGREES / (STUDENT_T_DEGREES - 2.0))
    log_returns, volatility = _garch_returns(innovations, long_run_variance, crash_start,
                                             crash_bars)

    close = start_price * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate(([start_price], close[:-1]))
    wick_up = np.abs(rng.standard_normal(bars)) * 0.5 * volatility
    wick_down = np.abs(rng.standard_normal(bars)) * 0.5 * volatility
    high = np.maximum(open_, close) * np.exp(wick_up)
    low = np.minimum(open_, close) * np.exp(-wick_down)
    base_volume = 1_000.0 * bar_seconds / 3600
    volume = base_volume * np.exp(0.3 * rng.standard_normal(bars)) * (
        volatility / np.sqrt(long_run_variance))

    first_open = pd.Timestamp(start)
    first_open = (first_open.tz_localize("UTC") if first_open.tz is None
                  else first_open.tz_convert("UTC"))
    index = pd.date_range(first_open, periods=bars,
                          freq=pd.Timedelta(seconds=bar_seconds), name="datetime")
    frame = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                          "volume": volume}, index=index)
    label = f"{SYNTHETIC_PREFIX}{symbol}"
    result = finalize_frame(frame, symbol=label, source="synthetic", label=f"synthetic {label}",
                            interval=interval, synthetic=True)
    result.attrs["seed"] = int(seed)
    result.attrs["crash_start"] = index[crash_start].isoformat()
    return result


def _garch_returns(innovations: np.ndarray, long_run_variance: float, crash_start: int,
                   crash_bars: int) -> tuple[np.ndarray, np.ndarray]:
    """Log returns and per-bar volatility of the GARCH(1,1) path with the crash inserted."""
    omega = long_run_variance * (1.0 - GARCH_ALPHA - GARCH_BETA)
    crash_log_return = np.log(1.0 - CRASH_DROP) / crash_bars
    bars = innovations.size
    log_returns = np.empty(bars)
    volatility = np.empty(bars)
    variance = long_run_variance
    previous_shock = 0.0
    for bar in range(bars):
        variance = omega + GARCH_ALPHA * previous_shock ** 2 + GARCH_BETA * variance
        if bar == crash_start + crash_bars:
            variance = POST_CRASH_VARIANCE_MULTIPLE * long_run_variance
        sigma = variance ** 0.5
        shock = sigma * innovations[bar]
        # + variance / 2 cancels the volatility drag: the median price stays level.
        if crash_start <= bar < crash_start + crash_bars:
            log_returns[bar] = crash_log_return + 0.2 * shock
        else:
            log_returns[bar] = 0.5 * variance + shock
        volatility[bar] = sigma
        previous_shock = shock
    return log_returns, volatility
