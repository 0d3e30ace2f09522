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
import copy
import math

import backtrader as bt
import numpy as np

from ._common import bt_array_to_seconds, no_op, seconds_to_datetime64, skip_idle_bar_hooks
from .risk_metrics import median_interval

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
            self.last = value
        self.count += 1

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


class BarTape:
    """What the analyzers of one strategy record per bar (one entry per ``next`` call).

    Columns (float64): ``time`` (backtrader float datetime of the bar, the
    strategy's clock) and ``first_clock`` (the first feed's datetimes, each new
    one once; with one feed, the ``time`` column itself), both
    :class:`MirroredColumn` of those lines; ``value``
    (``broker.getvalue()``), ``notional`` (Σ |size x close| over the feeds,
    quote currency, 0.0 when flat) and, when a member asks for it, ``cash``
    (``broker.getcash()``). Members with more per-bar work reserve columns of
    their own (:meth:`reserve`) and register a hook, called with the bar's
    time after the common values, that appends one value to each of them.

    The stored columns share ONE buffer, ``rows``: each bar appends its row
    (value, notional, then the members' columns in the order they were
    reserved), and :meth:`column` reads a column back as a strided view.
    ``value`` and ``notional`` are both names of that buffer, so ``record``
    appends in row order; ``cash`` is a :class:`StepColumn` (the wallet
    changes only with a cash flow: a few steps, not 8 B a bar). Why one
    buffer: separate buffers growing side by side (five with the four
    analyzers, next to the strategy's own line buffers) fragment the C heap as
    each reallocation moves past the others; the profile of issue 15 showed
    ~9 MiB of freed-but-held heap at 200k bars (~45 B a bar of peak RSS),
    which one growing buffer does not leave.
    """

    def __init__(self, strategy):
        self.strategy = strategy
        self.leader = None
        self.hooks = []
        self.wants_bars = False     # any member reads the per-bar buffers
        self.wants_cash = False
        self.time = None            # MirroredColumns, made at the first bar
        self.first_clock = None
        self.rows = _float_array()
        self.value = self.notional = self.rows   # record() appends in row order
        self.cash = StepColumn()
        self._reserved = 0          # members' columns, after the common ones
        self._configured = False

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
        self._append_row = self.rows.append      # value, then notional (record's row order)
        # (data, its length line, its close line) per feed, in the strategy's order
        self.feeds = [(data, data.lines[0], data.lines.close) for data in strategy.datas]
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
        self._configured = True

    def reserve(self, count: int) -> int:
        """Reserve ``count`` columns for a member's hook; returns the first one's key.

        Call before the first bar (from ``_join``); pass ``key + k`` to :meth:`column`.
        """
        first = self._reserved
        self._reserved += count
        return first

    def column(self, key) -> np.ndarray:
        """One stored column, one value per bar, as a float64 view (pins the buffer).

        ``key``: ``"value"``, ``"notional"`` or a key from :meth:`reserve`; or
        ``"cash"``: a new array (empty unless a member asked for it).
        """
        common = 2          # value, notional
        if key == "cash":
            return self.cash.dense() if self.wants_cash else np.empty(0, dtype=np.float64)
        if isinstance(key, str):
            position = {"value": 0, "notional": 1}[key]
        else:
            position = common + key
        width = common + self._reserved
        flat = as_numpy(self.rows)
        bars = len(flat) // width
        return flat[: bars * width].reshape(bars, width)[:, position]

    def record(self) -> None:
        """Append this bar's values (the leader's ``next``)."""
        if not self._configured:
            self._configure()
            if not self.wants_bars:
                self.leader._stop_recording()
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
            length_line, datetime_line = self._first
            if length_line.lencount:
                index = datetime_line._idx
                stamp = datetime_line.array[index]
                if stamp != self._last_first_stamp:
                    self._last_first_stamp = stamp
                    column = self.first_clock
                    if column.values is None and index == column.count:   # add, inlined
                        column.count = index + 1
                        column.last = stamp
                    else:
                        column.add(stamp, index)
        backbroker = self._backbroker
        value = self._getvalue() if backbroker is None else backbroker._value
        append = self._append_row
        append(value)
        if self.wants_cash:
            cash, steps = self._getcash() if backbroker is None else backbroker.cash, self.cash
            if cash is steps.last:           # StepColumn.append of an unchanged wallet, inlined
                steps.count += 1
            else:
                steps.append(cash)
        notional = 0.0
        getposition = self._getposition
        for data, length_line, close_line in self.feeds:
            if length_line.lencount:
                size = getposition(data).size
                if size:
                    notional += abs(size * close_line.array[close_line._idx])
        append(notional)
        for hook in self.hooks:
            hook(now, value, notional)


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

    def _stop_recording(self) -> None:
        """No member reads the per-bar buffers: the leader's next does nothing."""
        self._tape.record = no_op
        if "_next" in self.__dict__:
            self._next = self._prenext = self._nextstart = no_op

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
        return median_interval(bt_array_to_seconds(_column_view(self._tape.first_clock)))

    def bar_times(self) -> np.ndarray:
        """POSIX seconds of each bar seen (float array, a new one each call)."""
        return bt_array_to_seconds(_column_view(self._tape.time))

    def bar_time(self, index: int) -> float:
        """POSIX seconds of bar ``index``: ``bar_times()[index]`` without the whole array."""
        return bt_array_to_seconds(self.bar_clocks()[index:index + 1])[0]

    def bar_clocks(self) -> np.ndarray:
        """backtrader float datetimes of each bar seen (``bt_to_seconds`` converts); a view."""
        return _column_view(self._tape.time)

    def equity(self, copy: bool = False) -> np.ndarray:
        """``broker.getvalue()`` after each bar (quote currency); a view unless ``copy``."""
        return self.tape_column("value", copy)

    def notional(self) -> np.ndarray:
        """Σ |size x close| over the feeds after each bar (quote currency, 0 when flat); a view."""
        return self.tape_column("notional")

    def tape_column(self, key, copy: bool = False) -> np.ndarray:
        """A :meth:`BarTape.column`: a (strided) view, or a contiguous copy if ``copy``."""
        view = self._tape.column(key)
        return view.copy() if copy else view

    def effective_leverage(self) -> np.ndarray:
        """notional / value per bar; NaN when flat (notional 0) or value <= 0."""
        notional, value = self.notional(), self.equity()
        with np.errstate(all="ignore"):
            leverage = np.divide(notional, value)
        # masked in place: one result array, not np.where's second one (8 B a bar at stop())
        leverage[(notional == 0.0) | (value <= 0.0)] = math.nan
        return leverage

    def _time_series(self) -> dict:
        return {"time": seconds_to_datetime64(self.bar_times())}

    def _summarise(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError
