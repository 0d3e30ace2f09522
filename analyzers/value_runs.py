"""The account value after every bar, kept as runs of the broker's state (issue 15).

While the wallet and the open positions (side, size, entry price, isolated
margin) stay the same, a margin broker's value at each bar follows from the
feeds' close lines: ``wallet + Σ (margin + unrealized_pnl(side, |size|, entry,
close))``, feed after feed (``MarginBroker.value_terms``). The bar tape keeps
that state once a run (~50 B a fill or a cash flow) where the value itself cost
8 B a bar of peak memory (16 MB at 2M bars), and reads the values back at
stop().

Nothing is assumed: each bar, the value the broker gave is compared with the
one the run predicts, and a run starts where they differ (the broker's state is
read again). A value the state cannot give back (a mark price, a deposit
waiting) is stored as it is. So every value read back is the broker's own float.
"""
from __future__ import annotations

import array
import math

import numpy as np

from ..broker.margin import unrealized_pnl
from ._common import array_view

#: bars read back at a time (a dozen temporaries of this length)
_PIECE = 2048
#: stored values after which, when they are more than 1/8 of the bars, predicting stops
_STORED_BEFORE_GIVING_UP = 64


def _same_float(predicted: float, value: float) -> bool:
    """Whether two floats are the same bits (NaN never is; 0.0 and -0.0 differ)."""
    return predicted == value and \
        (value != 0.0 or math.copysign(1.0, predicted) == math.copysign(1.0, value))


class ValueRuns:
    """``broker.getvalue()`` of each bar, as runs of the broker's state plus stored values.

    ``broker`` has ``value_terms()`` and ``cash``; ``feeds`` are (data, close
    line) in the tape's order, each close line keeping every bar's close (an
    unbounded buffer, not replayed). A run is its first bar, the wallet and a
    set of positions; a position set (read again when a new wallet alone does
    not give the value back: a fill, or funding in isolated margin, which moves
    the margin) is, per open
    position, its feed, margin, side, |size|, entry price and the offset of
    the feed's close-line index from the bar (constant through the run).
    """

    __slots__ = ("broker", "slots", "closes", "starts", "wallets", "position_sets",
                 "signature_ids", "signatures", "margins", "sides", "sizes", "entries",
                 "offsets", "stored_starts", "stored_first", "stored", "next_stored_bar",
                 "predicting", "wallet", "terms", "_arrays")

    def __init__(self, broker, feeds):
        self.broker = broker
        self.slots = {data: slot for slot, (data, _close_line) in enumerate(feeds)}
        self.closes = [close_line for _data, close_line in feeds]
        # one entry a run
        self.starts = array.array("q")
        self.wallets = array.array("d")
        self.position_sets = array.array("q")
        # one entry a position set: its feeds in the order they are added, and per feed
        # (zeros where the feed has no position in it) margin, side, |size|, entry, offset
        self.signature_ids = array.array("q")
        self.signatures = {}                    # tuple of slots -> its id
        self.margins = [array.array("d") for _feed in feeds]
        self.sides = [array.array("b") for _feed in feeds]
        self.sizes = [array.array("d") for _feed in feeds]
        self.entries = [array.array("d") for _feed in feeds]
        self.offsets = [array.array("q") for _feed in feeds]
        # stored values, in blocks of consecutive bars: first bar, index of its first value
        self.stored_starts = array.array("q")
        self.stored_first = array.array("q")
        self.stored = array.array("d")
        self.next_stored_bar = -1
        self.predicting = True
        # the current run, as BarTape.record reads it: the wallet, and per position
        # (close buffer, close index - bar, margin, side, |size|, entry)
        self.wallet = math.nan          # no run yet: every prediction misses
        self.terms = ()
        self._arrays = None

    def check(self, bar: int, value: float) -> None:
        """Take ``value``, the broker's value of ``bar`` (bars in order): nothing is kept
        when the current run gives it back, bit for bit."""
        if not self.predicting:
            self.store(bar, value)
        elif not _same_float(self.predict(bar), value):
            self.miss(bar, value)       # the broker's state changed (or cannot give it)

    def miss(self, bar: int, value: float) -> None:
        """``value`` of ``bar`` is not the current run's: start a run from the broker's state
        now, and store ``value`` if that run does not give it back either."""
        self._arrays = None
        if self.position_sets:
            # a cash flow that leaves the positions as they were (funding in cross margin)
            self.wallet = self.broker.cash
            if _same_float(self.predict(bar), value):
                self._begin(bar, self.wallet)
                return
        state = self.broker.value_terms()
        terms = None
        if state is not None:
            wallet, positions = state
            terms = []
            for data, margin, side, size, entry in positions:
                slot = self.slots.get(data)
                if slot is None:            # a feed the strategy does not see
                    terms = None
                    break
                close_line = self.closes[slot]
                terms.append((slot, close_line._idx - bar, margin, side, size, entry))
        if terms is None:
            wallet, terms = math.nan, []
        self._add_position_set(terms)
        self.wallet = wallet
        self._begin(bar, wallet)
        if not _same_float(self.predict(bar), value):
            self.store(bar, value)

    def predict(self, bar: int) -> float:
        """The current run's value of ``bar`` (NaN when a close it reads is not there)."""
        predicted = self.wallet
        try:
            for close, offset, margin, side, size, entry in self.terms:
                predicted += margin + unrealized_pnl(side, size, entry, close[bar + offset])
        except IndexError:
            return math.nan
        return predicted

    def _begin(self, bar: int, wallet: float) -> None:
        """A run from ``bar`` on: ``wallet`` and the last position set."""
        self.starts.append(bar)
        self.wallets.append(wallet)
        self.position_sets.append(len(self.signature_ids) - 1)

    def _add_position_set(self, terms: list) -> None:
        signature = tuple(slot for slot, *_rest in terms)
        self.signature_ids.append(self.signatures.setdefault(signature, len(self.signatures)))
        held = {slot: term for slot, *term in terms}
        for slot in range(len(self.closes)):
            offset, margin, side, size, entry = held.get(slot, (0, 0.0, 0, 0.0, 0.0))
            self.margins[slot].append(margin)
            self.sides[slot].append(side)
            self.sizes[slot].append(size)
            self.entries[slot].append(entry)
            self.offsets[slot].append(offset)
        self.terms = tuple((self.closes[slot].array, offset, margin, side, size, entry)
                           for slot, offset, margin, side, size, entry in terms)

    def store(self, bar: int, value: float) -> None:
        """Keep ``value`` of ``bar`` as it is (bars come in order)."""
        self._arrays = None
        if bar != self.next_stored_bar:
            self.stored_starts.append(bar)
            self.stored_first.append(len(self.stored))
        self.stored.append(value)
        self.next_stored_bar = bar + 1
        if self.predicting and len(self.stored) > _STORED_BEFORE_GIVING_UP and \
                8 * len(self.stored) > bar:
            self.predicting = False     # the state seldom gives the value back: store them

    def values_at(self, bars: np.ndarray) -> np.ndarray:
        """The value of each bar in ``bars`` (int64, each one recorded), a new float64 array.

        Per run, the same float operations as :meth:`predict` (and the broker's
        ``_get_value``), elementwise; stored values replace the run's. Made
        ``_PIECE`` bars at a time: the temporaries stay small at stop().
        """
        bars = np.asarray(bars, dtype=np.int64)
        if bars.size <= _PIECE:
            return self._values_of(bars)
        values = np.empty(bars.size)
        for first in range(0, bars.size, _PIECE):
            values[first:first + _PIECE] = self._values_of(bars[first:first + _PIECE])
        return values

    def _values_of(self, bars: np.ndarray) -> np.ndarray:
        (starts, wallets, position_sets, signature_ids, margins, sides, sizes, entries, offsets,
         stored_starts, stored_first, stored) = self._columns()
        run = np.searchsorted(starts, bars, side="right") - 1
        values = wallets[run]
        held = position_sets[run]
        held_signatures = signature_ids[held]
        for signature, number in self.signatures.items():
            if not signature:
                continue
            on = held_signatures == number
            if not on.any():
                continue
            sets, at = held[on], bars[on]
            values_on = values[on]
            for slot in signature:
                close = np.frombuffer(self.closes[slot].array, dtype=np.float64)
                values_on += margins[slot][sets] + unrealized_pnl(
                    sides[slot][sets], sizes[slot][sets], entries[slot][sets],
                    close[at + offsets[slot][sets]])
            values[on] = values_on
        if stored.size:
            block = np.searchsorted(stored_starts, bars, side="right") - 1
            inside = block >= 0
            position = np.where(inside, stored_first[block] + (bars - stored_starts[block]), 0)
            block_end = np.append(stored_first[1:], stored.size)
            inside &= position < block_end[block]
            values[inside] = stored[position[inside]]
        return values

    def _columns(self):
        """numpy views of the runs, position sets and stored values (made again after a change)."""
        if self._arrays is None:
            self._arrays = (
                array_view(self.starts, np.int64), array_view(self.wallets, np.float64),
                array_view(self.position_sets, np.int64), array_view(self.signature_ids, np.int64),
                [array_view(column, np.float64) for column in self.margins],
                [array_view(column, np.int8) for column in self.sides],
                [array_view(column, np.float64) for column in self.sizes],
                [array_view(column, np.float64) for column in self.entries],
                [array_view(column, np.int64) for column in self.offsets],
                array_view(self.stored_starts, np.int64), array_view(self.stored_first, np.int64),
                array_view(self.stored, np.float64))
        return self._arrays

    def run_count(self) -> int:
        """Runs begun so far."""
        return len(self.starts)
