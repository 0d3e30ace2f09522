"""CSV import: Yahoo, yfinance ``to_csv``, Binance klines, ccxt rows, plain OHLCV.

=========== ================================================================
format      what the file looks like
=========== ================================================================
yahoo       one header row ``Date,Open,High,Low,Close,Adj Close,Volume``
            (``Datetime`` for intraday); ``Close`` is used, ``Adj Close`` ignored
yfinance    ``yf.download(...).to_csv()``: three header rows
            ``Price,Close,High,...`` / ``Ticker,BTC-USD,...`` / ``Datetime,,,``
            with columns in alphabetical order; one ticker per file
binance     kline CSV, 12 columns (open time, open, high, low, close, volume,
            close time, quote volume, trades, taker buy base, taker buy quote,
            ignore), with or without a header row; open time is epoch
            milliseconds, or microseconds in spot files from 2025 on
ccxt        ``fetch_ohlcv`` rows ``timestamp_ms,open,high,low,close,volume``
            with or without a header row
ohlcv       a header with a time column (``date``, ``datetime``, ``timestamp``,
            ``time`` or ``open_time``) and ``open,high,low,close,volume``, any
            letter case; times ISO-8601 or epoch numbers
=========== ================================================================

Epoch numbers are read per row by magnitude: below 1e11 seconds, below 1e14
milliseconds, otherwise microseconds.  Times without a zone are UTC; times
with an offset are converted to UTC.  Blank lines inside the data are
errors (they would shift every line number after them); trailing blank lines
are ignored.
"""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .frames import finalize_frame
from .validate import OHLCV_COLUMNS, check_columns

FORMATS = ("yahoo", "yfinance", "binance", "ccxt", "ohlcv")
TIME_COLUMN_NAMES = ("date", "datetime", "timestamp", "time", "open_time", "open time")
BINANCE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time",
                   "quote_volume", "trade_count", "taker_buy_base_volume",
                   "taker_buy_quote_volume", "ignore")
CCXT_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")

# Epoch magnitude thresholds (2025 in each unit: 1.7e9 s, 1.7e12 ms, 1.7e15 us).
EPOCH_MILLISECONDS_FROM = 1e11
EPOCH_MICROSECONDS_FROM = 1e14
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def load_csv(path, format: str | None = None, *, symbol: str | None = None,
             interval: str | None = None) -> pd.DataFrame:
    """Read an OHLCV CSV file into the standard frame (see ``data.frames``).

    Parameters
    ----------
    path : file path.
    format : one of ``FORMATS``, or None to detect it from the first lines.
    symbol : label for ``frame.attrs['symbol']``; default the file stem.
    interval : bar label such as ``'1h'``; default inferred from the median spacing.

    Raises DataError naming the file and the first offending line, row or column.
    """
    path = Path(path)
    source = path.name
    if not path.is_file():
        raise DataError(f"{path}: no such CSV file")
    head_lines = _read_head(path)
    if not any(line.strip() for line in head_lines):
        raise DataError(f"{source}: empty file (no header, no data rows)")
    if format is None:
        format = detect_format(head_lines, source)
    elif format not in FORMATS:
        raise DataError(f"{source}: unknown CSV format {format!r}; use one of {', '.join(FORMATS)}")
    reader = {"yahoo": _read_yahoo, "yfinance": _read_yfinance, "binance": _read_binance,
              "ccxt": _read_ccxt, "ohlcv": _read_plain}[format]
    frame, first_line = reader(path, head_lines, source)
    result = finalize_frame(frame, symbol=symbol or path.stem, source="csv", label=source,
                            interval=interval, path=str(path), first_line=first_line)
    result.attrs["csv_format"] = format
    return result


def _read_head(path: Path, line_count: int = 3) -> list[str]:
    """First lines of the file (BOM stripped), for format detection."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open   # pandas reads .gz by its suffix
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            return [handle.readline() for _ in range(line_count)]
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise DataError(f"{path.name}: cannot read as UTF-8 text ({error})") from None


def _fields(line: str) -> list[str]:
    """Comma-separated fields, stripped and lower-cased."""
    return [field.strip().strip('"').lower() for field in line.rstrip("\r\n").split(",")]


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text))


def detect_format(head_lines: list[str], source: str) -> str:
    """Name of the CSV format from the first lines (see the module table)."""
    first = _fields(head_lines[0])
    second = _fields(head_lines[1]) if len(head_lines) > 1 else []
    if first and first[0] == "price" and second and second[0] == "ticker":
        return "yfinance"
    if first and _is_number(first[0]):
        if len(first) == len(BINANCE_COLUMNS):
            return "binance"
        if len(first) == len(CCXT_COLUMNS):
            return "ccxt"
        raise DataError(f"{source} line 1: headerless row with {len(first)} columns; expected 12 "
                        "(binance klines) or 6 (ccxt timestamp,open,high,low,close,volume)")
    if "adj close" in first:
        return "yahoo"
    if len(first) == len(BINANCE_COLUMNS) and ("ignore" in first or "close_time" in first):
        return "binance"
    if any(name in first for name in TIME_COLUMN_NAMES):
        return "ohlcv"
    raise DataError(f"{source} line 1: cannot detect the CSV format from header "
                    f"{head_lines[0].strip()!r}; expected a time column "
                    f"({', '.join(TIME_COLUMN_NAMES)}) and open,high,low,close,volume, "
                    f"or pass format= one of {', '.join(FORMATS)}")


def _read_table(path: Path, source: str, **read_options) -> pd.DataFrame:
    """pd.read_csv as strings, keeping blank lines (as empty rows) so line numbers hold."""
    try:
        table = pd.read_csv(path, dtype=str, skip_blank_lines=False, keep_default_na=False,
                            encoding="utf-8-sig", **read_options)
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{source}: not a readable CSV ({' '.join(str(error).split())})") from None
    return _drop_trailing_blank_rows(table)


def _drop_trailing_blank_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Remove empty rows at the end of the file only (a trailing newline or two)."""
    if len(table) == 0:
        return table
    blank = (table.fillna("").astype(str).apply(lambda column: column.str.strip()) == "").all(axis=1)
    keep = len(table)
    while keep > 0 and blank.iloc[keep - 1]:
        keep -= 1
    return table.iloc[:keep]


def _numbers(table: pd.DataFrame, columns, source: str, first_line: int) -> pd.DataFrame:
    """Convert text columns to float64; a non-number raises DataError naming line and column.

    Empty cells become NaN (reported later by validation as NaN).
    """
    converted = {}
    for column in columns:
        text = table[column].fillna("").astype(str).str.strip()
        values = pd.to_numeric(text.where(text != "", None), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() & (text != "").to_numpy())
        if bad.size:
            position = int(bad[0])
            raise DataError(f"{source} line {first_line + position} (row {position + 1}): "
                            f"column '{column}' value {text.iloc[position]!r} is not a number")
        converted[column] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.DataFrame(converted)


def _timestamps(text_values: pd.Series, source: str, first_line: int,
                column: str) -> pd.DatetimeIndex:
    """Parse a time column: epoch numbers by magnitude, else ISO-8601; UTC result."""
    text = text_values.fillna("").astype(str).str.strip()
    blank = np.flatnonzero((text == "").to_numpy())
    if blank.size:
        position = int(blank[0])
        raise DataError(f"{source} line {first_line + position} (row {position + 1}): "
                        f"missing timestamp in column '{column}'")
    numeric = text.str.fullmatch(r"[-+]?\d+(\.\d*)?")
    if numeric.all():
        return _epoch_timestamps(text, source, first_line, column)
    stamps = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        position = int(bad[0])
        raise DataError(f"{source} line {first_line + position} (row {position + 1}): "
                        f"column '{column}' value {text.iloc[position]!r} is not an ISO-8601 "
                        "date/time or epoch number")
    return pd.DatetimeIndex(stamps)


def _epoch_timestamps(text: pd.Series, source: str, first_line: int,
                      column: str) -> pd.DatetimeIndex:
    """Epoch numbers to UTC timestamps, unit per row by magnitude (s, ms or us)."""
    values = text.astype(float).to_numpy()
    if (values < 0).any():
        position = int(np.flatnonzero(values < 0)[0])
        raise DataError(f"{source} line {first_line + position} (row {position + 1}): "
                        f"column '{column}' epoch {text.iloc[position]!r} is negative")
    nanoseconds_per_unit = np.where(values >= EPOCH_MICROSECONDS_FROM, 1e3,
                                    np.where(values >= EPOCH_MILLISECONDS_FROM, 1e6, 1e9))
    whole = text.str.split(".").str[0].astype(np.int64).to_numpy()
    fraction = values - whole
    nanoseconds = whole * nanoseconds_per_unit.astype(np.int64) + np.rint(
        fraction * nanoseconds_per_unit).astype(np.int64)
    return pd.DatetimeIndex(pd.to_datetime(nanoseconds, unit="ns", utc=True))


def _assemble(table: pd.DataFrame, time_column: str, price_columns: dict[str, str],
              source: str, first_line: int) -> tuple[pd.DataFrame, int]:
    """Build the raw OHLCV frame from text columns; price_columns maps ours -> file's."""
    if len(table) == 0:
        raise DataError(f"{source}: no data rows (empty data)")
    index = _timestamps(table[time_column], source, first_line, time_column)
    numbers = _numbers(table, list(price_columns.values()), source, first_line)
    frame = pd.DataFrame({ours: numbers[theirs].to_numpy() for ours, theirs in price_columns.items()},
                         index=index)
    return frame, first_line


def _columns_by_lower_name(table: pd.DataFrame, source: str) -> dict[str, str]:
    """Map lower-cased, stripped column names to the file's names."""
    return {str(column).strip().lower(): column for column in table.columns}


def _read_yahoo(path: Path, head_lines, source: str):
    table = _read_table(path, source)
    names = _columns_by_lower_name(table, source)
    time_column = next((names[name] for name in ("date", "datetime") if name in names), None)
    if time_column is None:
        raise DataError(f"{source}: missing column 'Date' (found: {', '.join(table.columns)})")
    check_columns(names.keys(), source)
    return _assemble(table, time_column, {column: names[column] for column in OHLCV_COLUMNS},
                     source, first_line=2)


def _read_plain(path: Path, head_lines, source: str):
    table = _read_table(path, source)
    names = _columns_by_lower_name(table, source)
    time_column = next((names[name] for name in TIME_COLUMN_NAMES if name in names), None)
    if time_column is None:
        raise DataError(f"{source}: missing time column (one of {', '.join(TIME_COLUMN_NAMES)}; "
                        f"found: {', '.join(map(str, table.columns))})")
    check_columns(names.keys(), source)
    return _assemble(table, time_column, {column: names[column] for column in OHLCV_COLUMNS},
                     source, first_line=2)


def _read_yfinance(path: Path, head_lines, source: str):
    table = _read_table(path, source, header=[0, 1], skiprows=[2])
    time_column = table.columns[0]
    tickers = sorted({str(ticker) for _, ticker in table.columns[1:]})
    if len(tickers) != 1:
        raise DataError(f"{source}: yfinance file holds {len(tickers)} tickers "
                        f"({', '.join(tickers)}); save one ticker per file")
    names = {str(price).strip().lower(): (price, ticker) for price, ticker in table.columns[1:]}
    check_columns(names.keys(), source)
    flat = pd.DataFrame({column: table[names[column]] for column in OHLCV_COLUMNS})
    flat["time"] = table[time_column]
    # Lines 1-3 are the Price / Ticker / Datetime header rows.
    return _assemble(flat, "time", {column: column for column in OHLCV_COLUMNS},
                     source, first_line=4)


def _read_headerless_or_not(path: Path, head_lines, source: str, names: tuple[str, ...]):
    """Read a file whose header row is optional; columns get ``names``."""
    has_header = not _is_number(_fields(head_lines[0])[0])
    table = _read_table(path, source, header=None, names=list(names),
                        skiprows=1 if has_header else 0, index_col=False)
    return table, 2 if has_header else 1


def _read_binance(path: Path, head_lines, source: str):
    table, first_line = _read_headerless_or_not(path, head_lines, source, BINANCE_COLUMNS)
    return _assemble(table, "open_time", {column: column for column in OHLCV_COLUMNS},
                     source, first_line)


def _read_ccxt(path: Path, head_lines, source: str):
    table, first_line = _read_headerless_or_not(path, head_lines, source, CCXT_COLUMNS)
    return _assemble(table, "timestamp", {column: column for column in OHLCV_COLUMNS},
                     source, first_line)
