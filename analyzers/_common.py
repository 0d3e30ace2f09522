"""Helpers shared by the analyzers: time stamps, feed names, JSON-ready records."""
from __future__ import annotations

import dataclasses
from datetime import datetime

import numpy as np

from .risk_metrics import finite_or_none

# backtrader stores datetimes as float days since 0001-01-01 (ordinal 1);
# 1970-01-01 is ordinal 719163.
_BT_ORDINAL_OF_EPOCH = 719_163.0
_SECONDS_PER_DAY = 86_400.0


def bt_array_to_seconds(bt_datetimes):
    """backtrader float datetimes -> POSIX seconds (UTC), rounded to the millisecond."""
    return np.round((np.asarray(bt_datetimes, dtype=float) - _BT_ORDINAL_OF_EPOCH) * _SECONDS_PER_DAY, 3)


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
