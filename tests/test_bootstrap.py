"""The stationary block bootstrap of bars: statistics of the paths against the real data."""
import warnings

import numpy as np
import pytest

from backtrader_leverage.backtest.bootstrap import (BarBootstrap, mean_block_bars,
                                                    path_generator, stationary_indices)
from backtrader_leverage.data import load_csv

PATHS = 200
MEAN_BLOCK = 24.0                 # bars (24 h of 1 h bars)
# Tolerances over 200 paths of ~2,000 bars (~440,000 resampled returns):
# the pooled mean of the path returns is within 1 % of one bar's standard deviation of the
# data's mean (its standard error is ~0.15 % of it; 1 % is ~6 standard errors), the pooled
# standard deviation within 1 % of the data's, and each quantile of the wick ratios
# high/close and low/close within 0.001 (0.1 % of the price) of the data's.
MEAN_TOLERANCE_IN_SIGMAS = 0.01
VOLATILITY_RELATIVE_TOLERANCE = 0.01
WICK_QUANTILE_TOLERANCE = 0.001
WICK_QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99)


@pytest.fixture(scope="module")
def frame(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the file's exchange-outage gaps, reported
        full = load_csv(shared_data / "binance_um_BTCUSDT_1h.csv")
    return full.loc["2021-01-01":"2021-03-31"]          # 2,160 hourly bars, a volatile quarter


@pytest.fixture(scope="module")
def drawn(frame):
    bootstrap = BarBootstrap.from_arrays(frame["open"], frame["high"], frame["low"],
                                         frame["close"], frame["volume"],
                                         mean_block=MEAN_BLOCK)
    return [bootstrap.draw(path_generator(seed=11, path_number=k)) for k in range(PATHS)]


def test_paths_reproduce_mean_and_volatility_of_log_returns(frame, drawn):
    data_returns = np.diff(np.log(frame["close"].to_numpy()))
    path_returns = np.concatenate([np.diff(np.log(path["close"])) for path in drawn])
    sigma = data_returns.std()
    assert abs(path_returns.mean() - data_returns.mean()) <= MEAN_TOLERANCE_IN_SIGMAS * sigma
    assert path_returns.std() == pytest.approx(sigma, rel=VOLATILITY_RELATIVE_TOLERANCE)


def test_paths_keep_the_wick_distribution(frame, drawn):
    for column in ("high", "low"):
        data_ratio = (frame[column] / frame["close"]).to_numpy()
        path_ratio = np.concatenate([path[column] / path["close"] for path in drawn])
        expected = np.quantile(data_ratio, WICK_QUANTILES)
        got = np.quantile(path_ratio, WICK_QUANTILES)
        assert np.all(np.abs(got - expected) <= WICK_QUANTILE_TOLERANCE), (column, got, expected)


def test_paths_are_valid_bars_that_start_at_the_first_real_close(frame, drawn):
    first = frame.iloc[0]
    for path in drawn[:20]:
        assert len(path["close"]) == len(frame)
        assert path["close"][0] == first["close"] and path["open"][0] == first["open"]
        assert np.all(path["high"] >= np.maximum(path["open"], path["close"]))
        assert np.all(path["low"] <= np.minimum(path["open"], path["close"]))
        assert np.all(path["low"] > 0)


def test_a_path_depends_only_on_seed_and_number(frame):
    bootstrap = BarBootstrap.from_arrays(frame["open"], frame["high"], frame["low"],
                                         frame["close"], frame["volume"], mean_block=MEAN_BLOCK)
    spawned = np.random.SeedSequence(5).spawn(4)[3]
    direct = bootstrap.draw(path_generator(5, 3))
    again = bootstrap.draw(np.random.default_rng(spawned))
    for key in direct:
        np.testing.assert_array_equal(direct[key], again[key])
    other = bootstrap.draw(path_generator(5, 2))
    assert not np.array_equal(direct["close"], other["close"])


def test_blocks_run_on_and_their_mean_length_is_the_asked_one():
    generator = np.random.default_rng(3)
    count, length, mean_block = 1000, 200_000, 24.0
    picks = stationary_indices(generator, count, length, mean_block)
    assert picks.min() >= 0 and picks.max() < count
    continues = picks[1:] == (picks[:-1] + 1) % count
    # a block ends where the next index is not the successor: mean block = length / blocks
    blocks = 1 + np.count_nonzero(~continues)
    assert length / blocks == pytest.approx(mean_block, rel=0.05)


def test_block_hours_become_bars_by_the_interval():
    assert mean_block_bars(24, 3600) == 24.0          # 24 h / 1 h
    assert mean_block_bars(24, 300) == 288.0          # 24 h / 5 min = 24 * 12
    assert mean_block_bars(24, 86_400) == 1.0         # one daily bar
    assert mean_block_bars(6, 86_400) == 1.0          # never below one bar
    with pytest.raises(ValueError):
        mean_block_bars(0, 3600)
