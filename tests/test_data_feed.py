"""ArrayFeed: same results as bt.feeds.PandasData, timeframes, pickling, resampling."""
import pickle
from concurrent.futures import ProcessPoolExecutor

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from backtrader_leverage.data import ArrayFeed, bt_date_numbers, interval_to_timeframe, load_csv

BARS = 3000


@pytest.fixture(scope="module")
def hourly(shared_data) -> pd.DataFrame:
    # 2019-2020 stretch of the shared Binance 1h file (includes the March 2020 crash)
    frame = pd.read_csv(shared_data / "binance_BTCUSDT_1h.csv", index_col="date",
                        skiprows=range(1, 20_001), nrows=BARS)
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame


class SmaCrossover(bt.Strategy):
    params = dict(fast=10, slow=30)

    def __init__(self):
        self.crossover = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast),
                                          bt.ind.SMA(period=self.p.slow))
        self.filled = []

    def notify_order(self, order):
        if order.status == order.Completed:
            self.filled.append((order.executed.dt, order.executed.size, order.executed.price))

    def next(self):
        if self.crossover > 0:
            self.order_target_percent(target=0.95)
        elif self.crossover < 0:
            self.order_target_percent(target=-0.95)


def run_backtest(feeds, **cerebro_options):
    """Run SmaCrossover; return (filled orders, final portfolio value, bar datetimes seen)."""
    cerebro = bt.Cerebro(stdstats=False, **cerebro_options)
    cerebro.broker.setcash(100_000.0)
    for feed in feeds:
        cerebro.adddata(feed)
    cerebro.addstrategy(SmaCrossover)
    strategy = cerebro.run()[0]
    return strategy.filled, cerebro.broker.getvalue(), len(strategy)


def pandas_feed(frame, **options):
    return bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=60,
                               **options)


@pytest.mark.parametrize("cerebro_options", [
    {"runonce": True}, {"runonce": False}, {"preload": False, "runonce": False},
    {"exactbars": 1}], ids=["runonce", "next", "no-preload", "exactbars"])
def test_same_orders_and_value_as_pandas_data(hourly, cerebro_options):
    expected = run_backtest([pandas_feed(hourly)], **cerebro_options)
    actual = run_backtest([ArrayFeed(dataname=hourly)], **cerebro_options)
    assert expected[0], "the strategy must trade for the comparison to mean something"
    assert actual == expected


def test_fromdate_todate_match_pandas_data(hourly):
    window = dict(fromdate=hourly.index[500].to_pydatetime().replace(tzinfo=None),
                  todate=hourly.index[2500].to_pydatetime().replace(tzinfo=None))
    expected = run_backtest([pandas_feed(hourly, **window)])
    actual = run_backtest([ArrayFeed(dataname=hourly, **window)])
    assert actual == expected
    assert actual[2] == 2001  # bars 500..2500 inclusive


def test_resampledata_and_two_feeds_match_pandas_data(hourly):
    def run(feed_factory):
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.broker.setcash(100_000.0)
        cerebro.adddata(feed_factory())
        cerebro.resampledata(feed_factory(), timeframe=bt.TimeFrame.Days, compression=1)
        cerebro.addstrategy(SmaCrossover)
        strategy = cerebro.run()[0]
        daily = strategy.datas[1]
        return strategy.filled, cerebro.broker.getvalue(), list(daily.close.array)

    expected = run(lambda: pandas_feed(hourly))
    actual = run(lambda: ArrayFeed(dataname=hourly))
    assert actual == expected
    assert len(actual[2]) >= BARS // 24  # 3000 hourly bars ~ 125 days


def test_datetime_numbers_equal_bt_date2num_on_every_bar(shared_data):
    for name in ("binance_BTCUSDT_1h.csv", "binance_BTCUSDT_5m.csv"):
        frame = pd.read_csv(shared_data / name, index_col="date")
        index = pd.to_datetime(frame.index, utc=True)
        expected = np.array([bt.date2num(stamp) for stamp in
                             index.tz_convert(None).to_pydatetime()])
        assert np.array_equal(bt_date_numbers(index), expected), name


def test_datetime_numbers_outside_the_fast_range_fall_back_exactly():
    index = pd.DatetimeIndex(["1200-03-01 12:30", "2999-12-31 23:59:59.5"], tz="UTC")
    expected = [bt.date2num(stamp) for stamp in index.tz_convert(None).to_pydatetime()]
    assert bt_date_numbers(index).tolist() == expected


@pytest.mark.parametrize("interval, expected", [
    ("1m", (bt.TimeFrame.Minutes, 1)), ("5m", (bt.TimeFrame.Minutes, 5)),
    ("1h", (bt.TimeFrame.Minutes, 60)), ("4h", (bt.TimeFrame.Minutes, 240)),
    ("30s", (bt.TimeFrame.Seconds, 30)), ("1d", (bt.TimeFrame.Days, 1)),
    ("1wk", (bt.TimeFrame.Weeks, 1)), ("1mo", (bt.TimeFrame.Months, 1))])
def test_interval_to_timeframe(interval, expected):
    assert interval_to_timeframe(interval) == expected


def test_feed_infers_timeframe_from_the_frame(shared_data, hourly):
    feed = ArrayFeed(dataname=hourly)  # no attrs: median spacing 3600 s
    assert (feed.p.timeframe, feed.p.compression) == (bt.TimeFrame.Minutes, 60)
    daily = load_csv(shared_data / "yahoo_BTC-USD_1d.csv")  # attrs['interval'] == '1d'
    feed = ArrayFeed(dataname=daily)
    assert (feed.p.timeframe, feed.p.compression) == (bt.TimeFrame.Days, 1)
    feed = ArrayFeed(dataname=hourly, timeframe=bt.TimeFrame.Days)  # explicit wins
    assert (feed.p.timeframe, feed.p.compression) == (bt.TimeFrame.Days, 1)


def _run_pickled_feed(payload: bytes):
    return run_backtest([pickle.loads(payload)])


def test_feed_pickles_and_runs_in_a_worker_process(hourly):
    feed = ArrayFeed(dataname=hourly.iloc[:1000], name="btc")
    payload = pickle.dumps(feed)
    clone = pickle.loads(payload)
    assert clone.p.name == "btc" and clone.p.compression == 60
    with ProcessPoolExecutor(max_workers=1) as pool:
        in_worker = pool.submit(_run_pickled_feed, payload).result()
    assert in_worker == run_backtest([ArrayFeed(dataname=hourly.iloc[:1000])])


def test_feed_rejects_unsorted_frames(hourly):
    from backtrader_leverage.data import DataError
    with pytest.raises(DataError, match="strictly increasing"):
        ArrayFeed(dataname=hourly.iloc[::-1])


def _preloaded_lines(feed):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed)

    class Keep(bt.Strategy):
        def stop(self):
            self.lines_seen = {alias: list(getattr(self.data.lines, alias).array)
                               for alias in self.data.lines.getlinealiases()}

    cerebro.addstrategy(Keep)
    return cerebro.run()[0].lines_seen


def test_preload_in_small_chunks_gives_the_same_lines(hourly, monkeypatch):
    # the day numbers are made a chunk at a time (chunks of 7 rows here) straight into the
    # line; fromdate/todate cut rows 500..2500 as np.searchsorted on every row's number did
    from backtrader_leverage.data import feed as feed_module
    window = dict(fromdate=hourly.index[500].to_pydatetime().replace(tzinfo=None),
                  todate=hourly.index[2500].to_pydatetime().replace(tzinfo=None))
    expected_numbers = bt_date_numbers(hourly.index)[500:2501]
    whole = _preloaded_lines(ArrayFeed(dataname=hourly, **window))
    monkeypatch.setattr(feed_module, "_DAY_NUMBER_CHUNK", 7)
    chunked = _preloaded_lines(ArrayFeed(dataname=hourly, **window))
    assert chunked == whole
    assert np.array_equal(chunked["datetime"], expected_numbers)
    assert chunked["close"] == hourly["close"].iloc[500:2501].tolist()
    assert chunked["openinterest"] == [0.0] * 2001      # the frame has none: zeros


def test_checks_in_chunks_report_the_whole_frames_first_offence(hourly, monkeypatch):
    from backtrader_leverage.data import DataError
    from backtrader_leverage.data import feed as feed_module
    from backtrader_leverage.data.validate import validate_ohlcv
    bad = hourly.copy()
    bad.iloc[3, bad.columns.get_loc("high")] = np.inf     # chunk 1: an infinite high
    bad.iloc[12, bad.columns.get_loc("close")] = np.nan   # chunk 3: a NaN (reported first)
    with pytest.raises(DataError) as whole:
        validate_ohlcv(bad, "ArrayFeed")
    monkeypatch.setattr(feed_module, "_VALIDATE_CHUNK", 5)
    with pytest.raises(DataError) as chunked:
        ArrayFeed(dataname=bad)
    assert str(chunked.value) == str(whole.value) and "NaN in column 'close'" in str(whole.value)
    # a step back between two chunks (rows 9 and 10) is seen as well
    swapped = hourly.index.tolist()
    swapped[9], swapped[10] = swapped[10], swapped[9]
    with pytest.raises(DataError, match="strictly increasing"):
        ArrayFeed(dataname=hourly.set_axis(pd.DatetimeIndex(swapped)))


def test_an_absent_openinterest_reads_as_zeros_and_holds_no_array(hourly):
    # the frame has no openinterest: after preload the line is a ZeroColumn (no 8 B a bar),
    # read by index, slice, iteration and indicators as the array of zeros it stands for
    from backtrader_leverage.data.feed import ZeroColumn
    frame = hourly.iloc[:300]

    class Reads(bt.Strategy):
        def __init__(self):
            self.average = bt.ind.SMA(self.data.openinterest, period=3)   # runonce: .array[i]
            self.seen = []

        def next(self):
            line = self.data.lines.openinterest
            self.seen.append((self.data.openinterest[0], self.average[0], line.get(size=2)))
            if len(self) == 200:
                self.kind = type(line.array)
                self.data.openinterest[0] = 7.5     # a write: the zeros become an array first

        def stop(self):
            self.after = list(self.data.lines.openinterest.array)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ArrayFeed(dataname=frame))
    cerebro.addstrategy(Reads)
    strategy = cerebro.run()[0]
    assert strategy.kind is ZeroColumn
    assert strategy.seen[0][:2] == (0.0, 0.0) and strategy.seen[199][:2] == (0.0, 0.0)
    assert list(strategy.seen[150][2]) == [0.0, 0.0]
    assert strategy.after == [0.0] * 199 + [7.5] + [0.0] * 100

    column = ZeroColumn(None, 4)
    assert len(column) == 4 and column[3] == column[-4] == 0.0 and list(column) == [0.0] * 4
    assert column[1:3].tolist() == [0.0, 0.0] and column[5:].tolist() == []
    with pytest.raises(IndexError):
        column[4]
