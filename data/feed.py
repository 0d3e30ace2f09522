"""ArrayFeed: a backtrader data feed over numpy arrays that preloads in bulk.

``bt.feeds.PandasData`` loads one bar at a time, reading each value through
``DataFrame.iloc``.  ``ArrayFeed`` converts the frame once to float64 arrays
and, when backtrader preloads (the default), appends each whole array to its
line buffer in one call.  When bulk loading would change behaviour (filters
such as ``cerebro.resampledata``, ``tzinput``, ``exactbars`` memory saving, or
``preload=False``) it falls back to a per-bar ``_load`` over the same arrays,
so every cerebro mode keeps working.

The datetime line holds backtrader's float day numbers of the naive UTC
timestamps, bit-for-bit equal to ``bt.date2num``.

Pickling stores the input frame and the parameters (not run state), so a feed
can be sent to ``ProcessPoolExecutor`` workers and run there.
"""
from __future__ import annotations

import array
import bisect
import datetime as dt
from collections.abc import Sequence

import backtrader as bt
import numpy as np
import pandas as pd

from .errors import DataError
from .intervals import infer_interval_seconds, interval_to_timeframe, seconds_to_interval
from .validate import OHLCV_COLUMNS, validate_ohlcv

# date(1970, 1, 1).toordinal(): backtrader day numbers are proleptic ordinals.
UNIX_EPOCH_ORDINAL = 719163
MICROSECONDS_PER_DAY = 86_400_000_000
# Ordinals in [2**19, 2**20) (years 1436-2871) share one float64 binade, where
# a day number is ordinal + a multiple of 2**-33: exact for the lookup below.
_BINADE_LOW, _BINADE_HIGH = 2 ** 19, 2 ** 20
_REFERENCE_ORDINAL = dt.date(2000, 1, 1).toordinal()

_ONE_ZERO = (0.0,)     # the seed of an exact-size line array (see ArrayFeed.preload)
_DAY_NUMBER_CHUNK = 1 << 16     # rows a chunk when ArrayFeed.preload makes the day numbers
_VALIDATE_CHUNK = 1 << 16       # rows a chunk when ArrayFeed checks its frame

FEED_COLUMNS = ("open", "high", "low", "close", "volume", "openinterest")


def bt_date_numbers(index: pd.DatetimeIndex) -> np.ndarray:
    """backtrader float day numbers (``bt.date2num``) of UTC timestamps, vectorised.

    Units: days since 0001-01-01 (ordinal 1) plus the fraction of the day.
    Exactly equal to ``bt.date2num(ts.to_pydatetime())`` on the naive UTC time:
    the fraction depends only on the time of day, so it is computed with
    ``bt.date2num`` once per distinct time of day (24 for hourly bars) and added
    to the integer ordinal, which is exact within the binade noted above.
    Sub-microsecond parts are dropped, as ``to_pydatetime`` does.
    """
    if len(index) == 0:
        return np.empty(0, dtype=np.float64)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    microseconds = index.as_unit("us").asi8
    days, time_of_day_us = np.divmod(microseconds, MICROSECONDS_PER_DAY)
    ordinals = days + UNIX_EPOCH_ORDINAL
    if ordinals.min() < _BINADE_LOW or ordinals.max() >= _BINADE_HIGH:
        return np.array([bt.date2num(stamp) for stamp in index.to_pydatetime()],
                        dtype=np.float64)
    distinct_times, positions = np.unique(time_of_day_us, return_inverse=True)
    reference_day = dt.datetime.fromordinal(_REFERENCE_ORDINAL)
    fractions = np.array(
        [bt.date2num(reference_day + dt.timedelta(microseconds=int(us))) - _REFERENCE_ORDINAL
         for us in distinct_times], dtype=np.float64)
    return ordinals.astype(np.float64) + fractions[positions]


def _column_arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """float64 arrays of the feed columns (case-insensitive); an absent openinterest is left out.

    (``ArrayFeed._columns`` makes its zeros when they are needed.)
    """
    by_lower_name = {str(column).lower(): column for column in frame.columns}
    arrays = {}
    for name in FEED_COLUMNS:
        if name in by_lower_name:
            arrays[name] = np.ascontiguousarray(
                frame[by_lower_name[name]].to_numpy(dtype=np.float64, na_value=np.nan))
        elif name != "openinterest":
            raise DataError(f"ArrayFeed: frame has no '{name}' column "
                            f"(found: {', '.join(map(str, frame.columns))})")
    return arrays


def _validate_arrays(arrays: dict[str, np.ndarray], index: pd.DatetimeIndex) -> None:
    """The loaders' rules (finite, prices > 0, high/low around the body): one DataError.

    Checked ``_VALIDATE_CHUNK`` rows at a time (each chunk with the row
    before it, for the order rule): the rules' masks and bodies of every bar
    were whole-column temporaries, freed before the run into the C heap
    (+28 MiB of peak RSS at 2M bars, issue 15). On a failure the whole frame
    is checked again, so the message names the same first offence as before.
    """
    count = len(index)
    try:
        for start in range(0, count, _VALIDATE_CHUNK):
            _validate_rows(arrays, index, max(start - 1, 0), min(start + _VALIDATE_CHUNK, count))
    except DataError:
        _validate_rows(arrays, index, 0, count)
        raise
    if not count:
        _validate_rows(arrays, index, 0, 0)     # no rows: its own message


def _validate_rows(arrays: dict[str, np.ndarray], index: pd.DatetimeIndex, start: int,
                   stop: int) -> None:
    """``validate_ohlcv`` of rows [start, stop) (views of the arrays, a UTC index)."""
    rows = index[start:stop]
    utc_index = rows.tz_localize("UTC") if rows.tz is None else rows.tz_convert("UTC")
    view = pd.DataFrame({column: arrays[column][start:stop] for column in OHLCV_COLUMNS},
                        index=utc_index, copy=False)
    validate_ohlcv(view, "ArrayFeed")


def _strictly_increasing(stamps: np.ndarray) -> bool:
    """Every stamp above the one before (compared a chunk at a time: no diff array)."""
    for start in range(1, len(stamps), _VALIDATE_CHUNK):
        stop = min(start + _VALIDATE_CHUNK, len(stamps))
        if not (stamps[start:stop] > stamps[start - 1:stop - 1]).all():
            return False
    return True


class ZeroColumn(Sequence):
    """The buffer of a line of ``length`` zeros, holding no memory: the openinterest of a
    frame that has none, after ``ArrayFeed.preload`` (16 MiB at 2M bars, issue 15).

    It reads like the ``array.array('d')`` of zeros it stands for: ``len``, an
    index, a slice (an array), iteration. Anything that would change it
    (setting a value, appending, popping) first puts that array of zeros in
    the line, then does it there.
    """

    __slots__ = ("_line", "_length")
    typecode = "d"
    itemsize = 8

    def __init__(self, line, length: int):
        self._line = line
        self._length = length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return array.array("d", bytes(8 * len(range(*index.indices(self._length)))))
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("array index out of range")
        return 0.0

    def _materialized(self) -> array.array:
        zeros = array.array("d", bytes(8 * self._length))
        self._line.array = zeros
        return zeros

    def __setitem__(self, index, value) -> None:
        self._materialized()[index] = value

    def __delitem__(self, index) -> None:
        del self._materialized()[index]

    def append(self, value) -> None:
        self._materialized().append(value)

    def extend(self, values) -> None:
        self._materialized().extend(values)

    def insert(self, index, value) -> None:
        self._materialized().insert(index, value)

    def pop(self, index=-1):
        return self._materialized().pop(index)

    def __repr__(self) -> str:
        return f"ZeroColumn({self._length})"


def _rebuild_feed(feed_class, frame, params):
    """Unpickling hook: a fresh feed from its frame and parameters."""
    return feed_class(dataname=frame, **params)


class ArrayFeed(bt.feed.DataBase):
    """Fast backtrader feed over a validated OHLCV frame (see the module docstring).

    Params
    ------
    dataname : DataFrame with a DatetimeIndex (UTC, or naive meaning UTC) and
        columns open, high, low, close, volume (optional openinterest).
    timeframe, compression : None (default) infers them from
        ``frame.attrs['interval']`` or the median bar spacing: hourly bars give
        (Minutes, 60), daily bars (Days, 1).  Pass them to override.

    All other ``bt.feed.DataBase`` params (fromdate, todate, name, ...) work.
    """

    params = (("timeframe", None), ("compression", None))

    def __init__(self):
        frame = self.p.dataname
        if not isinstance(frame, pd.DataFrame) or not isinstance(frame.index, pd.DatetimeIndex):
            raise DataError("ArrayFeed: dataname must be a DataFrame with a DatetimeIndex")
        if not _strictly_increasing(frame.index.asi8):
            raise DataError("ArrayFeed: timestamps must be strictly increasing "
                            "(validate the frame with data.load_csv / load_ohlcv first)")
        self._arrays = _column_arrays(frame)
        _validate_arrays(self._arrays, frame.index)
        self._row_count = len(frame)
        self._resolve_timeframe(frame)
        self._next_row = 0
        self._line_lists = None

    def _day_number(self, row: int) -> float:
        """backtrader day number of row ``row`` (``bt_date_numbers`` of that one stamp)."""
        return float(bt_date_numbers(self.p.dataname.index[row:row + 1])[0])

    def _columns(self) -> dict[str, np.ndarray]:
        """The float64 arrays per line alias, for the per-bar ``_load``; the ones the frame
        lacks are made at its first call.

        The price columns are views of the frame; the day numbers (and the
        zeros of an openinterest the frame has not) are arrays of their own
        (8 B a bar each). The bulk ``preload`` makes neither: it fills the lines
        directly.
        """
        arrays = self._arrays
        if "datetime" not in arrays:
            arrays["datetime"] = bt_date_numbers(self.p.dataname.index)
        if "openinterest" not in arrays:
            arrays["openinterest"] = np.zeros(self._row_count, dtype=np.float64)
        return arrays

    def _resolve_timeframe(self, frame: pd.DataFrame) -> None:
        """Fill timeframe/compression params left as None from the bar interval."""
        if self.p.timeframe is None:
            interval = frame.attrs.get("interval")
            if interval is None:
                spacing = infer_interval_seconds(frame.index)
                interval = seconds_to_interval(spacing) if spacing else "1d"
            timeframe, compression = interval_to_timeframe(interval)
            self.p.timeframe = timeframe
            if self.p.compression is None:
                self.p.compression = compression
        if self.p.compression is None:
            self.p.compression = 1

    def __reduce_ex__(self, protocol):
        """A feed not started pickles as its frame and parameters (a fresh feed in the
        worker); one that holds bars pickles whole, bars included. ``cerebro.optstrategy``
        on several processes preloads the feeds once and sends them to its workers,
        which run on the bars as they are (rebuilt fresh, a worker had no bars: the
        indicators' buffers were sized 0 and the run failed with an IndexError)."""
        if any(len(line.array) for line in self.lines):
            return super().__reduce_ex__(protocol)
        params = dict(self.p._getkwargs())
        frame = params.pop("dataname")
        return _rebuild_feed, (type(self), frame, params)

    def start(self):
        super().start()
        self._next_row = 0
        lines = self.lines
        self._all_lines = list(lines)
        self._close_line = lines[0]
        self._datetime_line = lines.datetime
        # (attribute, line) pairs that AbstractDataBase._tick_fill sets per bar
        self._tick_lines = [("tick_" + alias, getattr(lines, alias))
                            for alias in lines.getlinealiases() if alias != "datetime"]
        self._tick_last_name = "tick_" + lines.getlinealiases()[0]

    def _load(self):
        """Per-bar load (preload=False, filters, exactbars): copy row ``_next_row``."""
        row = self._next_row
        if row >= self._row_count:
            return False
        self._next_row = row + 1
        if self._line_lists is None:
            # (line, float64 column) pairs; ``item`` gives a Python float without keeping
            # a list of 32-byte float objects per value (what ``tolist`` would cost).
            self._line_lists = [(getattr(self.lines, alias), self._columns()[alias].item)
                                for alias in self.lines.getlinealiases()]
        for line, value_at in self._line_lists:
            line[0] = value_at(row)
        return True

    # --- per-bar stepping over preloaded bars --------------------------------
    # The two overrides below give the same state as AbstractDataBase.advance
    # and advance_peek (index moved, tick_* values set from the new bar or all
    # None past the end) without the generic per-line getattr/setattr calls.
    # They apply to unbounded buffers only; everything else uses the base code.

    def advance(self, size=1, datamaster=None, ticks=True):
        close_line = self._close_line
        if datamaster is not None or close_line.mode != close_line.UnBounded:
            return super().advance(size, datamaster=datamaster, ticks=ticks)
        for line in self._all_lines:
            line._idx += size
            line.lencount += size
        if not ticks:
            return
        state = self.__dict__
        if close_line.lencount < len(close_line.array) - close_line.extension:
            for name, line in self._tick_lines:
                state[name] = line.array[line._idx]
            self.tick_last = state[self._tick_last_name]
        else:
            for name, _ in self._tick_lines:
                state[name] = None
            self.tick_last = None

    def advance_peek(self):
        close_line = self._close_line
        if close_line.mode != close_line.UnBounded:
            return super().advance_peek()
        if close_line.lencount < len(close_line.array) - close_line.extension:
            datetime_line = self._datetime_line
            return datetime_line.array[datetime_line._idx + 1]
        return float("inf")

    def _bulk_preload_possible(self) -> bool:
        """True when appending whole arrays equals what per-bar loading would store."""
        return (not self._filters and not self._tzinput
                and not self._barstack and not self._barstash
                and self._next_row == 0
                and all(isinstance(line.array, array.array) and line.buflen() == 0
                        for line in self.lines))

    def preload(self):
        """Append all bars in [fromdate, todate] to the line buffers at once.

        Each line gets an array of exactly the bars' size, filled without a
        temporary of every bar: the prices straight from the frame's columns,
        the day numbers a chunk of ``_DAY_NUMBER_CHUNK`` rows at a time, an
        absent openinterest as a :class:`ZeroColumn` (no memory). Whole
        column temporaries (the day numbers took ~8 arrays of the bars' length)
        were freed into the middle of the C heap, where the run's growing
        buffers could not use them: +28 MiB of peak RSS at 2M bars (issue 15).
        """
        if not self._bulk_preload_possible():
            super().preload()
            return
        index = self.p.dataname.index
        first = bisect.bisect_left(range(self._row_count), self.fromdate, key=self._day_number)
        stop = bisect.bisect_right(range(self._row_count), self.todate, key=self._day_number)
        count = max(stop - first, 0)
        for alias in self.lines.getlinealiases():
            line = getattr(self.lines, alias)
            if alias == "openinterest" and alias not in self._arrays:
                line.array = ZeroColumn(line, count)    # the frame has none: zeros, no memory
                continue
            exact = array.array("d", _ONE_ZERO) * count
            if count and alias == "datetime":
                target = np.frombuffer(exact, dtype=np.float64)
                for start in range(first, stop, _DAY_NUMBER_CHUNK):
                    end = min(start + _DAY_NUMBER_CHUNK, stop)
                    target[start - first:end - first] = bt_date_numbers(index[start:end])
                del target
            elif count and alias in self._arrays:
                values = np.ascontiguousarray(self._arrays[alias][first:stop])
                memoryview(exact).cast("B")[:] = memoryview(values).cast("B")
            line.array = exact
        self._next_row = self._row_count
        self._last()
        self.home()
