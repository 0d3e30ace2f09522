"""The output folder is all or nothing, and ``report DIR`` trusts nothing it reads.

Writing: the whole set (metrics.json, metrics.csv, series.npz, report.html and
manifest.json, written last with the others' SHA-256) is staged in a hidden
folder beside DIR and switched in with one rename; an interruption at any step
leaves DIR as the old complete set or the new one, never a mix; stale staging
is cleaned by the next write; nothing is created before the inputs are good.

Reading (``report DIR``): a damaged or mismatched folder is one ``error:`` line
and exit 2, report.html untouched: files that do not match the manifest, a
truncated series.npz, metrics.json that is empty, malformed or of wrong types,
and rows that disagree with the series (bars, data range, final value).
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from backtrader_leverage import cli
from backtrader_leverage.backtest import OutputError, read_outputs
from backtrader_leverage.backtest import results as results_module

BARS = 300
MANIFEST = "manifest.json"
DATA_FILES = ("metrics.json", "metrics.csv", "series.npz")


@pytest.fixture(scope="module")
def small_csv(shared_data, tmp_path_factory):
    """The last BARS hourly bars of the real Binance BTCUSDT file, same format."""
    lines = (shared_data / "binance_BTCUSDT_1h.csv").read_text().splitlines()
    path = tmp_path_factory.mktemp("data") / "btcusdt_1h_tail.csv"
    path.write_text("\n".join([lines[0]] + lines[-BARS:]) + "\n")
    return path


def run_cli(csv_path, out, leverages="1"):
    command = "run" if "," not in leverages else "sweep"
    argv = [command, "--csv", str(csv_path), "--leverage", leverages, "--strategy", "buy_hold",
            "--out", str(out)]
    if command == "sweep":
        argv += ["--workers", "1"]
    return cli.main(argv)


@pytest.fixture(scope="module")
def folders(small_csv, tmp_path_factory):
    """Two finished output folders of the same data: 1x and 3x."""
    base = tmp_path_factory.mktemp("outputs")
    assert run_cli(small_csv, base / "one") == 0
    assert run_cli(small_csv, base / "three", "3,5") == 0
    return base / "one", base / "three"


def snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def copy(folder, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def resign(folder):
    """Rewrite the manifest with the files' current checksums (a consistent-looking forgery)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    for name in manifest["files"]:
        data = (folder / name).read_bytes()
        manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def assert_refused(capsys, folder, *fragments):
    before = (folder / "report.html").read_bytes()
    assert cli.main(["report", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]
    assert "Traceback" not in err[0]
    assert (folder / "report.html").read_bytes() == before
    return err[0]


# ----------------------------------------------------------------------
# writing: all or nothing
# ----------------------------------------------------------------------
class Killed(BaseException):
    """Stands for the process dying at that instant (not an Exception: nothing catches it)."""


SWITCH_PRIMITIVES = ("replace", "rename")


def interrupt_at(monkeypatch, step):
    """Make the ``step``-th rename-like call (os.replace/os.rename/the exchange) die."""
    calls = []

    def wrap(real):
        def call(*args, **kwargs):
            calls.append(args)
            if len(calls) == step:
                raise Killed()
            return real(*args, **kwargs)
        return call

    for name in SWITCH_PRIMITIVES:
        monkeypatch.setattr(os, name, wrap(getattr(os, name)))
    if hasattr(results_module, "_rename_exchange"):
        monkeypatch.setattr(results_module, "_rename_exchange",
                            wrap(results_module._rename_exchange))
    return calls


def no_exchange(*args):
    raise results_module._NoExchange()


@pytest.mark.parametrize("exchange", [True, False], ids=["one-rename", "two-renames"])
def test_an_interruption_at_any_step_leaves_the_old_set_or_the_new_one(folders, tmp_path,
                                                                        monkeypatch, exchange):
    one, three = folders
    if not exchange and hasattr(results_module, "_rename_exchange"):
        monkeypatch.setattr(results_module, "_rename_exchange", no_exchange)
    old_rows, _ = read_outputs(one)
    new_rows, new_bundle = read_outputs(three)
    for step in range(1, 8):
        target = copy(one, tmp_path, f"step{step}")
        old = snapshot(target)
        with monkeypatch.context() as patch:
            calls = interrupt_at(patch, step)
            try:
                results_module.write_outputs(target, new_rows, new_bundle, "<html>new</html>")
            except (Killed, OutputError):
                pass
        rows, bundle = read_outputs(target)               # always a complete, verified set
        if rows == old_rows:
            assert snapshot(target) == old, f"step {step}: old rows beside other files"
        else:
            assert rows == new_rows, f"step {step}"
            np.testing.assert_array_equal(bundle["0/equity"], new_bundle["0/equity"])
            assert (target / "report.html").read_text() == "<html>new</html>"
        if len(calls) < step:
            break                                         # the write needed fewer steps
    assert len(calls) < step, "the write never completed in the steps tried"


def test_a_file_that_cannot_be_replaced_leaves_the_old_set(folders, small_csv, tmp_path, capsys):
    one, _ = folders
    target = copy(one, tmp_path)
    old_rows, _ = read_outputs(target)
    (target / "report.html").unlink()
    (target / "report.html").mkdir()                       # a folder where report.html goes
    (target / "report.html" / "x").write_text("x")
    code = run_cli(small_csv, target, "3")
    rows, _ = read_outputs(target)
    if code == 2:                                          # refused: the old set, whole
        assert rows == old_rows
    else:                                                  # or written: the new set, whole
        assert code == 0 and [row["leverage"] for row in rows] == [3.0]
        assert (target / "report.html").is_file()
    assert not [p for p in target.iterdir() if p.name.endswith(".tmp")]


def test_a_real_kill_before_the_switch_keeps_the_old_set_and_the_next_run_cleans_up(
        folders, small_csv, tmp_path):
    one, _ = folders
    target = copy(one, tmp_path, "out")
    old = snapshot(target)
    dying = (
        "import os, signal, sys\n"
        "from backtrader_leverage import cli\n"
        "from backtrader_leverage.backtest import results\n"
        "def die(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "results._switch_into_place = die\n"
        "sys.exit(cli.main(sys.argv[1:]))\n")
    completed = subprocess.run(
        [sys.executable, "-c", dying, "run", "--csv", str(small_csv), "--leverage", "3",
         "--strategy", "buy_hold", "--out", str(target)], capture_output=True, timeout=120)
    assert completed.returncode == -signal.SIGKILL
    assert snapshot(target) == old                         # DIR is still the old, whole set
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert stale                                           # the staged new set, left behind
    assert run_cli(small_csv, target, "3") == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []
    assert [row["leverage"] for row in read_outputs(target)[0]] == [3.0]


def test_bad_input_creates_no_output_folder(tmp_path, capsys):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("date,open,high,low,close,volume\n2024-01-01,1,2,0.5,inf,1\n")
    out = tmp_path / "new" / "folder"
    assert cli.main(["run", "--csv", str(bad_csv), "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_a_folder_holding_other_files_is_refused_untouched(small_csv, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    assert run_cli(small_csv, out) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and err.startswith("error: ")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_written_folder_has_the_manifest_and_keeps_permissions(folders):
    one, _ = folders
    manifest = json.loads((one / MANIFEST).read_text())
    assert set(manifest["files"]) >= set(DATA_FILES + ("report.html",))
    assert set(manifest["files"]) == {path.name for path in one.iterdir()} - {MANIFEST}
    for name, entry in manifest["files"].items():
        data = (one / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    umask = os.umask(0)
    os.umask(umask)
    assert one.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (one / "metrics.json").stat().st_mode & 0o777 == 0o666 & ~umask


# ----------------------------------------------------------------------
# reading: report DIR refuses damaged or mismatched folders
# ----------------------------------------------------------------------
def test_report_of_an_intact_folder_succeeds_and_stays_verified(folders, tmp_path):
    target = copy(folders[1], tmp_path)
    before = snapshot(target)
    assert cli.main(["report", str(target)]) == 0
    assert snapshot(target) == before                      # same page, same manifest
    read_outputs(target)


def test_truncated_series_is_refused(folders, tmp_path, capsys):
    target = copy(folders[0], tmp_path)
    data = (target / "series.npz").read_bytes()
    (target / "series.npz").write_bytes(data[: len(data) // 2])
    assert_refused(capsys, target, "series.npz", "manifest")
    resign(target)                                         # even with matching checksums
    assert_refused(capsys, target, "series.npz", "damaged")


@pytest.mark.parametrize("content, fragment", [
    ("[]", "no rows"),
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    ('{"leverage": 1}', "not a list of metrics rows"),
])
def test_empty_or_malformed_metrics_is_refused(folders, tmp_path, capsys, content, fragment):
    target = copy(folders[0], tmp_path)
    (target / "metrics.json").write_text(content)
    resign(target)
    assert_refused(capsys, target, "metrics.json", fragment)


@pytest.mark.parametrize("key, value, fragment", [
    ("final_value", "abc", "final_value must be a number"),
    ("leverage", "3", "leverage must be a number > 0"),
    ("leverage", -1, "leverage must be a number > 0"),
    ("bars", 1.5, "bars must be a whole number"),
    ("liquidations", True, "liquidations must be a whole number"),
    ("ruined", "no", "ruined must be true, false or null"),
    ("error", 5, "error must be text or null"),
    ("data_start", 20240101, "data_start must be text"),
])
def test_wrong_types_are_refused(folders, tmp_path, capsys, key, value, fragment):
    target = copy(folders[0], tmp_path)
    rows = json.loads((target / "metrics.json").read_text())
    rows[0][key] = value
    (target / "metrics.json").write_text(json.dumps(rows))
    resign(target)
    assert_refused(capsys, target, "row 0", fragment)


def test_metrics_from_another_run_is_refused(folders, tmp_path, capsys):
    one, three = folders
    target = copy(three, tmp_path)
    shutil.copy(one / "metrics.json", target / "metrics.json")   # 1 row, the series has 2
    assert_refused(capsys, target, "metrics.json", "manifest")
    resign(target)
    assert_refused(capsys, target, "1 row", "series.npz", "2")


def test_rows_of_the_same_size_from_another_run_are_refused(folders, small_csv, tmp_path,
                                                            capsys):
    one, _ = folders
    other = tmp_path / "other"
    assert run_cli(small_csv, other, "20") == 0
    target = copy(one, tmp_path)
    shutil.copy(other / "metrics.json", target / "metrics.json")
    resign(target)                 # same data, one row each: only the figures disagree
    assert_refused(capsys, target, "row 0", "final_value", "equity")


@pytest.mark.parametrize("key, value, fragment", [
    ("bars", BARS - 1, f"bars {BARS - 1}"),
    ("data_start", "2020-01-01T00:00:00+00:00", "data_start 2020-01-01T00:00:00+00:00"),
    ("data_end", "2030-01-01T00:00:00+00:00", "data_end 2030-01-01T00:00:00+00:00"),
])
def test_rows_that_disagree_with_the_series_are_refused(folders, tmp_path, capsys, key, value,
                                                        fragment):
    target = copy(folders[0], tmp_path)
    rows = json.loads((target / "metrics.json").read_text())
    rows[0][key] = value
    (target / "metrics.json").write_text(json.dumps(rows))
    resign(target)
    assert_refused(capsys, target, "row 0", fragment, "series.npz")


def test_a_folder_without_manifest_is_refused(folders, tmp_path, capsys):
    target = copy(folders[0], tmp_path)
    (target / MANIFEST).unlink()
    assert_refused(capsys, target, "manifest.json")
