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

``series.npz`` layout: ``time`` (bar open times, int64 ns since epoch, UTC) and ``close``
(float64, quote currency) once; then for each row ``i`` that did not fail
``{i}/equity``, ``{i}/drawdown``, ``{i}/margin_ratio`` (float32, per bar) and
``{i}/liquidation_time`` (int64 ns), ``{i}/liquidation_price`` (float64),
``{i}/liquidation_side`` (int8, +1 long / -1 short), one entry per liquidation.

Every file is written to a temporary file in DIR and moved into place with ``os.replace``,
and all files are prepared before the first one is moved, so a failure leaves no half file.
"""
from __future__ import annotations

import csv
import io
import json
import os
import secrets
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import ROW_KEYS

METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
SERIES_NPZ = "series.npz"
SUMMARY_JSON = "summary.json"
LIQUIDATIONS_CSV = "liquidations.csv"
TRADES_CSV = "trades.csv"
REPORT_HTML = "report.html"

LIQUIDATION_CSV_COLUMNS = ("leverage", "setting", "time", "opened", "feed", "side", "size",
                           "entry_price", "liquidation_price", "bankruptcy_price", "fill_price",
                           "margin_lost", "fee", "deficit", "time_to_liquidation")
TRADE_CSV_COLUMNS = ("leverage", "setting", "feed", "side", "size", "entry_time", "entry_price",
                     "exit_time", "exit_price", "exit_reason", "pnl", "fees", "net_pnl")
_TEXT_CSV_COLUMNS = {"time", "opened", "feed", "side", "entry_time", "exit_time", "exit_reason"}

PER_BAR_KEYS = ("equity", "drawdown", "margin_ratio")
EVENT_KEYS = ("liquidation_time", "liquidation_price", "liquidation_side")


class OutputError(OSError):
    """The output folder cannot be created or written (one-line message)."""


def prepare_output_dir(out_dir) -> Path:
    """Create ``out_dir`` if needed and prove it is writable; raise :class:`OutputError`."""
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise OutputError(f"cannot write to output folder {path}: "
                          f"{error.strerror or error}") from None
    return path


def series_bundle(frame: pd.DataFrame, results) -> dict:
    """Arrays for ``series.npz`` from the frame and the results (rows in order)."""
    index = frame.index
    stamps = index.tz_convert("UTC") if index.tz is not None else index
    bundle = {"time": stamps.as_unit("ns").asi8.astype(np.int64),
              "close": frame["close"].to_numpy(dtype=np.float64)}
    for number, result in enumerate(results):
        if not result.series:
            continue
        for key in PER_BAR_KEYS:
            bundle[f"{number}/{key}"] = np.asarray(result.series[key], dtype=np.float32)
        for key in EVENT_KEYS:
            bundle[f"{number}/{key}"] = np.asarray(result.series[key])
    return bundle


def split_bundle(bundle: dict, rows: list) -> tuple[dict, list]:
    """(``{"time", "close"}``, per-row dicts of arrays or None for failed rows)."""
    price = {"time": bundle["time"], "close": bundle["close"]}
    per_row = []
    for number in range(len(rows)):
        if f"{number}/equity" not in bundle:
            per_row.append(None)
            continue
        per_row.append({key: bundle[f"{number}/{key}"] for key in PER_BAR_KEYS + EVENT_KEYS})
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
    return write_files_atomically(out_dir, payloads)


def write_files_atomically(out_dir, payloads: dict) -> dict:
    """Write every ``{name: bytes}`` to a temp file in ``out_dir``, then ``os.replace`` all."""
    path = prepare_output_dir(out_dir)
    staged = {}
    try:
        for name, payload in payloads.items():
            temp_name = str(path / f".{name}.{secrets.token_hex(6)}.tmp")
            # os.open with mode 0o666 honours the umask (mkstemp would force 0o600)
            handle = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            staged[name] = temp_name
            with os.fdopen(handle, "wb") as stream:
                stream.write(payload)
        written = {}
        for name, temp_name in staged.items():
            os.replace(temp_name, path / name)
            written[name] = path / name
        return written
    except OSError as error:
        raise OutputError(f"cannot write to output folder {path}: "
                          f"{error.strerror or error}") from None
    finally:
        for temp_name in staged.values():
            if os.path.exists(temp_name):
                os.unlink(temp_name)


#: row keys added after the first output folders were written, with the value they then had
ROW_DEFAULTS = {"margin_mode": "isolated", "feed_tiers": "{}", "orders_rejected": None,
                "rejections": "{}", "trades": None, "all_orders_rejected": False,
                **{f"{key}_reason": None for key in ("cagr", "sharpe", "sortino", "calmar",
                                                     "var_95", "cvar_95")}}


def read_outputs(out_dir) -> tuple[list, dict]:
    """(rows from metrics.json, arrays from series.npz) of a finished run's folder.

    Raises :class:`OutputError` naming the missing or unreadable file.
    """
    path = Path(out_dir)
    metrics_path, series_path = path / METRICS_JSON, path / SERIES_NPZ
    try:
        rows = json.loads(metrics_path.read_text())
        with np.load(series_path, allow_pickle=False) as archive:
            bundle = {key: archive[key] for key in archive.files}
    except FileNotFoundError as error:
        raise OutputError(f"{path} is not a backtest output folder: {error.filename} is missing "
                          "(create one with 'run_backtest.py run' or 'sweep')") from None
    except (OSError, ValueError) as error:
        raise OutputError(f"cannot read {path}: {' '.join(str(error).split())}") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise OutputError(f"{metrics_path} is not a list of metrics rows")
    for number, row in enumerate(rows):
        for key, value in ROW_DEFAULTS.items():  # keys newer than some output folders
            row.setdefault(key, value)
        missing = [key for key in ROW_KEYS if key not in row]
        if missing:
            raise OutputError(f"{metrics_path}: row {number} lacks {', '.join(missing[:3])}"
                              f"{' ...' if len(missing) > 3 else ''}; was it written by "
                              "this version of run_backtest.py?")
    if "time" not in bundle or "close" not in bundle:
        raise OutputError(f"{series_path} has no 'time'/'close' arrays")
    return rows, bundle


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
