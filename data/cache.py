"""On-disk cache of downloaded OHLCV bars: one CSV file per (symbol, interval).

File layout (text, UTF-8)::

    # btlev-ohlcv-cache {"version": 1, "rows": 1234, "sha256": "...", ...}
    datetime,open,high,low,close,volume
    2024-01-01 00:00:00+00:00,42283.58,...

The first line is a JSON header holding the row count and the SHA-256 of
everything after it, plus the time range already asked of yfinance
(``covered_start``/``covered_end``, so a range with no bars is not asked for
again) and ``fetched_at`` (to know whether the newest bar may have been
partial).  A file whose header, checksum, row count or rows do not check out
raises :class:`CacheCorrupt`; it is never used silently.  Floats are written
with shortest round-trip repr, so values survive exactly.

The same file layout holds a funding-rate history (``kind`` "funding" in the
header, one ``rate`` column, validated as :mod:`data.funding` series); files
without a ``kind`` are OHLCV.

Writes go to a temporary file in the same folder, then ``os.replace``: a
reader sees the old file or the new one, never half of one.  The folder is
``$BTLEV_CACHE_DIR`` when set, else ``backtrader-leverage/`` in the user's cache folder
(``$XDG_CACHE_HOME``, default ``~/.cache``): never inside the installed package.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import CacheCorrupt, CacheWarning, DataError
from .validate import OHLCV_COLUMNS, validate_ohlcv

CACHE_DIR_ENV_VAR = "BTLEV_CACHE_DIR"
DEFAULT_CACHE_DIR = (Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                     / "backtrader-leverage")
CACHE_MAGIC = "# btlev-ohlcv-cache "
CACHE_VERSION = 1
CACHE_KINDS = ("ohlcv", "funding")


@dataclass(frozen=True)
class CacheEntry:
    """Cached bars and what they cover.

    frame : standard OHLCV frame (UTC index), may be empty only in memory.
    covered_start, covered_end : UTC range [start, end) already requested from
        the source; bars outside it are unknown.
    fetched_at : UTC time of the latest download merged into the entry.
    """
    frame: pd.DataFrame
    covered_start: pd.Timestamp
    covered_end: pd.Timestamp
    fetched_at: pd.Timestamp


def cache_dir(override=None) -> Path:
    """The cache folder: ``override`` if given, else $BTLEV_CACHE_DIR, else the user cache."""
    if override is not None:
        return Path(override)
    from_environment = os.environ.get(CACHE_DIR_ENV_VAR)
    return Path(from_environment) if from_environment else DEFAULT_CACHE_DIR


def cache_path(symbol: str, interval: str, directory: Path) -> Path:
    """File for one symbol and interval, e.g. ``BTC-USD_1h.csv`` (unsafe characters -> _)."""
    safe_symbol = re.sub(r"[^A-Za-z0-9._=-]", "_", symbol)
    return Path(directory) / f"{safe_symbol}_{interval}.csv"


def _corrupt(path: Path, reason: str) -> CacheCorrupt:
    return CacheCorrupt(f"cache file {path} is corrupt or truncated ({reason}); it was not used: "
                        "delete it, or download it again with --refresh (refresh=True in "
                        "load_ohlcv)")


def read_cache(path: Path, kind: str = "ohlcv") -> CacheEntry | None:
    """Read and verify a cache file; None when it does not exist. Raises CacheCorrupt.

    ``kind``: 'ohlcv' (bars) or 'funding' (a ``rate`` column; the entry's
    frame then has that one column).
    """
    path = Path(path)
    try:
        content = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None  # no cache yet, or no usable cache folder (writing will warn)
    except OSError as error:
        raise DataError(f"cache file {path} cannot be read ({error})") from None
    header_line, _, body = content.partition(b"\n")
    header_text = header_line.decode("utf-8", errors="replace")
    if not header_text.startswith(CACHE_MAGIC):
        raise _corrupt(path, "no btlev cache header on line 1")
    try:
        header = json.loads(header_text[len(CACHE_MAGIC):])
        expected_rows = int(header["rows"])
        expected_digest = str(header["sha256"])
        covered_start = pd.Timestamp(header["covered_start"])
        covered_end = pd.Timestamp(header["covered_end"])
        fetched_at = pd.Timestamp(header["fetched_at"])
    except (ValueError, KeyError, TypeError) as error:
        raise _corrupt(path, f"unreadable header: {error}") from None
    if header.get("version") != CACHE_VERSION:
        raise _corrupt(path, f"cache version {header.get('version')!r}, expected {CACHE_VERSION}")
    if header.get("kind", "ohlcv") != kind:
        raise _corrupt(path, f"holds {header.get('kind', 'ohlcv')} data, expected {kind}")
    digest = hashlib.sha256(body).hexdigest()
    if digest != expected_digest:
        raise _corrupt(path, f"checksum mismatch: header says {expected_digest[:12]}..., "
                             f"content is {digest[:12]}...")
    try:
        frame = pd.read_csv(io.BytesIO(body), index_col=0)
        frame.index = pd.to_datetime(frame.index, utc=True, format="ISO8601")
    except (ValueError, pd.errors.ParserError) as error:
        raise _corrupt(path, f"rows do not parse: {' '.join(str(error).split())}") from None
    if len(frame) != expected_rows:
        raise _corrupt(path, f"{len(frame)} rows, header says {expected_rows}")
    columns = _columns(kind)
    try:
        if kind == "funding":
            from .funding import finish_funding
            if list(frame.columns) != list(columns):
                raise DataError(f"columns {list(frame.columns)}, expected {list(columns)}")
            finish_funding(frame["rate"], f"cache file {path.name}", first_line=3)
        else:
            validate_ohlcv(frame, f"cache file {path.name}", first_line=3)
    except DataError as error:
        raise _corrupt(path, str(error)) from None
    frame = frame.loc[:, list(columns)].astype("float64")
    frame.index.name = "datetime"
    return CacheEntry(frame, covered_start, covered_end, fetched_at)


def _columns(kind: str) -> tuple[str, ...]:
    if kind not in CACHE_KINDS:
        raise ValueError(f"cache kind must be one of {CACHE_KINDS}, got {kind!r}")
    return ("rate",) if kind == "funding" else OHLCV_COLUMNS


def serialize_entry(entry: CacheEntry, symbol: str, interval: str, kind: str = "ohlcv") -> bytes:
    """The bytes of a cache file for ``entry`` (header line + CSV body)."""
    frame = entry.frame.loc[:, list(_columns(kind))]
    body = frame.to_csv(index_label="datetime", lineterminator="\n").encode("utf-8")
    header = {
        "version": CACHE_VERSION, "symbol": symbol, "interval": interval,
        "rows": len(frame), "sha256": hashlib.sha256(body).hexdigest(),
        "covered_start": entry.covered_start.isoformat(),
        "covered_end": entry.covered_end.isoformat(),
        "fetched_at": entry.fetched_at.isoformat(),
    }
    if kind != "ohlcv":
        header["kind"] = kind
    return (CACHE_MAGIC + json.dumps(header, sort_keys=True) + "\n").encode("utf-8") + body


def write_atomically(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` via a temporary file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def write_cache(path: Path, entry: CacheEntry, symbol: str, interval: str,
                kind: str = "ohlcv") -> bool:
    """Store ``entry`` atomically; on an unwritable folder warn once and return False."""
    try:
        write_atomically(path, serialize_entry(entry, symbol, interval, kind))
    except OSError as error:
        warnings.warn(f"cache folder {Path(path).parent} is not writable "
                      f"({error.strerror or error}); continuing without caching",
                      CacheWarning, stacklevel=3)
        return False
    return True
