"""NegativeBalanceAnalyzer: deficits past bankruptcy and the time spent in debt."""
from __future__ import annotations

import numpy as np

from ._base import BarClockAnalyzer, as_numpy
from ._common import bt_to_seconds, field_seconds
from .risk_metrics import finite_or_none, iso_utc


class NegativeBalanceAnalyzer(BarClockAnalyzer):
    """What would have put me in debt?

    With the margin broker (it has ``negative_balance_episodes``): its
    episodes of a negative *wallet* balance ('carry' policy) and the deficits
    its insurance fund absorbed ('absorb' policy). With any other broker
    (plain ``BackBroker``): episodes where the account *value* closed a bar
    below zero, measured by this analyzer.

    Params: none.

    ``get_analysis()`` returns (quote currency, seconds, naive-UTC ISO dates)::

        {
          "policy": "absorb" | "carry" | None,  # broker.p.negative_balance, None if n/a
          "balance_source": "wallet" | "value", # what "balance" means below
          "absorbed_deficit": float,   # Σ liquidation deficits paid by the insurance
                                       # fund ('absorb'), >= 0
          "carried_deficit": float,    # Σ liquidation deficits charged to the wallet
                                       # ('carry'), >= 0
          "insurance_fund": float | None,  # broker.insurance_fund at the end
          "episodes": [{"start", "end",    # end None while still open
                        "duration",        # seconds; an open one lasts to the end of
                                           # the last bar; None if the interval is unknown
                        "lowest_balance"}, ...],   # < 0
          "count": int,                # number of episodes
          "worst_balance": float,      # min(0, lowest balance seen), <= 0
          "time_below_zero": float | None,  # Σ episode durations, seconds
        }

    ``series()`` returns ``time`` (datetime64[ms]) and ``balance`` (float,
    the wallet balance or account value at each bar's close).
    """

    def start(self):
        broker = self.strategy.broker
        self._broker_episodes = getattr(broker, "negative_balance_episodes", None)
        self._episode_offset = len(self._broker_episodes) if self._broker_episodes is not None else 0
        records = getattr(broker, "liquidations", None)
        self._records = records
        self._record_offset = len(records) if records is not None else 0
        params = getattr(broker, "p", None)
        self._policy = getattr(params, "negative_balance", None)
        super().start()

    def _join(self, tape) -> None:
        super()._join(tape)
        if self._broker_episodes is not None:
            tape.wants_cash = True

    def _balances(self, copy: bool = False) -> np.ndarray:
        """The wallet (margin broker) or the account value per bar; a view unless ``copy``."""
        return self.tape_column("cash", copy) if self._broker_episodes is not None else \
            self.equity(copy)

    def _negative_balances_lowest(self) -> list[float]:
        """The lowest balance below 0 of the bars, as a one-item list (empty when none is).

        The wallet is read from its steps (each step's value is the balance of
        the bars it spans); the value a chunk of bars at a time: no dense
        array of every bar (8 B a bar of peak memory at stop(), issue 15).
        """
        if self._broker_episodes is not None:
            steps = self._tape.cash
            values = as_numpy(steps.values) if self._tape.wants_cash else np.empty(0)
            below = values[values < 0]
            return [float(below.min())] if below.size else []
        lowest = None
        for first, stop in self._tape.chunks():
            values = self._tape.value_chunk(first, stop)
            below = values[values < 0]
            if below.size:
                low = float(below.min())
                lowest = low if lowest is None or low < lowest else lowest
        return [] if lowest is None else [lowest]

    def _own_episodes(self) -> list[tuple]:
        """Episodes of value < 0 (non-margin brokers): (start, end or None, lowest).

        start/end are backtrader float datetimes: the first bar below zero and
        the first bar back at or above zero (NaN counts as not below).
        """
        values = self.equity()
        below = values < 0
        if not below.any():
            return []
        clocks = self.bar_clocks()
        edges = np.diff(np.concatenate(([0], below.astype(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        return [(float(clocks[first]), float(clocks[stop]) if stop < values.size else None,
                 float(values[first:stop].min()))
                for first, stop in zip(starts, ends)]

    def _episodes(self) -> list[dict]:
        interval = self.bar_interval()
        bars = len(self.bar_clocks())
        # only the last bar's time is needed: not the whole bar_times() array
        end_of_run = self.bar_time(bars - 1) + interval if bars and interval is not None else None
        if self._broker_episodes is not None:
            raw = [(field_seconds(e.start), field_seconds(e.end), e.lowest_balance)
                   for e in self._broker_episodes[self._episode_offset:]]
        else:
            raw = [(bt_to_seconds(start), None if end is None else bt_to_seconds(end), lowest)
                   for start, end, lowest in self._own_episodes()]
        episodes = []
        for start, end, lowest in raw:
            finish = end if end is not None else end_of_run
            known = start is not None and finish is not None
            episodes.append({
                "start": iso_utc(start),
                "end": iso_utc(end),
                "duration": float(finish - start) if known else None,
                "lowest_balance": finite_or_none(lowest),
            })
        return episodes

    def _summarise(self) -> dict:
        broker = self.strategy.broker
        deficits = [float(getattr(r, "deficit", 0.0) or 0.0)
                    for r in (self._records[self._record_offset:] if self._records is not None else [])]
        absorbed = sum(deficits) if self._policy == "absorb" else 0.0
        carried = sum(deficits) if self._policy == "carry" else 0.0
        episodes = self._episodes()
        lows = [e["lowest_balance"] for e in episodes if e["lowest_balance"] is not None]
        lowest = min([0.0, *lows, *self._negative_balances_lowest()])
        durations = [e["duration"] for e in episodes]
        fund = getattr(broker, "insurance_fund", None)
        return {
            "policy": self._policy,
            "balance_source": "wallet" if self._broker_episodes is not None else "value",
            "absorbed_deficit": float(absorbed),
            "carried_deficit": float(carried),
            "insurance_fund": finite_or_none(fund) if fund is not None else None,
            "episodes": episodes,
            "count": len(episodes),
            "worst_balance": float(lowest),
            "time_below_zero": None if None in durations else float(sum(durations)),
        }

    def series(self) -> dict:
        """Per-bar arrays (see the class docstring)."""
        out = self._time_series()
        out["balance"] = self._balances(copy=True)
        return out


