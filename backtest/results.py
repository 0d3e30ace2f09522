"""The output folder of a run or sweep, written atomically and read back.

Files in DIR
------------
``metrics.json``   list of metrics rows (see :mod:`backtest.metrics`), one per setting
``metrics.csv``    the same rows, columns in :data:`backtest.metrics.ROW_KEYS` order
``series.npz``     compressed per-bar series the report plots (layout below)
``report.html``    the risk report (rendered by :mod:`report`, written here)

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
REPORT_HTML = "report.html"

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


def write_outputs(out_dir, rows: list, bundle: dict, html: str | None) -> dict:
    """Write metrics.json, metrics.csv, series.npz and report.html (if given) atomically.

    Returns ``{file name: Path}`` of what was written.
    """
    payloads = {
        METRICS_JSON: json.dumps(rows, indent=2, allow_nan=False).encode() + b"\n",
        METRICS_CSV: _csv_bytes(rows),
        SERIES_NPZ: _npz_bytes(bundle),
    }
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
ROW_DEFAULTS = {"margin_mode": "isolated", "feed_tiers": "{}"}


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
