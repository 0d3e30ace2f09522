"""LiquidationAnalyzer: every forced liquidation of the run, with totals."""
from __future__ import annotations

import numpy as np

from ._base import BarClockAnalyzer
from ._common import field_seconds, record_to_dict, seconds_to_datetime64


class LiquidationAnalyzer(BarClockAnalyzer):
    """Was I liquidated, and when?

    Reads the broker's public ``liquidations`` list (records appended since
    ``start()``); with a broker that has none (plain ``BackBroker``) every
    figure is 0 and ``events`` is empty.

    Params: none.

    ``get_analysis()`` returns (money in quote currency, durations in seconds)::

        {
          "count": int,              # number of liquidations
          "events": [                # in order; every field of the broker record
            {"dt", "opened_dt",      #   naive-UTC ISO strings
             "data", "side",         #   feed name, 'long' / 'short'
             "size",                 #   > 0, base units
             "entry_price", "liquidation_price", "bankruptcy_price",
             "fill_price",           #   quote per base unit
             "margin_lost", "fee", "deficit",   # >= 0, quote currency
             "time_to_liquidation"}, #   seconds from opened_dt to dt (None if unknown)
            ...],
          "margin_lost": float,      # Σ margin_lost, >= 0
          "fees": float,             # Σ fee (clearance / liquidation fees), >= 0
          "deficit": float,          # Σ deficit past bankruptcy, >= 0
          "by_data": {name: count},  # liquidations per feed
        }

    ``series()`` returns numpy arrays, one entry per liquidation, for plot
    markers: ``time`` (datetime64[ms], naive UTC), ``fill_price`` (float),
    ``side`` (+1 long, -1 short), ``data`` (array of feed names).
    """

    def start(self):
        broker = self.strategy.broker
        self._records = getattr(broker, "liquidations", None)
        self._offset = len(self._records) if self._records is not None else 0
        self._events = []
        super().start()

    def _join(self, tape) -> None:
        """No per-bar work: the records carry their own dates and are read at stop()."""

    def stop(self):
        self._poll()
        super().stop()

    def _poll(self) -> None:
        """Copy the records the broker appended since the last poll."""
        if self._records is None:
            return
        for record in self._records[self._offset + len(self._events):]:
            self._events.append(_event(record))

    def _summarise(self) -> dict:
        by_data = {}
        for event in self._events:
            by_data[event["data"]] = by_data.get(event["data"], 0) + 1
        return {
            "count": len(self._events),
            "events": [dict(event) for event in self._events],
            "margin_lost": float(sum(event["margin_lost"] or 0.0 for event in self._events)),
            "fees": float(sum(event["fee"] or 0.0 for event in self._events)),
            "deficit": float(sum(event["deficit"] or 0.0 for event in self._events)),
            "by_data": by_data,
        }

    def series(self) -> dict:
        """Per-liquidation arrays (see the class docstring)."""
        seconds = np.array([field_seconds(e["dt"]) for e in self._events], dtype=float)
        return {
            "time": seconds_to_datetime64(seconds),
            "fill_price": np.array([e["fill_price"] for e in self._events], dtype=float),
            "side": np.array([1.0 if e["side"] == "long" else -1.0 for e in self._events]),
            "data": np.array([e["data"] for e in self._events], dtype=object),
        }


def _event(record) -> dict:
    """Broker record -> event dict with ``time_to_liquidation`` in seconds."""
    event = record_to_dict(record)
    closed = field_seconds(getattr(record, "dt", None))
    opened = field_seconds(getattr(record, "opened_dt", None))
    event["time_to_liquidation"] = (closed - opened) if None not in (closed, opened) else None
    return event
