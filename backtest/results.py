"""The output folder of a run or sweep, written atomically and read back.

Files in DIR
------------
``metrics.json``   list of metrics rows (see :mod:`backtest.metrics`), one per setting
``metrics.csv``    the same rows, columns in :data:`backtest.metrics.ROW_KEYS` order
``series.npz``     compressed per-bar series the report plots (layout below)
``summary.json``   the safe leverage and best settings (:mod:`backtest.safe_leverage`)
``liquidations.csv``  every liquidation of every setting, one row each (columns below)
``trades.csv``     every trade (flat to flat) of every setting, one row each
``report.html``    the risk report (rendered by :mod:`report`, written here)

``liquidations.csv`` columns: ``leverage``, ``setting`` (row number in metrics.json),
``time`` (bar of the liquidation, ISO UTC), ``opened`` (when the position opened),
``feed``, ``side``, ``size`` [base], ``entry_price``, ``liquidation_price``,
``bankruptcy_price``, ``fill_price`` [quote per base], ``margin_lost`` (the isolated margin
gone, the fee included), ``fee`` (clearance fee, part of margin_lost), ``deficit`` (loss
past the bankruptcy price) [quote], ``time_to_liquidation`` [s].

``trades.csv`` columns: ``leverage``, ``setting``, ``feed``, ``side``, ``size`` (largest
held) [base], ``entry_time``, ``entry_price``, ``exit_time``, ``exit_price`` (empty while
open), ``exit_reason`` (signal, stop, limit, liquidation, open), ``pnl`` (price pnl),
``fees``, ``net_pnl`` = pnl - fees [quote].

``series.npz`` layout: ``time`` (bar open times of the clock, int64 ns since epoch, UTC:
the frame's bars, or the union of the feeds' bar times), ``close`` (float64, quote
currency, the first feed's), ``feed_names`` (unicode, the feeds in order) and
``close_by_feed`` (float64, feeds x clock steps, NaN where a feed has no bar) once; then
for each row ``i`` that did not fail ``{i}/equity``, ``{i}/drawdown``,
``{i}/margin_ratio`` (float32, per bar, first feed), ``{i}/margin_ratio_by_feed``
(float32, feeds x clock steps) and ``{i}/liquidation_time`` (int64 ns),
``{i}/liquidation_price`` (float64), ``{i}/liquidation_side`` (int8, +1 long / -1 short),
``{i}/liquidation_feed`` (int16, index into ``feed_names``), one entry per liquidation.
A folder written before the multi-feed layout (no ``feed_names``) reads as one feed.

``manifest.json``  written last: ``{"format": 1, "files": {name: {"bytes", "sha256"}}}`` of
                   every other file of the set; a folder whose files do not match it is
                   refused by :func:`read_outputs`.

All or nothing: the whole set is written into a hidden staging folder beside DIR
(``.DIR.staging-*``) and switched into place with one rename (Linux ``renameat2``
``RENAME_EXCHANGE``; elsewhere two renames, the old set restored if the second fails).
At every instant DIR holds the old complete set or the new one. Staging left by a killed
process is removed by the next write. Nothing is created before the write itself, and a
folder holding files this program did not write is refused, never replaced.
"""
from __future__ import annotations

import csv
import ctypes
import errno
import hashlib
import io
import json
import math
import os
import secrets
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .feeds import as_frames, clock, close_on_clock, feed_names, utc_nanoseconds
from .metrics import ROW_KEYS

METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
SERIES_NPZ = "series.npz"
SUMMARY_JSON = "summary.json"
LIQUIDATIONS_CSV = "liquidations.csv"
TRADES_CSV = "trades.csv"
REPORT_HTML = "report.html"
MANIFEST_JSON = "manifest.json"
MANIFEST_FORMAT = 1
# Names the run, sweep and ruin commands write: a folder holding anything else (beyond the
# names its manifest lists) is not replaced.
KNOWN_OUTPUTS = (METRICS_JSON, METRICS_CSV, SERIES_NPZ, SUMMARY_JSON, LIQUIDATIONS_CSV,
                 TRADES_CSV, REPORT_HTML, MANIFEST_JSON, "ruin.json", "ruin.csv", "ruin.npz")

LIQUIDATION_CSV_COLUMNS = ("leverage", "setting", "time", "opened", "feed", "side", "size",
                           "entry_price", "liquidation_price", "bankruptcy_price", "fill_price",
                           "margin_lost", "fee", "deficit", "time_to_liquidation")
TRADE_CSV_COLUMNS = ("leverage", "setting", "feed", "side", "size", "entry_time", "entry_price",
                     "exit_time", "exit_price", "exit_reason", "pnl", "fees", "net_pnl")
_TEXT_CSV_COLUMNS = {"time", "opened", "feed", "side", "entry_time", "exit_time", "exit_reason"}

PER_BAR_KEYS = ("equity", "drawdown", "margin_ratio", "margin_ratio_by_feed")
EVENT_KEYS = ("liquidation_time", "liquidation_price", "liquidation_side", "liquidation_feed")
#: keys a folder written before several feeds lacks (split_bundle fills them in)
FEED_KEYS = ("margin_ratio_by_feed", "liquidation_feed")


class OutputError(OSError):
    """The output folder cannot be created or written (one-line message)."""


def prepare_output_dir(out_dir) -> Path:
    """Check, creating nothing, that ``out_dir`` can receive a new output set.

    Raises :class:`OutputError` when the folder (or the nearest existing folder above it)
    cannot be written, when it is a file, or when it holds files this program did not
    write (they would be lost when the new set replaces the folder).
    """
    path = Path(out_dir)
    target = _resolved(path)
    if not target.name:
        raise OutputError(f"cannot write to output folder {path}: give a folder below it")
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"cannot write to output folder {path}: it is a file")
        foreign = _foreign_entries(target)
        if foreign:
            listed = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise OutputError(f"output folder {path} holds files this program did not write "
                              f"({listed}): give a new or empty folder, or an earlier output "
                              "folder of run/sweep")
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    try:
        if not ancestor.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{ancestor} is not a folder")
        os.rmdir(tempfile.mkdtemp(dir=ancestor, prefix=f".{target.name}.probe-"))
    except OSError as error:
        raise OutputError(f"cannot write to output folder {path}: "
                          f"{error.strerror or error}") from None
    return path


def series_bundle(frame, results) -> dict:
    """Arrays for ``series.npz`` from the frame(s) and the results (rows in order)."""
    frames = as_frames(frame)
    closes = close_on_clock(frames)
    bundle = {"time": utc_nanoseconds(clock(frames)),
              "close": closes[0],
              "feed_names": np.array(feed_names(frames), dtype=str),
              "close_by_feed": closes}
    for number, result in enumerate(results):
        if not result.series:
            continue
        for key in PER_BAR_KEYS:
            bundle[f"{number}/{key}"] = np.asarray(result.series[key], dtype=np.float32)
        for key in EVENT_KEYS:
            bundle[f"{number}/{key}"] = np.asarray(result.series[key])
        if "funding" in result.series:       # cumulative funding paid (report's funding section)
            bundle[f"{number}/funding"] = np.asarray(result.series["funding"], dtype=np.float32)
    return bundle


def split_bundle(bundle: dict, rows: list) -> tuple[dict, list]:
    """(``{"time", "close", "feed_names", "close_by_feed"}``, per-row dicts of arrays or
    None for failed rows); a one-feed folder of the older layout gets the feed keys filled."""
    close = bundle["close"]
    names = [str(name) for name in bundle.get("feed_names", np.array([""]))]
    price = {"time": bundle["time"], "close": close, "feed_names": names,
             "close_by_feed": bundle.get("close_by_feed", np.asarray(close)[np.newaxis, :])}
    per_row = []
    for number in range(len(rows)):
        if f"{number}/equity" not in bundle:
            per_row.append(None)
            continue
        series = {key: bundle[f"{number}/{key}"] for key in PER_BAR_KEYS + EVENT_KEYS
                  if f"{number}/{key}" in bundle}
        series.setdefault("margin_ratio_by_feed", np.asarray(series["margin_ratio"])[np.newaxis])
        series.setdefault("liquidation_feed",
                          np.zeros(len(series["liquidation_time"]), dtype=np.int16))
        per_row.append(series)
    return price, per_row


def event_records(rows: list, results) -> tuple[list, list]:
    """(liquidations.csv rows, trades.csv rows) of the results, with leverage and setting."""
    liquidations, trades = [], []
    for number, (row, result) in enumerate(zip(rows, results)):
        events = getattr(result, "events", None) or {}
        for event in events.get("liquidations") or []:
            liquidations.append({
                "leverage": row["leverage"], "setting": number, "time": event.get("dt"),
                "opened": event.get("opened_dt"), "feed": event.get("data"),
                **{key: event.get(key) for key in LIQUIDATION_CSV_COLUMNS[5:]}})
        for trade in events.get("trades") or []:
            fees = trade.get("fees") or 0.0
            trades.append({
                "leverage": row["leverage"], "setting": number, "feed": trade.get("data"),
                "side": trade.get("side"), "size": trade.get("size"),
                "entry_time": trade.get("entry_dt"), "entry_price": trade.get("entry_price"),
                "exit_time": trade.get("exit_dt"), "exit_price": trade.get("exit_price"),
                "exit_reason": trade.get("exit_reason"), "pnl": trade.get("pnl"),
                "fees": fees, "net_pnl": (trade.get("pnl") or 0.0) - fees})
    return liquidations, trades


def write_outputs(out_dir, rows: list, bundle: dict, html: str | None, *,
                  summary: dict | None = None, liquidations: list | None = None,
                  trades: list | None = None) -> dict:
    """Write metrics.json, metrics.csv, series.npz, summary.json, liquidations.csv,
    trades.csv and report.html (each if given) atomically, all or none.

    Returns ``{file name: Path}`` of what was written.
    """
    payloads = {
        METRICS_JSON: json.dumps(rows, indent=2, allow_nan=False).encode() + b"\n",
        METRICS_CSV: _csv_bytes(rows),
        SERIES_NPZ: _npz_bytes(bundle),
    }
    if summary is not None:
        payloads[SUMMARY_JSON] = json.dumps(summary, indent=2, allow_nan=False).encode() + b"\n"
    if liquidations is not None:
        payloads[LIQUIDATIONS_CSV] = _records_csv_bytes(liquidations, LIQUIDATION_CSV_COLUMNS)
    if trades is not None:
        payloads[TRADES_CSV] = _records_csv_bytes(trades, TRADE_CSV_COLUMNS)
    if html is not None:
        payloads[REPORT_HTML] = html.encode("utf-8")
    return write_files_atomically(out_dir, payloads, replace_all=True)


def write_files_atomically(out_dir, payloads: dict, *, replace_all: bool = False) -> dict:
    """Make ``out_dir`` the set ``payloads`` (``{name: bytes}``) in one step, with a manifest.

    ``replace_all`` False keeps the folder's other output files (``report DIR`` replaces
    report.html only); True makes the set exactly ``payloads``. Returns ``{name: Path}`` of
    the set. Raises :class:`OutputError`; then the folder is unchanged.
    """
    path = Path(out_dir)
    target = _resolved(path)
    prepare_output_dir(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(target)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))
    except OSError as error:
        raise OutputError(f"cannot write to output folder {path}: "
                          f"{error.strerror or error}") from None
    try:
        os.chmod(staging, _folder_mode(target))
        kept = {} if replace_all else _kept_files(target, payloads)
        for name, source in kept.items():
            _link_or_copy(source, staging / name)
        for name, payload in payloads.items():
            _write_file(staging / name, payload)
        names = sorted(set(kept) | set(payloads))
        _write_file(staging / MANIFEST_JSON, _manifest_bytes(staging, names))  # last
        _fsync_folder(staging)
        _switch_into_place(staging, target)
        _fsync_folder(target.parent)
    except OSError as error:
        raise OutputError(f"cannot write to output folder {path}: "
                          f"{error.strerror or error}") from None
    finally:
        if staging.exists():  # the old set after an exchange, or a set never switched in
            shutil.rmtree(staging, ignore_errors=True)
    return {name: path / name for name in names}


def verify_manifest(out_dir, skip=()) -> dict:
    """Check every file listed in ``out_dir/manifest.json`` (size and SHA-256).

    ``skip``: names not checked (``report DIR`` rebuilds report.html). Returns the
    manifest's ``files`` mapping; raises :class:`OutputError` naming the first problem.
    """
    path = Path(out_dir)
    manifest_path = path / MANIFEST_JSON
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{path} has no {MANIFEST_JSON}: not a complete output folder (its "
                          "write was interrupted, or an older version wrote it); rerun run "
                          "or sweep") from None
    except (OSError, ValueError) as error:
        raise OutputError(f"{manifest_path} is damaged ({' '.join(str(error).split())}); "
                          "rerun run or sweep") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(name, str) and Path(name).name == name and name != MANIFEST_JSON
            and isinstance(entry, dict) and isinstance(entry.get("bytes"), int)
            and isinstance(entry.get("sha256"), str) for name, entry in files.items()):
        raise OutputError(f"{manifest_path} is damaged (no valid 'files' list); rerun run or "
                          "sweep")
    for name, entry in files.items():
        if name in skip:
            continue
        file_path = path / name
        if not file_path.is_file():
            raise OutputError(f"{file_path} is missing ({MANIFEST_JSON} lists it): the folder "
                              "is incomplete; rerun run or sweep")
        size, digest = _size_and_digest(file_path)
        if size != entry["bytes"] or digest != entry["sha256"]:
            raise OutputError(f"{file_path} does not match {MANIFEST_JSON} (changed after the "
                              "run, or copied from another run); rerun run or sweep")
    return files


#: row keys added after the first output folders were written, with the value they then had
ROW_DEFAULTS = {"margin_mode": "isolated", "feed_tiers": "{}", "orders_rejected": None,
                "rejections": "{}", "trades": None, "all_orders_rejected": False,
                **{f"{key}_reason": None for key in ("cagr", "sharpe", "sortino", "calmar",
                                                     "var_95", "cvar_95")}}


def read_outputs(out_dir) -> tuple[list, dict]:
    """(rows from metrics.json, arrays from series.npz) of a finished run's folder.

    Trusts nothing: the files must match the manifest, parse, have the right types and
    agree with each other (row count, bars, data range, final value = last equity).
    Raises :class:`OutputError` naming the file and the problem (one line).
    """
    path = Path(out_dir)
    metrics_path, series_path = path / METRICS_JSON, path / SERIES_NPZ
    for required in (metrics_path, series_path):
        if not required.is_file():
            raise OutputError(f"{path} is not a backtest output folder: {required} is missing "
                              "(create one with 'run_backtest.py run' or 'sweep')")
    listed = verify_manifest(path, skip=(REPORT_HTML,))
    for required in (METRICS_JSON, SERIES_NPZ):
        if required not in listed:
            raise OutputError(f"{path / MANIFEST_JSON} does not list {required}: not an output "
                              "folder of run or sweep")
    rows = _read_rows(metrics_path)
    bundle = _read_bundle(series_path)
    _check_against_series(rows, bundle, metrics_path, series_path)
    return rows, bundle


# -- reading helpers ------------------------------------------------------------------------
_NUMBER_KEYS = (
    "final_value", "total_return", "cagr", "max_drawdown", "volatility", "sharpe", "sortino",
    "calmar", "var_95", "cvar_95", "margin_lost", "liquidation_fees", "deficit",
    "absorbed_deficit", "worst_balance", "time_to_first_liquidation", "worst_margin_ratio",
    "closest_distance", "cash", "commission", "maintenance_margin_rate", "liquidation_fee_rate",
    "seconds")
_WHOLE_NUMBER_KEYS = ("liquidations", "margin_calls", "entries_refused", "bars")
_BOOL_KEYS = ("ruined", "synthetic")
_TEXT_KEYS = ("error", "tiers", "first_liquidation_dt", "negative_balance", "strategy_params",
              "symbol", "source", "interval", "data_start", "data_end")


def _read_rows(metrics_path: Path) -> list:
    try:
        rows = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError
        raise OutputError(f"{metrics_path} is not valid JSON "
                          f"({' '.join(str(error).split())})") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise OutputError(f"{metrics_path} is not a list of metrics rows")
    if not rows:
        raise OutputError(f"{metrics_path} has no rows")
    for number, row in enumerate(rows):
        for key, value in ROW_DEFAULTS.items():  # keys newer than some output folders
            row.setdefault(key, value)
        missing = [key for key in ROW_KEYS if key not in row]
        if missing:
            raise OutputError(f"{metrics_path}: row {number} lacks {', '.join(missing[:3])}"
                              f"{' ...' if len(missing) > 3 else ''}; was it written by "
                              "this version of run_backtest.py?")
        problem = _type_problem(row)
        if problem:
            raise OutputError(f"{metrics_path}: row {number}: {problem}")
    return rows


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _type_problem(row: dict) -> str | None:
    """What is wrong with the types of a metrics row, or None."""
    leverage = row.get("leverage")
    if not (_is_number(leverage) and leverage > 0):
        return f"leverage must be a number > 0, got {leverage!r}"
    if not isinstance(row.get("strategy"), str):
        return f"strategy must be text, got {row.get('strategy')!r}"
    for key in _NUMBER_KEYS:
        if key in row and row[key] is not None and not _is_number(row[key]):
            return f"{key} must be a number or null, got {row[key]!r}"
    for key in _WHOLE_NUMBER_KEYS:
        value = row.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
            return f"{key} must be a whole number or null, got {value!r}"
    for key in _BOOL_KEYS:
        if row.get(key) is not None and not isinstance(row[key], bool):
            return f"{key} must be true, false or null, got {row[key]!r}"
    for key in _TEXT_KEYS:
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"{key} must be text or null, got {row[key]!r}"
    return None


def _read_bundle(series_path: Path) -> dict:
    try:
        with np.load(series_path, allow_pickle=False) as archive:
            bundle = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise OutputError(f"{series_path} is damaged ({type(error).__name__}: "
                          f"{' '.join(str(error).split())}); rerun run or sweep") from None
    if not isinstance(bundle, dict):
        raise OutputError(f"{series_path} is damaged (not an .npz archive); rerun run or sweep")
    time, close = bundle.get("time"), bundle.get("close")
    if time is None or close is None:
        raise OutputError(f"{series_path} has no 'time'/'close' arrays")
    if time.ndim != 1 or close.ndim != 1 or time.dtype != np.int64 or len(time) != len(close) \
            or len(time) == 0:
        raise OutputError(f"{series_path} is damaged: 'time' and 'close' must be 1-D arrays of "
                          f"one length (got {time.shape} {time.dtype}, {close.shape})")
    return bundle


def _series_rows(bundle: dict) -> set[int]:
    numbers = set()
    for key in bundle:
        head, sep, _ = key.partition("/")
        if sep and head.isdigit():
            numbers.add(int(head))
    return numbers


def _check_against_series(rows, bundle, metrics_path, series_path) -> None:
    """Rows and series from the same run: row count, bars, data range, final value."""
    with_series = _series_rows(bundle)
    count = len(rows)
    if with_series and max(with_series) >= count:
        raise OutputError(f"{metrics_path} has {count} row{'s' if count != 1 else ''} but "
                          f"{series_path} holds series for {max(with_series) + 1} (files from "
                          "different runs?)")
    bars = len(bundle["time"])
    first, last = (pd.Timestamp(int(bundle["time"][index]), tz="UTC").isoformat()
                   for index in (0, -1))
    for number, row in enumerate(rows):
        where = f"{metrics_path}: row {number}:"
        if row["bars"] is not None and row["bars"] != bars:
            raise OutputError(f"{where} bars {row['bars']} but {series_path} has {bars} bars")
        for key, expected in (("data_start", first), ("data_end", last)):
            if row[key] is not None and row[key] != expected:
                raise OutputError(f"{where} {key} {row[key]} but {series_path} "
                                  f"{'starts' if key == 'data_start' else 'ends'} at {expected}")
        has_series = number in with_series
        if has_series == (row["error"] is not None):
            state = "has" if has_series else "has no"
            raise OutputError(f"{where} {'failed' if row['error'] else 'ran'} but {series_path} "
                              f"{state} series for it (files from different runs?)")
        if has_series:
            _check_row_series(number, row, bundle, bars, where, series_path)


def _check_row_series(number, row, bundle, bars, where, series_path) -> None:
    arrays = {}
    for key in PER_BAR_KEYS + EVENT_KEYS:
        array = bundle.get(f"{number}/{key}")
        if array is None and key in FEED_KEYS:        # a folder from before several feeds
            continue
        if key == "margin_ratio_by_feed":             # feeds x bars
            if array.ndim != 2 or array.shape[1] != bars:
                raise OutputError(f"{series_path} is damaged: {number}/{key} is not "
                                  f"(feeds x {bars} bars)")
            continue
        if array is None or array.ndim != 1:
            raise OutputError(f"{series_path} is damaged: no 1-D array {number}/{key}")
        arrays[key] = array
    if any(len(arrays[key]) != bars for key in PER_BAR_KEYS if key in arrays):
        raise OutputError(f"{series_path} is damaged: the series of row {number} do not have "
                          f"{bars} bars")
    if len({len(arrays[key]) for key in EVENT_KEYS if key in arrays}) != 1:
        raise OutputError(f"{series_path} is damaged: the liquidation arrays of row {number} "
                          "differ in length")
    final_value, last_equity = row["final_value"], float(arrays["equity"][-1])
    if final_value is not None and math.isfinite(last_equity):
        scale = max(abs(final_value), abs(row["cash"] or 0.0), 1.0)
        if abs(final_value - last_equity) > 1e-5 * scale:  # equity is stored as float32
            raise OutputError(f"{where} final_value {final_value:,.2f} but its equity series "
                              f"in {series_path} ends at {last_equity:,.2f} (files from "
                              "different runs?)")


# -- writing helpers ------------------------------------------------------------------------
def _resolved(path: Path) -> Path:
    """Absolute path with symlinks resolved (a symlinked DIR keeps pointing at the new set)."""
    return Path(os.path.realpath(path))


def _manifest_names(folder: Path) -> set[str]:
    try:
        files = json.loads((folder / MANIFEST_JSON).read_text(encoding="utf-8")).get("files")
        return {name for name in files if isinstance(name, str)}
    except (OSError, ValueError, AttributeError, TypeError):
        return set()


def _foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that no write of this program made (leftover temp files aside)."""
    ours = set(KNOWN_OUTPUTS) | _manifest_names(folder)
    return sorted(entry.name for entry in folder.iterdir()
                  if entry.name not in ours
                  and not (entry.name.startswith(".") and entry.name.endswith(".tmp"))
                  and not entry.name.startswith(".write-test-"))


def _kept_files(target: Path, payloads: dict) -> dict:
    """The current set's files that ``payloads`` does not replace (name -> path)."""
    if not target.is_dir():
        return {}
    ours = set(KNOWN_OUTPUTS) | _manifest_names(target)
    return {entry.name: entry for entry in target.iterdir()
            if entry.name in ours and entry.name not in payloads
            and entry.name != MANIFEST_JSON and entry.is_file()}


def _clean_stale(target: Path) -> None:
    """Remove staging left by a killed write; restore a complete set if DIR went missing."""
    prefix = f".{target.name}."
    stale = sorted((entry for entry in target.parent.iterdir()
                    if entry.name.startswith(prefix) and
                    entry.name[len(prefix):].startswith(("staging-", "retired-", "probe-"))),
                   key=lambda entry: "retired-" in entry.name)  # newer (staging) sets first
    for entry in stale:
        if not target.exists() and entry.is_dir() and "probe-" not in entry.name:
            try:
                verify_manifest(entry)
            except OutputError:
                pass
            else:
                os.rename(entry, target)  # the interrupted switch's complete set
                continue
        shutil.rmtree(entry, ignore_errors=True)


def _folder_mode(target: Path) -> int:
    if target.is_dir():
        return stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def _write_file(path: Path, payload: bytes) -> None:
    # os.open with mode 0o666 honours the umask (mkstemp would force 0o600)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(handle, "wb") as stream:
        stream.write(payload)
        stream.flush()
        os.fsync(stream.fileno())


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _fsync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _size_and_digest(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _manifest_bytes(folder: Path, names) -> bytes:
    files = {}
    for name in names:
        size, digest = _size_and_digest(folder / name)
        files[name] = {"bytes": size, "sha256": digest}
    return json.dumps({"format": MANIFEST_FORMAT, "files": files}, indent=2,
                      sort_keys=True).encode() + b"\n"


class _NoExchange(Exception):
    """The platform or file system cannot swap two folders atomically."""


_RENAME_EXCHANGE = 2   # linux/fs.h
_AT_FDCWD = -100


def _rename_exchange(first: Path, second: Path) -> None:
    """Swap two folders atomically (Linux renameat2 RENAME_EXCHANGE); _NoExchange if unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        raise _NoExchange() from None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                 _RENAME_EXCHANGE) == 0:
        return
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        raise _NoExchange()
    raise OSError(code, os.strerror(code), str(second))


def _switch_into_place(staging: Path, target: Path) -> None:
    """Make ``target`` the staged set in one step; afterwards ``staging`` holds the old one."""
    if not target.exists():
        os.rename(staging, target)
        return
    try:
        _rename_exchange(staging, target)
        return
    except _NoExchange:
        pass
    retired = target.parent / f".{target.name}.retired-{secrets.token_hex(6)}"
    os.rename(target, retired)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def read_report_inputs(out_dir) -> dict:
    """Everything the report draws from a folder: ``rows``, ``bundle`` (as
    :func:`read_outputs`), ``summary`` (None when the folder has no summary.json),
    ``liquidations`` and ``trades`` (lists of dicts; empty when the files are missing)."""
    rows, bundle = read_outputs(out_dir)
    path = Path(out_dir)
    try:
        summary = json.loads((path / SUMMARY_JSON).read_text()) \
            if (path / SUMMARY_JSON).exists() else None
        liquidations = _read_records(path / LIQUIDATIONS_CSV)
        trades = _read_records(path / TRADES_CSV)
    except (OSError, ValueError) as error:
        raise OutputError(f"cannot read {path}: {' '.join(str(error).split())}") from None
    return {"rows": rows, "bundle": bundle, "summary": summary, "liquidations": liquidations,
            "trades": trades}


def _read_records(path: Path) -> list:
    """Rows of an event CSV, numbers as float (``setting`` as int), empty cells None."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        records = []
        for raw in csv.DictReader(handle):
            record = {}
            for key, text in raw.items():
                if text == "" or text is None:
                    record[key] = None
                elif key in _TEXT_CSV_COLUMNS:
                    record[key] = text
                elif key == "setting":
                    record[key] = int(text)
                else:
                    record[key] = float(text)
            records.append(record)
    return records


def _records_csv_bytes(records: list, columns) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({key: "" if record.get(key) is None else record.get(key)
                         for key in columns})
    return buffer.getvalue().encode()


def _csv_bytes(rows: list) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ROW_KEYS), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row.get(key) for key in ROW_KEYS})
    return buffer.getvalue().encode()


def _npz_bytes(bundle: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **bundle)
    return buffer.getvalue()
