"""Base class and the shared per-bar tape every analyzer here reads.

Per bar, the analyzers of one strategy need the same few raw values: the bar's
time, the account value and cash, Σ|size x close|, and (MarginAnalyzer) each
feed's margin figures. Recording them once per bar, as raw float64 values in
``array.array`` buffers, and computing every summary from those arrays at
``stop()`` costs a few microseconds a bar for all four analyzers together,
where four analyzers each reading the broker and appending to their own
buffers cost ~30 µs (profile of issue 15: the per-analyzer clocks, the
backtrader dispatch of next/notify_cashvalue/notify_fund and the repeated
``getvalue`` and Σ|size x close| calls were most of it).

The first of this package's analyzers to start on a strategy leads: its
``next`` writes the tape; the others' ``next`` do nothing per bar. They are all
called in the same step of the same bar (after ``strategy.next``), so each
reads exactly what it would have measured itself.
"""
from __future__ import annotations

import array
import collections
import copy
import functools
import math
import types

import backtrader as bt
import numpy as np

from ._common import (array_view, bt_array_to_seconds, median_of_counts, no_op,
                      seconds_to_datetime64, skip_idle_bar_hooks)
from .exact_sums import pairwise_sum
from .risk_metrics import LazyValues, median_interval
from .value_runs import ValueRuns

_TAPE_ATTRIBUTE = "_btlev_bar_tape"


def _float_array() -> array.array:
    return array.array("d")


def as_numpy(values: array.array, copy: bool = False) -> np.ndarray:
    """A tape buffer as a float64 array: a view without copying (the default), or a copy.

    A view pins the buffer (it cannot grow while the view lives): use views only
    inside a computation, and return copies (``copy=True``) to callers.
    """
    if not len(values):
        return np.empty(0, dtype=np.float64)
    view = np.frombuffer(values, dtype=np.float64)
    return view.copy() if copy else view


def position_getter(broker):
    """``broker.getposition``, as the positions dict's own lookup when the broker keeps
    BackBroker's (the same defaultdict lookup, without a Python call per bar)."""
    if getattr(type(broker), "getposition", None) is bt.brokers.BackBroker.getposition and \
            isinstance(getattr(broker, "positions", None), dict):
        return broker.positions.__getitem__
    return broker.getposition


def _keeps_backbroker_reads(broker) -> bool:
    """Whether ``broker.getvalue()`` is BackBroker's (its ``_value``) and ``getcash()`` its ``cash``."""
    own = type(broker)
    return isinstance(broker, bt.brokers.BackBroker) and \
        own.getvalue is bt.brokers.BackBroker.getvalue and \
        own.getcash is bt.brokers.BackBroker.getcash


def _column_view(column) -> np.ndarray:
    """A MirroredColumn's values (empty before the first bar)."""
    return np.empty(0, dtype=np.float64) if column is None else column.view()


class MirroredColumn:
    """Per-bar values read from one line buffer, stored only when the buffer cannot give them back.

    While every value added so far is ``line.array[k]`` for k = 0, 1, 2, ... in
    turn (a preloaded feed, or the strategy's clock, in an unbounded buffer),
    the column is that prefix of the line's own array and costs no memory.
    The first value added at another index (a replayed bar restamped in
    place, a bounded ``exactbars`` buffer) copies the prefix out, and from
    then on the values are stored.
    """

    __slots__ = ("line", "count", "last", "values")

    def __init__(self, line):
        mirrored = line.mode == line.UnBounded and isinstance(line.array, array.array)
        self.line = line if mirrored else None
        self.count = 0          # values added while mirroring
        self.last = None        # the latest of them (its slot may be rewritten later)
        self.values = None if mirrored else _float_array()

    def add(self, value: float, index: int) -> None:
        """Add ``value``, read from ``line.array[index]``."""
        if self.values is None:
            if index == self.count:
                self.count += 1
                self.last = value
                return
            self.values = _float_array()
            if self.count:
                self.values.extend(self.line.array[: self.count - 1])
                self.values.append(self.last)
        self.values.append(value)

    def __len__(self) -> int:
        return self.count if self.values is None else len(self.values)

    def view(self) -> np.ndarray:
        """The values as a float64 array view (pins the buffer: use it, do not keep it)."""
        if self.values is not None:
            return as_numpy(self.values)
        if not self.count:
            return np.empty(0, dtype=np.float64)
        return np.frombuffer(self.line.array, dtype=np.float64, count=self.count)


class StepColumn:
    """Per-bar values that seldom change, kept as steps: (first bar, value) of each change.

    For the wallet balance (``broker.getcash()``), which moves only with a cash
    flow: a few thousand steps in a run of millions of bars, where a float a
    bar cost 8 B a bar of peak memory (issue 15). A value starts a new step
    unless it is the previous value itself (the broker hands back the same
    float object while its cash is unchanged) or equal to it and not zero
    (equal non-zero floats have the same bits; 0.0 and -0.0 compare equal, so a
    zero always starts a step). :meth:`dense` gives back every bar's value.
    """

    __slots__ = ("count", "starts", "values", "last")

    def __init__(self):
        self.count = 0                      # values appended (bars)
        self.starts = array.array("q")      # the bar each step starts at
        self.values = _float_array()        # its value
        self.last = None

    def append(self, value: float) -> None:
        last = self.last
        if value is not last and (value != last or value == 0.0):
            self.starts.append(self.count)
            self.values.append(value)
        # an equal value becomes the last one too: the wallet paid and got back the same
        # funding amount is a new float object, and the next bars hand back that one
        self.last = value
        self.count += 1

    def put(self, bar: int, value: float) -> None:
        """``append`` for a writer that skips the unchanged bars: bar ``bar``'s value, the
        bars since the last value holding that one (:meth:`extend_to` before reading)."""
        self.count = bar
        self.append(value)

    def extend_to(self, count: int) -> None:
        """The bars up to ``count`` hold the last value (a :meth:`put` writer's last bars)."""
        if count > self.count:
            self.count = count

    def __len__(self) -> int:
        return self.count

    def dense(self) -> np.ndarray:
        """One float64 value per bar appended (a new array)."""
        if not self.count:
            return np.empty(0, dtype=np.float64)
        lengths = np.diff(np.append(np.frombuffer(self.starts, dtype=np.int64), self.count))
        return np.repeat(as_numpy(self.values), lengths)


class _IterableItemCollection(bt.metabase.ItemCollection):
    """backtrader's ``ItemCollection`` with an ``__iter__``: it has none, so every loop
    over ``strategy.analyzers`` (two a bar: the bar hooks and the cash/fund
    notifications) calls ``__getitem__`` per analyzer and ends on an IndexError."""

    __slots__ = ()

    def __iter__(self):
        return iter(self._items)


def _iterate_analyzers_natively(strategy) -> None:
    """Give ``strategy.analyzers`` a list iterator: the same analyzers in the same order."""
    if type(strategy.analyzers) is bt.metabase.ItemCollection:
        strategy.analyzers.__class__ = _IterableItemCollection


def _next_busy_analyzers(busy, minperstatus, once=False) -> None:
    """backtrader's ``Strategy._next_analyzers`` over the analyzers ``busy`` only."""
    for analyzer in busy:
        if minperstatus < 0:
            analyzer._next()
        elif minperstatus == 0:
            analyzer._nextstart()   # the first bar past the strategy's minimum period
        else:
            analyzer._prenext()


def _skip_idle_analyzers(strategy) -> None:
    """Leave out of the strategy's per-bar analyzer calls those whose three bar hooks are
    :func:`no_op` (this package's members other than the tape's leader, once started).

    The same calls minus ones that do nothing, in the same order: with four
    analyzers, the loop over all four cost ~48 bytecode steps and three Python
    calls a bar (the profile of issue 15). Kept as it is when the strategy's
    class has its own ``_next_analyzers``. A ``functools.partial``, so the
    strategy still pickles (``cerebro.optstrategy`` sends it back from its workers).
    """
    if type(strategy)._next_analyzers is not bt.Strategy._next_analyzers or \
            "_next_analyzers" in vars(strategy):
        return
    analyzers = list(strategy.analyzers)
    busy = [analyzer for analyzer in analyzers if not (
        analyzer._next is no_op and analyzer._prenext is no_op and analyzer._nextstart is no_op)]
    if len(busy) < len(analyzers):
        strategy._next_analyzers = functools.partial(_next_busy_analyzers, busy)


#: bars a chunk when a summary walks a whole column at stop() (no full-length temporaries)
CHUNK_BARS = 1 << 13
#: bars the feeds hold from which a margin broker's value is kept as runs of its state
#: (ValueRuns): below, the column is under 2 MiB, and storing a float a bar costs less
#: time than checking each bar's value against the run (~2 us a bar on hourly bars,
#: where funding starts a run every 8 bars)
VALUE_RUNS_FROM_BARS = 1 << 18
#: distinct bar spacings counted before the bar interval is taken from the whole column
_MAX_DISTINCT_STEPS = 1 << 12


class NotionalRuns:
    """One feed's open position as runs of bars: (first bar, size, close-line index - bar).

    While the size is unchanged and the feed's close-line index goes on by one
    a bar, |size x close| of every bar follows from the close line at stop():
    a run a fill, where a float a bar cost 8 B a bar of peak memory (issue 15).
    A run of size 0.0 is flat (or the feed not started).
    """

    __slots__ = ("starts", "sizes", "offsets", "size", "offset")

    def __init__(self):
        self.starts = array.array("q")
        self.sizes = _float_array()
        self.offsets = array.array("q")
        self.size = 0.0                 # the current run's size (0.0: flat, the state before bar 0)
        self.offset = 0

    def begin(self, bar: int, size: float, offset: int) -> None:
        """Start a run at ``bar``: ``size`` base units (0.0 flat), close index = bar + offset."""
        self.starts.append(bar)
        self.sizes.append(size)
        self.offsets.append(offset)
        self.size, self.offset = size, offset

    def add_notional(self, out: np.ndarray, first: int, close) -> None:
        """``out += |size x close|`` for bars [first, first + len(out)) (+0.0 where flat):
        the same float operations, feed after feed, as ``BarTape.record`` did bar by bar.

        All the runs of the chunk at once (the size and close index of each bar
        from its run): a numpy step a run took ~1 ms a chunk of 8,192 hourly
        bars with a fill every 25 bars, a third of the four analyzers' stop().
        """
        count = len(out)
        starts = array_view(self.starts, np.int64)
        lowest = max(int(np.searchsorted(starts, first, side="right")) - 1, 0)
        highest = int(np.searchsorted(starts, first + count, side="left"))
        if highest <= lowest:
            return
        # out[begins[k]:begins[k + 1]] is run lowest + k; the bars before begins[0] have none
        begins = np.maximum(starts[lowest:highest] - first, 0)
        lengths = np.diff(np.append(begins, count))
        sizes = np.repeat(array_view(self.sizes, np.float64)[lowest:highest], lengths)
        held = np.flatnonzero(sizes)
        if not held.size:
            return
        offsets = np.repeat(array_view(self.offsets, np.int64)[lowest:highest], lengths)[held]
        bars = held + begins[0]
        out[bars] += np.abs(sizes[held] * close[bars + first + offsets])


class BarTape:
    """What the analyzers of one strategy record per bar (one entry per ``next`` call).

    Columns (float64): ``time`` (backtrader float datetime of the bar, the
    strategy's clock) and ``first_clock`` (the first feed's datetimes, each new
    one once; with one feed, the ``time`` column itself), both
    :class:`MirroredColumn` of those lines; ``value`` (``broker.getvalue()``),
    after ``start_value`` (the value when the analyzers started) in the same
    buffer; ``notional`` (Σ |size x close| over the feeds, quote currency, 0.0
    when flat): runs of each feed's position (:class:`NotionalRuns`) read
    against its close line at stop() when every feed's close line keeps its
    values (an unbounded buffer, no replay), else stored a bar; and, when a
    member asks for it, ``cash`` (``broker.getcash()``, a :class:`StepColumn`:
    the wallet changes only with a cash flow). Members with more per-bar work
    register a hook, called with the bar's time, value and notional (None
    while it is kept as runs) after the common values.

    The stored columns share ONE buffer, ``rows``: the start value (and a NaN
    under it when notional is stored), then each bar's value (and notional).
    Why one buffer: separate buffers growing side by side next to the
    strategy's own line buffers fragment the C heap as each reallocation moves
    past the others (~45 B a bar of peak RSS at 200k bars in the profile of
    issue 15).
    """

    def __init__(self, strategy):
        self.strategy = strategy
        self.leader = None
        self.hooks = []
        self.wants_bars = False     # any member reads the per-bar buffers
        self.wants_cash = False
        self.time = None            # MirroredColumns, made at the first bar
        self.first_clock = None
        self.start_value = float(strategy.broker.getvalue())
        self.rows = _float_array()
        self.rows.append(self.start_value)
        self.width = 1              # values a row: value (+ notional when stored)
        self.capacity = 0           # bars the rows were sized for at the first bar
        self.notional_runs = None   # NotionalRuns per feed, when notional is kept as runs
        self.value_runs = None      # ValueRuns: the value kept as runs of the broker's state
        self.bars = 0
        self.cash = StepColumn()
        self._summaries = {}
        self._configured = False
        self._time_follows_bars = False     # the usual recorder leaves time.count to bars

    @classmethod
    def of(cls, strategy) -> "BarTape":
        tape = strategy.__dict__.get(_TAPE_ATTRIBUTE)
        if tape is None:
            tape = cls(strategy)
            setattr(strategy, _TAPE_ATTRIBUTE, tape)
        return tape

    def _configure(self) -> None:
        strategy = self.strategy
        broker = strategy.broker
        self._clock_line = strategy.lines.datetime
        self.time = MirroredColumn(self._clock_line)
        self._getvalue = broker.getvalue
        self._getcash = broker.getcash
        # a broker keeping BackBroker's getvalue/getcash: read what they return directly
        self._backbroker = broker if _keeps_backbroker_reads(broker) else None
        self._getposition = position_getter(broker)
        # (data, its length line, its close line) per feed, in the strategy's order
        self.feeds = [(data, data.lines[0], data.lines.close) for data in strategy.datas]
        if all(_keeps_its_values(data, close_line) for data, _length, close_line in self.feeds):
            self.notional_runs = [NotionalRuns() for _feed in self.feeds]
            self._feed_runs = [(data, length_line, close_line, runs) for
                               (data, length_line, close_line), runs in
                               zip(self.feeds, self.notional_runs)]
            bars_held = max((data.buflen() for data in strategy.datas), default=0)
            if self._backbroker is not None and hasattr(broker, "value_terms") and \
                    bars_held >= VALUE_RUNS_FROM_BARS:
                # a margin broker on a long run: the value is read back from runs of its state
                self.value_runs = ValueRuns(broker, [(data, close_line) for
                                                     data, _length, close_line in self.feeds])
            else:
                # sized once for the bars the feeds hold (a preloaded run's every bar):
                # growing a value at a time, the buffer was moved again and again through
                # the C heap, leaving the freed copies behind (~5 B a bar of peak RSS in the
                # profile of issue 15); more bars than that append as before
                self.capacity = bars_held
                self.rows = array.array("d", self.rows) * (self.capacity + 1)
        else:
            self.width = 2
            self.rows.append(math.nan)      # under the start value: rows stay (value, notional)
        self._append_row = self.rows.append
        first = strategy.datas[0] if strategy.datas else None
        if len(strategy.datas) == 1:
            # one feed: the strategy's clock is that feed's datetime every bar, so the
            # first feed's stamps are the time column's (bar_interval drops repeats)
            self._first, self.first_clock = None, self.time
        else:
            self._first = None if first is None else (first.lines[0], first.lines.datetime)
            self.first_clock = MirroredColumn(first.lines.datetime if first is not None
                                              else self._clock_line)
        self._last_first_stamp = None
        _iterate_analyzers_natively(strategy)
        _skip_idle_analyzers(strategy)     # every analyzer started: their hooks are set
        self._configured = True

    def column(self, key) -> np.ndarray:
        """One column, one value per bar, as a float64 array.

        ``key``: ``"value"`` (a view: pins the buffer, use it and drop it),
        ``"notional"`` or ``"cash"`` (new arrays; cash is empty unless a member
        asked for it).
        """
        if key == "cash":
            if not self.wants_cash:
                return np.empty(0, dtype=np.float64)
            self.cash.extend_to(self.bars)
            return self.cash.dense()
        if key == "notional":
            return self.notional_chunk(0, self.bars)
        return self.value_chunk(0, self.bars)

    def value_chunk(self, first: int, stop: int) -> np.ndarray:
        """The value of bars [first, stop) (a view, strided when notional is stored; a new
        array when the value is kept as runs)."""
        if self.value_runs is not None:
            stop = max(first, min(stop, self.bars))
            return self.value_runs.values_at(np.arange(first, stop, dtype=np.int64))
        flat = self._filled_rows()
        width = self.width
        return flat[width * (first + 1):width * (stop + 1):width]

    def equity_curve(self):
        """The start value, then the value after each bar: contiguous (a read-only view,
        pinning the buffer, when rows hold only values; else a copy), or, when the value
        is kept as runs, a :class:`LazyValues` that makes the values where they are read."""
        if self.value_runs is not None:
            return LazyValues(self.bars + 1, self._equity_at)
        flat = self._filled_rows()
        if self.width != 1:
            return flat[::self.width].copy()
        flat.flags.writeable = False        # the tape's own buffer: read it, never write it
        return flat

    def _equity_at(self, indices: np.ndarray) -> np.ndarray:
        """Equity-curve entries at ``indices``: 0 the start value, i the value of bar i - 1."""
        values = self.value_runs.values_at(np.maximum(indices - 1, 0))
        values[indices == 0] = self.start_value
        return values

    def notional_chunk(self, first: int, stop: int) -> np.ndarray:
        """Σ |size x close| of bars [first, stop), quote currency (a new array)."""
        stop = max(first, min(stop, self.bars))
        if self.notional_runs is None:
            flat = self._filled_rows()
            return flat[2 * (first + 1) + 1:2 * (stop + 1):2].copy()
        out = np.zeros(stop - first)
        for (_data, _length, close_line), runs in zip(self.feeds, self.notional_runs):
            if len(runs.starts):
                runs.add_notional(out, first, np.frombuffer(close_line.array, dtype=np.float64))
        return out

    def _filled_rows(self) -> np.ndarray:
        """The rows written so far (the start row, then a row a bar), as a float64 view."""
        return as_numpy(self.rows)[:self.width * (self.bars + 1)]

    def chunks(self, size: int = 0):
        """(first, stop) bar ranges covering every bar recorded, ``CHUNK_BARS`` at a time."""
        size = size or CHUNK_BARS
        return [(first, min(first + size, self.bars)) for first in range(0, self.bars, size)]

    def bar_interval(self) -> float | None:
        """``median_interval`` of the first feed's stamps in seconds, computed once a bar count.

        Stamps that go up bar after bar (the usual feed) are read a chunk at a
        time and their spacings counted: the median of those counts is
        ``np.median``'s (the middle spacing, or the mean of the two middle
        ones), without the stamps' and spacings' arrays of every bar (16 B a
        bar of peak memory at stop(), issue 15). Other stamps (repeats, a
        stamp going back) and spacings of more than ``_MAX_DISTINCT_STEPS``
        values take ``median_interval`` on the whole column.
        """
        self._sync_time()
        count = len(self.first_clock) if self.first_clock is not None else 0
        cached = self._summaries.get("interval")
        if cached is not None and cached[0] == count:
            return cached[1]
        interval = self._chunked_interval(count)
        self._summaries["interval"] = (count, interval)
        return interval

    def _chunked_interval(self, count: int) -> float | None:
        if count < 2:
            return median_interval(bt_array_to_seconds(_column_view(self.first_clock)))
        steps_seen = collections.Counter()
        previous = None
        for first in range(0, count, CHUNK_BARS):
            seconds = bt_array_to_seconds(_column_view(self.first_clock)[first:first + CHUNK_BARS])
            steps = np.diff(seconds) if previous is None else \
                np.diff(np.concatenate(([previous], seconds)))
            previous = seconds[-1]
            if not (steps > 0).all():
                steps_seen = None
                break
            # the usual spacing counted by one comparison, only the others sorted (np.unique
            # of every spacing was ~1 ms a chunk); the same counts
            if steps.size:
                usual = steps == steps[0]
                steps_seen[float(steps[0])] += int(np.count_nonzero(usual))
                steps = steps[~usual]
            values, counts = np.unique(steps, return_counts=True)
            steps_seen.update(dict(zip(values.tolist(), counts.tolist())))
            if len(steps_seen) > _MAX_DISTINCT_STEPS:
                steps_seen = None
                break
        if steps_seen is None:
            return median_interval(bt_array_to_seconds(_column_view(self.first_clock)))
        return median_of_counts(steps_seen)

    def leverage_summary(self) -> dict:
        """Effective leverage (Σ |size x close| / value) over the bars, computed once.

        Keys: ``bars``; ``exposed_bars`` (notional > 0); ``count``, ``mean`` and
        ``max`` of the finite leverages (notional != 0 and value > 0): ``mean``
        is ``np.mean`` of them, bit for bit (:func:`exact_sums.pairwise_sum`
        over the chunks), without an array of every bar.
        """
        cached = self._summaries.get("leverage")
        if cached is not None and cached["bars"] == self.bars:
            return cached
        count, exposed, highest = 0, 0, None
        for first, stop in self.chunks():
            leverage, notional = self.leverage_chunk(first, stop)
            exposed += int(np.count_nonzero(notional > 0.0))
            finite = leverage[np.isfinite(leverage)]
            if finite.size:
                count += finite.size
                top = float(finite.max())
                highest = top if highest is None or top > highest else highest
        mean = None
        if count:
            mean = pairwise_sum(count, _SequentialValues(self._finite_leverage_pieces())) / count
        summary = {"bars": self.bars, "exposed_bars": exposed, "count": count,
                   "mean": mean, "max": highest}
        self._summaries["leverage"] = summary
        return summary

    def _finite_leverage_pieces(self):
        for first, stop in self.chunks():
            leverage, _notional = self.leverage_chunk(first, stop)
            finite = leverage[np.isfinite(leverage)]
            if finite.size:
                yield finite

    def leverage_chunk(self, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(notional / value, notional) of bars [first, stop), new arrays: the effective
        leverage, NaN where flat (notional 0) or the value is <= 0."""
        notional, value = self.notional_chunk(first, stop), self.value_chunk(first, stop)
        with np.errstate(all="ignore"):
            leverage = np.divide(notional, value)
        leverage[(notional == 0.0) | (value <= 0.0)] = math.nan
        return leverage, notional

    def record(self) -> None:
        """Append this bar's values (the leader's ``next``).

        The first bar configures the tape; in the usual configuration (every
        feed's notional kept as runs, the value stored a bar, a broker keeping
        BackBroker's reads) the bars from then on go to :func:`_usual_recorder`,
        this method with those branches settled.
        """
        if not self._configured:
            self._configure()
            if not self.wants_bars:
                self.leader._stop_recording()
                return
            if self.notional_runs is not None and self.value_runs is None and \
                    self._backbroker is not None and self.time.values is None:
                usual = _usual_recorder(self)
                self._install(usual)
                self._time_follows_bars = True
                usual()
                return
        clock_line = self._clock_line
        index = clock_line._idx
        now = clock_line.array[index]
        column = self.time
        if column.values is None and index == column.count:   # MirroredColumn.add, inlined
            column.count = index + 1
            column.last = now
        else:
            column.add(now, index)
        if self._first is not None:
            self._add_first_stamp()
        backbroker = self._backbroker
        value = self._getvalue() if backbroker is None else backbroker._value
        bar = self.bars
        self.bars = bar + 1
        value_runs = self.value_runs
        if value_runs is None:
            if bar < self.capacity:
                self.rows[bar + 1] = value
            else:
                self._append_row(value)
        else:
            value_runs.check(bar, value)
        if self.wants_cash:
            cash, steps = self._getcash() if backbroker is None else backbroker.cash, self.cash
            if cash is steps.last:           # StepColumn.append of an unchanged wallet, inlined
                steps.count += 1
            else:
                steps.append(cash)
        getposition = self._getposition
        notional = None
        if self.notional_runs is not None:
            for data, length_line, close_line, runs in self._feed_runs:
                if length_line.lencount:
                    size = getposition(data).size
                    if size:
                        offset = close_line._idx - bar
                        if size != runs.size or offset != runs.offset:
                            runs.begin(bar, size, offset)
                        continue
                if runs.size:
                    runs.begin(bar, 0.0, 0)
        else:
            notional = 0.0
            for data, length_line, close_line in self.feeds:
                if length_line.lencount:
                    size = getposition(data).size
                    if size:
                        notional += abs(size * close_line.array[close_line._idx])
            self._append_row(notional)
        for hook in self.hooks:
            hook(now, value, notional)

    def _add_first_stamp(self) -> None:
        """Several feeds: add the first feed's stamp to ``first_clock`` when it is a new one."""
        length_line, datetime_line = self._first
        if length_line.lencount:
            index = datetime_line._idx
            stamp = datetime_line.array[index]
            if stamp != self._last_first_stamp:
                self._last_first_stamp = stamp
                self.first_clock.add(stamp, index)

    def __getstate__(self) -> dict:
        # the usual recorder is a closure, which pickle refuses (cerebro.optstrategy sends
        # the analyzers back from its worker processes): a copy records with the method
        state = self.__dict__.copy()
        state.pop("record", None)
        return state

    def _install(self, record) -> None:
        """Make ``record`` the tape's per-bar call: ``self.record`` and the leader's bar
        hooks that call the current one directly."""
        current, leader = self.record, self.leader
        for hook in ("_next", "_prenext", "_nextstart"):
            if leader.__dict__.get(hook) == current:
                setattr(leader, hook, record)
        self.record = record

    def _leave_usual(self) -> None:
        """The usual recorder met a bar whose clock index is not the bar's (the strategy
        ticked without its clock moving on): the time column takes its count, and this
        bar and every later one go to the general method."""
        self._sync_time()
        self._time_follows_bars = False
        self._install(types.MethodType(BarTape.record, self))
        self.record()

    def _sync_time(self) -> None:
        """Bring the time column's count to the bars recorded (see ``_usual_recorder``);
        called before the column is read."""
        if self._time_follows_bars:
            self.time.count = self.bars


def _usual_recorder(tape: BarTape):
    """:meth:`BarTape.record` for the usual configuration, its branches settled once.

    Every feed's notional kept as runs, the value stored in the rows, the
    broker keeping BackBroker's ``getvalue``/``getcash``, the strategy's clock
    mirrored (the tape is configured, no bar recorded yet). The same values in
    the same order as the general method; what it reads each bar is held in
    the closure (a local read, where ``self.x`` is two steps; ~1 us a bar of
    issue 15's analyzers row on a slow machine). While the clock's index is
    the bar's (it goes on by one a bar), the time column's count is the
    tape's ``bars`` and only its last value is written; the first bar where it
    is not goes, with every later one, to the general method.
    """
    clock_line = tape._clock_line
    time_column = tape.time
    first_lines = tape._first       # several feeds: the first one's clock column too
    rows, capacity, append_row = tape.rows, tape.capacity, tape._append_row
    broker = tape._backbroker
    steps = tape.cash if tape.wants_cash else None
    getposition = tape._getposition
    feed_runs = tape._feed_runs
    hooks = tuple(tape.hooks)       # joined at start(), before the first bar
    only_hook = hooks[0] if len(hooks) == 1 else None

    def record() -> None:
        bar = tape.bars
        index = clock_line._idx
        if index != bar:    # the clock did not go on by one a bar: the general method from here
            return tape._leave_usual()
        now = clock_line.array[index]
        # the time column mirrors the clock, its count the tape's bars (BarTape._sync_time)
        time_column.last = now
        if first_lines is not None:
            tape._add_first_stamp()
        value = broker._value
        tape.bars = bar + 1
        if bar < capacity:
            rows[bar + 1] = value
        else:                                # more bars than the feeds held at the first bar
            append_row(value)
        if steps is not None:
            cash = broker.cash
            if cash is not steps.last:       # the usual bar: the same float, nothing to write
                steps.put(bar, cash)
        # the general method's loop, inlined: a call a bar would be ~2 % of the analyzers' time
        for data, length_line, close_line, runs in feed_runs:
            if length_line.lencount:
                size = getposition(data).size
                if size:
                    offset = close_line._idx - bar
                    if size != runs.size or offset != runs.offset:
                        runs.begin(bar, size, offset)
                    continue
            if runs.size:
                runs.begin(bar, 0.0, 0)
        if only_hook is not None:
            only_hook(now, value, None)
        else:
            for hook in hooks:
                hook(now, value, None)

    return record


def _keeps_its_values(data, close_line) -> bool:
    """Whether a feed's close line still holds every bar's close at stop(): an unbounded
    array buffer, not replayed (a replayed bar is rewritten in place)."""
    return close_line.mode == close_line.UnBounded and isinstance(close_line.array, array.array) \
        and not getattr(data, "replaying", False)


class _SequentialValues:
    """``values_at(start, stop)`` for :func:`pairwise_sum` over pieces read in order: the
    pairwise leaves are asked for left to right, so each piece is read once."""

    def __init__(self, pieces):
        self._pieces = iter(pieces)
        self._current = np.empty(0)
        self._position = 0          # start of _current in the virtual array
        self._offset = 0            # how much of _current is used

    def __call__(self, start: int, stop: int) -> np.ndarray:
        if start != self._position + self._offset:
            raise ValueError("pieces must be read in order")
        parts = []
        needed = stop - start
        while needed:
            if self._offset == len(self._current):
                self._position += len(self._current)
                self._current, self._offset = next(self._pieces), 0
            take = min(needed, len(self._current) - self._offset)
            parts.append(self._current[self._offset:self._offset + take])
            self._offset += take
            needed -= take
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class BarClockAnalyzer(bt.Analyzer):
    """Joins the strategy's :class:`BarTape`; subclasses summarise it at ``stop()``.

    All state is created in ``start()`` (a zero-bar run calls ``start`` and
    ``stop`` but never ``next``); the analysis dict is built in ``stop()`` and
    ``get_analysis()`` returns a deep copy of it, so it may be called any
    number of times.
    """

    def start(self):
        tape = BarTape.of(self.strategy)
        if tape.leader is None:
            tape.leader = self
        self._tape = tape
        self._join(tape)
        self._skip_unused_hooks(tape)
        self._analysis = self._summarise()

    def _join(self, tape: BarTape) -> None:
        """Subclasses: ask the tape for what they need (``wants_cash``, a hook)."""
        tape.wants_bars = True

    def __getstate__(self) -> dict:
        # the leader's bar hooks may be the tape's closure (see BarTape.__getstate__): a copy
        # calls the class's next, which records with the method
        state = self.__dict__.copy()
        tape = state.get("_tape")
        recorder = None if tape is None else tape.__dict__.get("record")
        for hook in ("_next", "_prenext", "_nextstart"):
            if recorder is not None and state.get(hook) is recorder:
                del state[hook]
        return state

    def _stop_recording(self) -> None:
        """No member reads the per-bar buffers: the leader's next does nothing."""
        self._tape._install(no_op)

    def _skip_unused_hooks(self, tape: BarTape) -> None:
        # the leader's bar call records the tape; the others' do nothing
        skip_idle_bar_hooks(self, step=tape.record if tape.leader is self else no_op,
                            idle_next=BarClockAnalyzer.next)

    def next(self):
        if self._tape.leader is self:
            self._tape.record()

    def stop(self):
        self._analysis = self._summarise()

    def get_analysis(self) -> dict:
        return copy.deepcopy(self._analysis)

    # -- helpers for subclasses -------------------------------------------
    def bar_interval(self) -> float | None:
        """Median spacing in seconds of the first feed's timestamps (None if < 2 bars)."""
        return self._tape.bar_interval()

    def bar_times(self) -> np.ndarray:
        """POSIX seconds of each bar seen (float array, a new one each call)."""
        self._tape._sync_time()
        return bt_array_to_seconds(_column_view(self._tape.time))

    def bar_time(self, index: int) -> float:
        """POSIX seconds of bar ``index``: ``bar_times()[index]`` without the whole array."""
        return bt_array_to_seconds(self.bar_clocks()[index:index + 1])[0]

    def bar_clocks(self) -> np.ndarray:
        """backtrader float datetimes of each bar seen (``bt_to_seconds`` converts); a view."""
        self._tape._sync_time()
        return _column_view(self._tape.time)

    def equity(self, copy: bool = False) -> np.ndarray:
        """``broker.getvalue()`` after each bar (quote currency); a view unless ``copy``."""
        return self.tape_column("value", copy)

    def notional(self) -> np.ndarray:
        """Σ |size x close| over the feeds after each bar (quote currency, 0 when flat); a new
        array."""
        return self._tape.column("notional")

    def tape_column(self, key, copy: bool = False) -> np.ndarray:
        """A :meth:`BarTape.column`: a view of the value column (strided while notional is
        stored), or a contiguous copy if ``copy``; notional and cash are new arrays."""
        view = self._tape.column(key)
        return view.copy() if copy and key == "value" else view

    def effective_leverage(self) -> np.ndarray:
        """notional / value per bar; NaN when flat (notional 0) or value <= 0 (a new array)."""
        tape = self._tape
        if not tape.bars:
            return np.empty(0, dtype=np.float64)
        return np.concatenate([tape.leverage_chunk(first, stop)[0]
                               for first, stop in tape.chunks()])

    def leverage_summary(self) -> dict:
        """:meth:`BarTape.leverage_summary` (shared by the members: computed once)."""
        return self._tape.leverage_summary()

    def _time_series(self) -> dict:
        return {"time": seconds_to_datetime64(self.bar_times())}

    def _summarise(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError
