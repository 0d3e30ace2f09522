"""Helpers shared by the analyzers: time stamps, feed names, JSON-ready records."""
from __future__ import annotations

import dataclasses
from datetime import datetime

import backtrader as bt
import numpy as np

from .risk_metrics import finite_or_none

# backtrader stores datetimes as float days since 0001-01-01 (ordinal 1);
# 1970-01-01 is ordinal 719163.
_BT_ORDINAL_OF_EPOCH = 719_163.0
_SECONDS_PER_DAY = 86_400.0


def bt_array_to_seconds(bt_datetimes, out=None):
    """backtrader float datetimes -> POSIX seconds (UTC), rounded to the millisecond.

    Written into ``out`` (a float64 array of the same shape) when given. The
    steps run in place on the one result array: the same operations, in the
    same order, as ``np.round((days - epoch) * 86400, 3)``, without its two
    temporaries (16 B a bar of peak memory at an analyzer's stop()).
    """
    days = np.asarray(bt_datetimes, dtype=float)
    seconds = np.subtract(days, _BT_ORDINAL_OF_EPOCH, out=np.empty_like(days) if out is None else out)
    seconds *= _SECONDS_PER_DAY
    return np.round(seconds, 3, out=seconds)


def array_view(values, dtype) -> np.ndarray:
    """An array.array as a numpy view (empty without touching the buffer when it is empty).

    A view pins the buffer (it cannot grow while the view lives)."""
    return np.frombuffer(values, dtype=dtype) if len(values) else np.empty(0, dtype=dtype)


def median_of_counts(counts) -> float:
    """``np.median`` of the values ``counts`` maps to how often each occurs (finite floats).

    The middle value of the sorted values, or with an even number of them the
    mean of the two middle ones, ``(a + b) / 2``: what ``np.median`` computes.
    """
    total = sum(counts.values())
    low_rank, high_rank = (total - 1) // 2, total // 2     # 0-based ranks of the middle
    low = high = None
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if low is None and seen > low_rank:
            low = value
        if seen > high_rank:
            high = value
            break
    return float(low) if low_rank == high_rank else (low + high) / 2


def bt_to_seconds(bt_datetime: float) -> float:
    """One backtrader float datetime -> POSIX seconds (UTC), rounded to the millisecond."""
    return round((bt_datetime - _BT_ORDINAL_OF_EPOCH) * _SECONDS_PER_DAY, 3)


def seconds_to_datetime64(seconds: np.ndarray) -> np.ndarray:
    """POSIX seconds -> numpy ``datetime64[ms]`` (naive UTC), NaN -> NaT."""
    seconds = np.asarray(seconds, dtype=float)
    out = np.full(seconds.shape, np.datetime64("NaT"), dtype="datetime64[ms]")
    ok = np.isfinite(seconds)
    out[ok] = np.round(seconds[ok] * 1000.0).astype(np.int64).astype("datetime64[ms]")
    return out


def datetime_to_seconds(value: datetime) -> float:
    """Naive-UTC ``datetime`` -> POSIX seconds."""
    return (value - datetime(1970, 1, 1)).total_seconds()


def feed_name(data, index: int) -> str:
    """The feed's name, ``'data0'``, ``'data1'``, ... when unnamed (the broker's rule)."""
    return getattr(data, "_name", "") or f"data{index}"


def record_to_dict(record) -> dict:
    """A broker event record as a JSON-ready dict (datetimes as ISO strings).

    Uses the record's own ``to_dict()`` when present (the broker's contract),
    else its dataclass fields; NaN/inf floats become None either way.
    """
    if hasattr(record, "to_dict"):
        raw = dict(record.to_dict())
    elif dataclasses.is_dataclass(record):
        raw = dataclasses.asdict(record)
    else:
        raw = dict(vars(record))
    return {key: _json_ready(value) for key, value in raw.items()}


def _json_ready(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return finite_or_none(value)
    return value


def field_seconds(value) -> float | None:
    """A record field holding a datetime (or ISO string) -> POSIX seconds."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        return value.timestamp()
    return datetime_to_seconds(value)


def no_op(_cash=None, _value=None, _fund_value=None, _fund_shares=None) -> None:
    """Stand-in for a per-bar backtrader hook an analyzer has no use for.

    It takes what the hooks are given (nothing for ``_next``; cash and value for
    ``_notify_cashvalue``; those and the fund value and shares for ``_notify_fund``)
    as plain parameters: a ``*args`` function builds a tuple on every call (~50 ns
    against ~33 ns a call, eleven calls a bar with four analyzers).
    """


def skip_idle_bar_hooks(analyzer: bt.Analyzer, step=no_op, idle_next=bt.Analyzer.next) -> None:
    """Make backtrader's per-bar calls into ``analyzer`` no-ops where it does nothing per bar.

    Every bar, backtrader calls each analyzer's ``_next`` (or ``_prenext``/``_nextstart``),
    ``_notify_cashvalue`` and ``_notify_fund``; each loops over the analyzer's children and
    calls the public hook. For an analyzer without children whose class keeps
    ``idle_next`` as its ``next`` and ``bt.Analyzer``'s empty ``prenext``/``nextstart``,
    the bar calls go straight to ``step`` (a no-op unless given); where it keeps the empty
    ``notify_cashvalue`` or ``notify_fund``, those go to a no-op. Order and trade
    notifications are untouched. Call it from ``start()`` (children exist by then).
    """
    if analyzer._children:
        return
    own = type(analyzer)
    if own.next is idle_next and own.prenext is bt.Analyzer.prenext and \
            own.nextstart is bt.Analyzer.nextstart:
        analyzer._next = analyzer._prenext = analyzer._nextstart = step
    if own.notify_cashvalue is bt.Analyzer.notify_cashvalue:
        analyzer._notify_cashvalue = no_op
    if own.notify_fund is bt.Analyzer.notify_fund:
        analyzer._notify_fund = no_op
