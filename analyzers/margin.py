"""MarginAnalyzer: how close each position came to its liquidation, bar by bar."""
from __future__ import annotations

import array
import math
from collections.abc import Sized

import numpy as np

from ..broker import margin as mm
from ._base import BarClockAnalyzer, as_numpy, position_getter
from ._common import array_view, bt_to_seconds, feed_name
from .risk_metrics import finite_or_none, iso_utc

#: default warning levels of the margin ratio (fractions)
DEFAULT_LEVELS = (0.5, 0.8)


class MarginAnalyzer(BarClockAnalyzer):
    """How close did I come?

    Per bar and feed, at the bar's adverse extreme (the mark's when the broker
    has a mark price for the feed; the low for a long, the
    high for a short) of the position held at the bar's close:

    - margin ratio = maintenance margin / (isolated margin + unrealized PnL),
      a fraction; 1.0 means liquidation (a bar on which the broker recorded a
      liquidation of that feed counts as exactly 1.0); values above 1 are
      clipped to 1;
    - distance = (extreme - liquidation price) / extreme for a long,
      (liquidation price - extreme) / extreme for a short, a fraction of the
      price, 0 on a liquidation bar;
    - effective leverage = Σ |size x close| / account value at the close.

    Each is NaN in the series / None in the summary when flat (and the margin
    figures when the broker has no margin API, e.g. plain ``BackBroker``; the
    effective leverage is still measured, NaN when the value is <= 0). A
    position closed by an intrabar order (flat at the close) is not measured
    on that bar.

    Params:
      - ``levels`` (default ``(0.5, 0.8)``): margin-ratio warning levels; a
        margin call is one event per level crossed upward, re-armed for each
        new position (after the feed was flat, its side flipped, or a new
        trade opened on the bar).

    ``get_analysis()`` returns (fractions, seconds, naive-UTC ISO dates)::

        {
          "worst_margin_ratio": float | None,   # highest ratio of any feed
          "worst_margin_ratio_dt": str | None,
          "worst_margin_ratio_data": str | None,
          "closest_distance": float | None,     # lowest distance of any feed
          "closest_distance_dt": str | None,
          "closest_distance_data": str | None,
          "time_above": {"0.5": s, "0.8": s},   # bars with any feed's ratio >= level
                                                # x bar interval
          "margin_calls": [{"dt", "data", "level", "ratio"}, ...],
          "mean_effective_leverage": float | None,  # over bars with a position
          "max_effective_leverage": float | None,
          "bar_interval": float | None,         # seconds
          "per_data": {name: {"worst_margin_ratio", "worst_margin_ratio_dt",
                              "closest_distance", "closest_distance_dt",
                              "time_above"}},
        }

    ``series()`` returns numpy arrays, one entry per bar: ``time``
    (datetime64[ms]), ``effective_leverage``, and dicts feed name -> float
    array ``margin_ratio`` and ``distance`` (NaN when flat).
    """

    params = (("levels", DEFAULT_LEVELS),)

    #: measure isolated MarginBroker feeds at stop() from runs of position states (the same
    #: numbers as bar by bar, ~3 us a bar cheaper); False: bar by bar (the tests compare both)
    defer_measurement = True

    def start(self):
        broker = self.strategy.broker
        self._levels = tuple(float(level) for level in self.p.levels)
        self._has_margin_api = all(hasattr(broker, name) for name in (
            "position_margin", "maintenance_margin", "liquidation_price"))
        records = getattr(broker, "liquidations", None)
        self._records = records
        self._seen_records = len(records) if records is not None else 0
        self._names = [feed_name(data, i) for i, data in enumerate(self.strategy.datas)]
        # levels still armed per feed, ascending (each level fires once per position)
        self._all_levels = tuple(sorted(set(self._levels)))
        self._armed = {name: self._all_levels for name in self._names}
        self._previous_side = {name: 0 for name in self._names}
        self._opened_now = set()
        self._calls = []
        self._call_order = []       # (bar, feed position) of each call: deferred feeds replay late
        self._bar = -1              # the bar _record_bar saw last (the quiet bars skip it)
        self._ledger_length = -1    # len(broker.ledger) at the last bar (deferred feeds)
        super().start()

    def _join(self, tape) -> None:
        super()._join(tape)
        broker = self.strategy.broker
        # per feed: (data, name, its length line, low line, high line, and the buffers its
        # ratio and distance are appended to when it is measured bar by bar)
        self._feeds = [(data, name, data.lines[0], data.lines.low, data.lines.high,
                        array.array("d"), array.array("d"))
                       for data, name in zip(self.strategy.datas, self._names)]
        self._stored = {feed[1]: (feed[5], feed[6]) for feed in self._feeds}
        self._replayed = False      # the deferred feeds' margin calls, found at stop()
        self._getposition = position_getter(broker)
        # feeds valued on a mark price (MarginBroker.set_mark_price): their extreme is the mark's
        has_mark = getattr(broker, "has_mark_price", None)
        self._marked = {id(data) for data in self.strategy.datas if has_mark and has_mark(data)}
        self._mark_bar = getattr(broker, "mark_bar", None)
        if self._has_margin_api:
            # MarginBroker answers all three in one call; other margin brokers one by one
            self._margin_figures = getattr(broker, "margin_figures", None) or (
                lambda data, price: (broker.position_margin(data),
                                     broker.maintenance_margin(data, price=price),
                                     broker.liquidation_price(data)))
        # isolated MarginBroker, trade-price feeds in unbounded buffers: measured at stop()
        deferrable = self.defer_measurement and self._has_margin_api and \
            hasattr(broker, "margin_figures") and \
            isinstance(getattr(broker, "ledger", None), Sized) and \
            getattr(getattr(broker, "p", None), "margin_mode", None) == "isolated"
        self._ledger = broker.ledger if deferrable else None
        # len(ledger), called every bar: MarginBroker's Ledger hands out a builtin for it
        self._ledger_size = getattr(self._ledger, "length", None) or \
            (self._ledger.__len__ if deferrable else None)
        self._deferred = {}
        for position, (data, name, _length, low_line, high_line, _r, _d) in enumerate(self._feeds):
            if deferrable and id(data) not in self._marked and all(
                    line.mode == line.UnBounded and isinstance(line.array, array.array)
                    for line in (low_line, high_line)):
                self._deferred[name] = _DeferredFeed(position)
        # every feed deferred: the usual bar takes _quiet_bar's short path
        self._all_deferred = bool(self._feeds) and len(self._deferred) == len(self._feeds)
        self._deferred_lines = [(self._deferred[name], low_line)
                                for _data, name, _length_line, low_line, *_ in self._feeds] \
            if self._all_deferred else []
        tape.hooks.append(self._quiet_bar if self._all_deferred else self._record_bar)

    def notify_trade(self, trade):
        if not trade.justopened:
            return
        # identity, not ==: backtrader lines overload == to build line operations
        for data, name in zip(self.strategy.datas, self._names):
            if data is trade.data:
                self._opened_now.add(name)

    # -- per bar (called by the strategy's BarTape) -----------------------
    def _record_bar(self, clock: float, _value: float, _notional: float) -> None:
        self._bar = self._tape.bars - 1     # the tape counted this bar before its hooks
        records = self._records
        liquidated = () if records is None or len(records) == self._seen_records else \
            self._new_liquidations()
        deferred_feeds = self._deferred
        if deferred_feeds:
            self._ledger_length = self._ledger_size()   # what _quiet_bar compares next bar
        for data, name, length_line, low_line, high_line, ratios, distances in self._feeds:
            deferred = deferred_feeds.get(name) if deferred_feeds else None
            if deferred is not None and self._defer_bar(deferred, data, name, liquidated,
                                                        length_line, low_line):
                continue                             # measured at stop()
            if name in liquidated:
                ratio, distance, side = 1.0, 0.0, 0
            elif not length_line.lencount:
                ratio, distance, side = math.nan, math.nan, 0
            else:
                ratio, distance, side = self._measure(data, low_line, high_line)
            ratios.append(ratio)
            distances.append(distance)
            armed = self._armed[name]
            # _margin_calls changes nothing unless one of these holds (the usual bar: none)
            if side != self._previous_side[name] or self._opened_now or \
                    (armed and ratio >= armed[0]) or (not side and armed is not self._all_levels):
                self._margin_calls(name, side, ratio, clock, self._bar)
        if self._opened_now:
            self._opened_now = set()

    def _quiet_bar(self, clock: float, value: float, notional: float) -> None:
        """The tape hook while every feed is deferred; the usual bar: nothing moved (no
        ledger entry, liquidation or opened trade) and every feed's buffer index went on
        by one with the bars, so each run goes on and nothing is written. Else
        ``_record_bar``."""
        if not self._all_deferred or self._ledger_size() != self._ledger_length or \
                self._opened_now or len(self._records) != self._seen_records:
            return self._record_bar(clock, value, notional)
        bars = self._tape.bars
        for deferred, low_line in self._deferred_lines:
            if low_line._idx - bars != deferred.quiet_offset:
                return self._record_bar(clock, value, notional)
        return None

    def _defer_bar(self, deferred, data, name, liquidated, length_line, low_line) -> bool:
        """Note this bar's position state for a deferred feed; False: measure it now instead.

        Between two changes of the position (size, entry price) or of the wallet
        (a ledger entry: the isolated margin only moves with one, MarginBroker's
        funding and fills included) the margin, liquidation price and brackets
        are fixed, so each bar's figures follow from its low/high at stop().
        A feed whose buffer index does not move by one a bar (replay, a feed
        that paused) is measured bar by bar from then on.
        """
        bar = self._bar
        started = length_line.lencount
        if started:
            offset = low_line._idx - (bar + 1)      # against the tape's count of bars
            if deferred.offset is not None and offset != deferred.offset:
                self._materialize(name)
                return False
            deferred.offset = offset
        if name in liquidated:
            state = ("liquidated", bar)
        elif not started:
            state = None
        else:
            position = self._getposition(data)
            size = position.size
            state = (size, position.price, self._ledger_size()) if size else None
        # a liquidation is a one-bar run, and a feed not started has no index yet: the
        # next bar looks again
        deferred.quiet_offset = deferred.offset if started and (
            state is None or state[0] != "liquidated") else None
        if state != deferred.state:
            deferred.state = state
            deferred.start(bar, state, data, self.strategy.broker, low_line)
        if name in self._opened_now:
            deferred.note_opened(bar)
        return True

    def _materialize(self, name: str) -> None:
        """Write a deferred feed's bars so far into its buffers (and its margin calls); from
        here on it is measured bar by bar."""
        deferred = self._deferred.get(name)
        if deferred is None:
            return
        self._all_deferred, self._deferred_lines = False, []
        ratios, distances = self._stored[name]
        # this bar is not noted yet: the bars before it
        for _first, _stop, ratio, distance in self._deferred_chunks(name, self._bar, replay=True):
            ratios.frombytes(ratio.tobytes())
            distances.frombytes(distance.tobytes())
        del self._deferred[name]

    def _deferred_chunks(self, name: str, bars: int, replay: bool):
        """(first, stop, ratio, distance) of a deferred feed, for its first ``bars`` bars in
        chunks.

        The figures take ~20 arrays of the bars' length (indices, kinds,
        extremes, brackets, ...); all at once they were ~86 B a bar of peak
        RSS at stop() (16 MiB at 200k one-minute bars). Every value is per
        bar and the bars come in increasing order, so the chunks change no
        result. ``replay``: also fire the feed's margin calls, bar by bar in
        order (once: at the switch to bar by bar, or at stop()).
        """
        deferred = self._deferred[name]
        if not bars:
            return
        feed = self._feeds[deferred.position]
        tiers = self.strategy.broker.tiers_for(feed[0])
        first_level = self._all_levels[0] if self._all_levels else math.inf
        previous_side = self._previous_side[name]   # before the replay below changes it
        opened_now = self._opened_now
        for first in range(0, bars, _CHUNK_BARS):
            stop = min(bars, first + _CHUNK_BARS)
            ratio, distance, side = deferred.figures(first, stop, feed, tiers)
            if replay:
                previous = np.concatenate(([previous_side], side[:-1]))
                previous_side = side[-1]
                candidates = np.flatnonzero((ratio >= first_level) | (side != previous)) + first
                opened = deferred.opened_between(first, stop)
                bars_to_replay = sorted(set(candidates.tolist()) | opened)
                # their clocks, copied out at once (a view a bar cost ~2 us a bar replayed)
                clocks = self.bar_clocks()[np.array(bars_to_replay, dtype=np.int64)].tolist()
                for bar, clock in zip(bars_to_replay, clocks):
                    self._opened_now = {name} if bar in opened else set()
                    self._margin_calls(name, int(side[bar - first]), float(ratio[bar - first]),
                                       clock, bar)
                self._opened_now = opened_now
            yield first, stop, ratio, distance

    def _new_liquidations(self):
        """Feed names liquidated on this bar (records appended since the last bar)."""
        records = self._records
        if records is None or len(records) == self._seen_records:
            return ()
        fresh = records[self._seen_records:]
        self._seen_records = len(records)
        return {record.data for record in fresh}

    def _measure(self, data, low_line, high_line) -> tuple[float, float, int]:
        """(margin ratio, distance, side) of ``data`` on this bar; NaN when flat."""
        position = self._getposition(data)
        size = position.size
        if not size:
            return math.nan, math.nan, 0
        side = 1 if size > 0 else -1
        if not self._has_margin_api:
            return math.nan, math.nan, side
        if id(data) in self._marked:
            mark = self._mark_bar(data)
            extreme = mark.low if side > 0 else mark.high
        else:
            line = low_line if side > 0 else high_line
            extreme = line.array[line._idx]
        # the same operations, on arrays, in _ratio_and_distance
        margin, maintenance, liquidation_price = self._margin_figures(data, extreme)
        equity = margin + size * (extreme - position.price)
        ratio = 1.0 if equity <= maintenance else maintenance / equity
        if liquidation_price is None or extreme <= 0:
            distance = math.nan
        else:
            distance = side * (extreme - liquidation_price) / extreme
        return ratio, distance, side

    def _margin_calls(self, name: str, side: int, ratio: float, clock: float, bar: int) -> None:
        """Fire armed levels crossed by ``ratio``; re-arm when a new position starts or ends."""
        if name in self._opened_now or (side and side != self._previous_side[name]):
            self._armed[name] = self._all_levels
        armed = self._armed[name]
        if armed and ratio >= armed[0]:   # False for NaN
            fired = tuple(level for level in armed if ratio >= level)
            for level in fired:
                self._calls.append({"dt": iso_utc(bt_to_seconds(clock)), "data": name,
                                    "level": level, "ratio": float(ratio)})
                self._call_order.append((bar, self._names.index(name)))
            self._armed[name] = tuple(level for level in armed if level not in fired)
        if side == 0:
            self._armed[name] = self._all_levels
        self._previous_side[name] = side

    # -- results ----------------------------------------------------------
    def _ordered_calls(self) -> list:
        """Margin calls by bar, then feed (deferred feeds add theirs at stop())."""
        order = sorted(range(len(self._calls)), key=lambda i: self._call_order[i])
        return [dict(self._calls[i]) for i in order]

    def _summarise(self) -> dict:
        """The analysis, a chunk of bars at a time: a deferred feed's figures are made
        a chunk at a time and never all held (its margin calls are found on the way,
        once), a bar-by-bar feed's are read from its buffers."""
        interval = self.bar_interval()
        bars = self._tape.bars
        replay = not self._replayed and bars > 0
        deferred_chunks = {name: self._deferred_chunks(name, bars, replay=replay)
                           for name in self._deferred}
        if replay:
            self._replayed = True
        extremes = {name: _FeedExtremes(self._levels) for name in self._names}
        above_any = _LevelCounts(self._levels)
        for first in range(0, bars, _CHUNK_BARS):
            stop = min(bars, first + _CHUNK_BARS)
            ratios = []
            for name in self._names:
                if name in deferred_chunks:
                    _first, _stop, ratio, distance = next(deferred_chunks[name])
                else:
                    stored_ratio, stored_distance = self._stored[name]
                    ratio = as_numpy(stored_ratio)[first:stop]
                    distance = as_numpy(stored_distance)[first:stop]
                extremes[name].add(first, ratio, distance)
                ratios.append(ratio)
            above_any.add(_highest_ratio(ratios))
        per_data = {name: extremes[name].summary(self.bar_time, interval)
                    for name in self._names}
        worst_name = _pick(per_data, "worst_margin_ratio", max)
        closest_name = _pick(per_data, "closest_distance", min)
        leverage = self.leverage_summary()
        return {
            "worst_margin_ratio": per_data[worst_name]["worst_margin_ratio"] if worst_name else None,
            "worst_margin_ratio_dt": per_data[worst_name]["worst_margin_ratio_dt"] if worst_name else None,
            "worst_margin_ratio_data": worst_name,
            "closest_distance": per_data[closest_name]["closest_distance"] if closest_name else None,
            "closest_distance_dt": per_data[closest_name]["closest_distance_dt"] if closest_name else None,
            "closest_distance_data": closest_name,
            "time_above": above_any.seconds(interval),
            "margin_calls": self._ordered_calls(),
            "mean_effective_leverage": finite_or_none(leverage["mean"]),
            "max_effective_leverage": finite_or_none(leverage["max"]),
            "bar_interval": interval,
            "per_data": per_data,
        }

    def series(self) -> dict:
        """Per-bar arrays (see the class docstring)."""
        out = self._time_series()
        out["effective_leverage"] = self.effective_leverage()
        out["margin_ratio"] = {name: self._ratio(name) for name in self._names}
        out["distance"] = {name: self._distance(name) for name in self._names}
        return out

    def _figures(self, name: str, which: int) -> np.ndarray:
        """Feed ``name``'s ratio (0) or distance (1) of every bar, a new array."""
        if name in self._deferred:
            pieces = [chunk[2 + which] for chunk in self._deferred_chunks(name, self._tape.bars,
                                                                         replay=False)]
            return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.float64)
        return as_numpy(self._stored[name][which], copy=True)

    def _ratio(self, name: str) -> np.ndarray:
        """Feed ``name``'s margin ratio per bar (a new array)."""
        return self._figures(name, 0)

    def _distance(self, name: str) -> np.ndarray:
        """Feed ``name``'s distance to liquidation per bar (a new array)."""
        return self._figures(name, 1)


class _LevelCounts:
    """Bars with a ratio >= each level, counted a chunk at a time (NaN never counts)."""

    def __init__(self, levels):
        self.levels = levels
        self.counts = [0] * len(levels)

    def add(self, ratio: np.ndarray) -> None:
        for position, level in enumerate(self.levels):
            self.counts[position] += int(np.count_nonzero(ratio >= level))

    def seconds(self, interval) -> dict:
        """{"0.5": seconds, ...}: the counts x bar interval (0 if the interval is unknown)."""
        return {_level_key(level): float(count) * (interval or 0.0)
                for level, count in zip(self.levels, self.counts)}


class _FeedExtremes:
    """One feed's worst ratio and closest distance (first bar on ties) and its time above
    each level, a chunk of bars at a time: the numbers of the whole arrays' argmax, argmin
    and counts."""

    def __init__(self, levels):
        self.worst = self.closest = None        # (value, bar)
        self.above = _LevelCounts(levels)

    def add(self, first: int, ratio: np.ndarray, distance: np.ndarray) -> None:
        has_ratio = np.isfinite(ratio)
        if has_ratio.any():
            bar = int(np.argmax(np.where(has_ratio, ratio, -np.inf)))
            value = float(ratio[bar])
            if self.worst is None or value > self.worst[0]:
                self.worst = (value, first + bar)
        has_distance = np.isfinite(distance)
        if has_distance.any():
            bar = int(np.argmin(np.where(has_distance, distance, np.inf)))
            value = float(distance[bar])
            if self.closest is None or value < self.closest[0]:
                self.closest = (value, first + bar)
        self.above.add(np.where(has_ratio, ratio, -1.0))

    def summary(self, time_at, interval) -> dict:
        """The feed's figures; ``time_at(i)``: POSIX seconds of bar i."""
        worst, closest = self.worst, self.closest
        return {
            "worst_margin_ratio": worst[0] if worst else None,
            "worst_margin_ratio_dt": iso_utc(time_at(worst[1])) if worst else None,
            "closest_distance": closest[0] if closest else None,
            "closest_distance_dt": iso_utc(time_at(closest[1])) if closest else None,
            "time_above": self.above.seconds(interval),
        }


def _level_key(level: float) -> str:
    return repr(float(level))


def _highest_ratio(ratios: list) -> np.ndarray:
    """Per bar, the highest ratio of any feed, -1.0 where no feed has one (all NaN).

    Feed by feed into one array (np.fmax, in place): the same values, in the same
    order, as ``np.nanmax(np.where(isnan, -1, stacked), axis=0)`` without the
    stacked copy of every feed's ratios (8 B a bar and feed at stop()).
    """
    highest = np.empty(0)
    for position, ratio in enumerate(ratios):
        clean = np.where(np.isnan(ratio), -1.0, ratio)
        if position == 0:
            highest = clean
        else:
            np.fmax(highest, clean, out=highest)
    return highest


def _pick(per_data: dict, key: str, choose) -> str | None:
    """Feed name with the max/min ``key`` (first on ties), None when all are None."""
    named = [(value[key], name) for name, value in per_data.items() if value[key] is not None]
    if not named:
        return None
    best = choose(value for value, _ in named)
    return next(name for value, name in named if value == best)


#: bars measured at a time when a deferred feed's figures are computed (see _materialize):
#: ~30 temporaries of this length, 0.5 MB at stop()
_CHUNK_BARS = 1 << 11


#: kinds of a deferred feed's run
_FLAT, _LIQUIDATED, _OPEN = 0, 1, 2


class _DeferredFeed:
    """A feed's position states as runs of bars; per-bar margin figures come at stop().

    A run starts at bar ``starts[i]`` with a kind: open (size, entry price,
    isolated margin, liquidation price, buffer index of the low/high lines at
    that bar), liquidated (the one bar a liquidation was recorded) or flat
    (or the feed not started): the same figures bar by bar as
    ``MarginAnalyzer._measure`` gives, computed with numpy. The runs are kept
    by column (array.array): ~50 B a run, where a tuple of seven with its
    float objects was ~290 B (a run every fill and funding payment).
    """

    __slots__ = ("position", "state", "offset", "quiet_offset", "starts", "kinds", "sizes",
                 "entries", "margins", "liquidations", "indices", "opened_bars")

    def __init__(self, position: int):
        self.position = position        # the feed's place in the strategy's datas
        self.state = ()                 # the current run's key (() = none yet)
        # the low line's buffer index minus the tape's count of bars (it holds while the
        # index goes on by one a bar); quiet_offset: the same, None while the next bar must
        # be looked at (a liquidation bar, the feed not started)
        self.offset = None
        self.quiet_offset = None
        self.starts = array.array("q")          # first bar of each run
        self.kinds = array.array("b")           # _FLAT, _LIQUIDATED or _OPEN
        self.sizes = array.array("d")           # signed base units (open runs; else 0)
        self.entries = array.array("d")         # entry price, quote per base
        self.margins = array.array("d")         # isolated margin, quote
        self.liquidations = array.array("d")    # liquidation price (NaN: none)
        self.indices = array.array("q")         # low/high buffer index at the run's first bar
        self.opened_bars = array.array("q")     # bars on which a trade of the feed opened

    def start(self, bar, state, data, broker, low_line) -> None:
        """Open a run at ``bar`` for ``state`` (see ``MarginAnalyzer._defer_bar``); ``broker``:
        the isolated MarginBroker, asked for the position's margin and liquidation price
        (not ``margin_figures``: the maintenance margin it adds is made at stop(), and its
        tier lookup was most of a funding bar's cost)."""
        if state is None or state[0] == "liquidated":
            kind, size, entry, margin, liquidation, index = \
                _FLAT if state is None else _LIQUIDATED, 0.0, 0.0, 0.0, math.nan, 0
        else:
            size, entry, _ledger_length = state
            margin, liquidation = broker.position_margin(data), broker.liquidation_price(data)
            kind, index = _OPEN, low_line._idx
            liquidation = math.nan if liquidation is None else liquidation
        self.starts.append(bar)
        self.kinds.append(kind)
        self.sizes.append(size)
        self.entries.append(entry)
        self.margins.append(margin)
        self.liquidations.append(liquidation)
        self.indices.append(index)

    def note_opened(self, bar: int) -> None:
        """A trade of the feed opened on ``bar`` (bars come in increasing order)."""
        opened = self.opened_bars
        if not opened or opened[-1] != bar:
            opened.append(bar)

    def opened_between(self, first: int, stop: int) -> set:
        """The bars in [first, stop) on which a trade of the feed opened."""
        opened = array_view(self.opened_bars, np.int64)
        return set(opened[(opened >= first) & (opened < stop)].tolist())

    def figures(self, first: int, stop: int, feed, tiers
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(margin ratio, distance, side) per bar for bars [``first``, ``stop``): float,
        float, int."""
        _data, _name, _length, low_line, high_line, _r, _d = feed
        count = stop - first
        ratio = np.full(count, math.nan)
        distance = np.full(count, math.nan)
        side = np.zeros(count, dtype=np.int64)
        # the runs that cover these bars: the last one begun by ``first``, up to ``stop``
        run_starts = array_view(self.starts, np.int64)
        lowest = max(int(np.searchsorted(run_starts, first, side="right")) - 1, 0)
        highest = int(np.searchsorted(run_starts, stop, side="left"))
        if highest <= lowest:
            return ratio, distance, side
        starts = run_starts[lowest:highest]
        lengths = np.diff(np.append(np.maximum(starts - first, 0), count))
        run_of_bar = np.repeat(np.arange(highest - lowest), lengths)
        kinds = array_view(self.kinds, np.int8)[lowest:highest]  # one per run, then per bar
        liquidated = (kinds == _LIQUIDATED)[run_of_bar]
        ratio[liquidated] = 1.0
        distance[liquidated] = 0.0
        open_bars = np.flatnonzero((kinds == _OPEN)[run_of_bar])   # from ``first``
        if not open_bars.size:
            return ratio, distance, side
        of_run = run_of_bar[open_bars]

        def column(values):
            return array_view(values, np.float64)[lowest:highest][of_run]

        size = column(self.sizes)
        sign = np.where(size > 0, 1, -1)
        # the buffer index of each bar: the run's first index + bars since the run began
        index = array_view(self.indices, np.int64)[lowest:highest][of_run] + \
            (open_bars + first - starts[of_run])
        lows = np.frombuffer(low_line.array, dtype=np.float64)
        highs = np.frombuffer(high_line.array, dtype=np.float64)
        extremes = np.where(sign > 0, lows[index], highs[index])
        ratio[open_bars], distance[open_bars] = _ratio_and_distance(
            sign, size, column(self.entries), column(self.margins),
            column(self.liquidations), extremes, tiers)
        side[open_bars] = sign
        return ratio, distance, side


def _ratio_and_distance(side, size, entry_price, margin, liquidation_price, extremes, tiers):
    """``MarginAnalyzer._measure`` on arrays, one value per bar of an open position.

    side +1/-1 (int), size signed base units, entry and liquidation price (NaN:
    none) quote per base, isolated margin quote, the bar's adverse extreme quote
    per base: float64 arrays of one length. The same floating-point operations
    in the same order as ``_measure`` (and ``broker.margin.position_maintenance_margin``),
    so every value is bit-identical to the bar-by-bar one.
    """
    notional = np.abs(size) * extremes
    bracket = mm.tier_indices_for_notionals(tiers, notional)
    rates = np.array([tier.maintenance_margin_rate for tier in tiers])[bracket]
    amounts = np.array([tier.maintenance_amount for tier in tiers])[bracket]
    maintenance = mm.maintenance_margin(notional, rates, amounts)
    equity = margin + size * (extremes - entry_price)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(equity <= maintenance, 1.0, maintenance / equity)
        distance = np.where(np.isnan(liquidation_price) | (extremes <= 0), math.nan,
                            side * (extremes - liquidation_price) / extremes)
    return ratio, distance
