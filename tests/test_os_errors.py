"""Faults of the machine, not the input: a full disk, a read-only file system, an unreadable configuration.

Each is one ``error:`` line naming the path and the cause, exit code 1, no temp file left, and
what was finished before it still summarised on stdout. The full disk is injected into the
atomic writer (fast, everywhere) and, where the test may mount a small tmpfs (root), also real.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq
import pytest

from getCalibrationFactor import main
from lib.io import atomic
from tests.helpers_tables import random_stage1_table

REPO = Path(__file__).resolve().parent.parent
FAST = ["--no-dask-client", "--workers", "0", "--no-plots"]
FULL = "No space left on device"


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A small Stage-1 root: one file of events spread over every category."""
    path = tmp_path / "in" / "2018" / "compacted" / "data_A" / "0" / "part0.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(random_stage1_table(3000, 1, mass_range=(76.0, 104.0)), path)
    return tmp_path / "in"


class _FullDisk:
    """Stands in for ``os`` in ``lib.io.atomic``: the content of an output matching ``full`` does not fit on the disk."""

    def __init__(self, full: Callable[[str], bool]) -> None:
        self.full = full

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def chmod(self, path: Path, mode: int) -> None:  # the writer's first call after the content is written
        if self.full(Path(path).name):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.chmod(path, mode)


def _temp_files(root: Path) -> list[Path]:
    return list(root.rglob(".*.tmp*"))


def _error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "internal error" not in err and "Traceback" not in err
    return lines[0]


def test_a_full_disk_is_one_line_naming_the_output(inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(atomic, "os", _FullDisk(lambda name: True))
    assert main(["--steps", "step2", "--input_path", str(inputs), "--output_path", str(tmp_path / "out"), *FAST]) == 1
    line = _error_line(capsys.readouterr().err)
    assert f"{tmp_path / 'out'}" in line and f"{FULL} (the disk is full" in line, line
    assert not _temp_files(tmp_path / "out")


def test_a_full_disk_at_the_report_still_summarises_what_was_written(inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(atomic, "os", _FullDisk(lambda name: name.startswith(".report.html")))
    assert main(["--steps", "step2", "--input_path", str(inputs), "--output_path", str(tmp_path / "out"), *FAST]) == 1
    captured = capsys.readouterr()
    line = _error_line(captured.err)
    assert line.startswith("error: ") and line.split(": ")[1].endswith("report.html") and FULL in line, line
    assert "medians" in captured.out and "2018" in captured.out, "the summary of the finished steps is printed"
    assert not _temp_files(tmp_path / "out")


def test_a_binary_configuration_is_one_line_naming_it(inputs, tmp_path, capsys):
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(bytes(range(256)) * 4)
    assert main(["--config", str(garbage), "--input_path", str(inputs), "--output_path", str(tmp_path / "out"), *FAST]) == 1
    assert _error_line(capsys.readouterr().err) == f"error: config {garbage} is not a text file (not UTF-8 at byte 128)"


def test_a_configuration_that_is_a_directory_is_one_line_naming_it(inputs, tmp_path, capsys):
    assert main(["--config", str(tmp_path), "--input_path", str(inputs), "--output_path", str(tmp_path / "out"), *FAST]) == 1
    assert _error_line(capsys.readouterr().err) == f"error: cannot read config {tmp_path}: Is a directory"


def test_an_os_error_anywhere_is_an_error_line_with_path_and_cause(capsys):
    from lib.console import run_cli

    def body() -> int:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/data/out/fit_results.csv")

    assert run_cli(body, debug=False) == 1
    assert capsys.readouterr().err == "error: /data/out/fit_results.csv: Read-only file system (a read-only file system)\n"


# ---------------------------------------------------------------------------------------------
# A real small file system


def _mount_tmpfs(where: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs, unmounted afterwards."""
    where = tmp_path / "small"
    _mount_tmpfs(where, "size=1m")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.slow
def test_a_real_full_disk_is_one_line_and_leaves_no_temp_file(inputs, small_disk):
    argv = [sys.executable, str(REPO / "getCalibrationFactor.py"), "--steps", "step2", "--input_path", str(inputs),
            "--output_path", str(small_disk), "--no-dask-client", "--workers", "1"]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    error = [line for line in done.stderr.splitlines() if not line.startswith("WARNING lib.")]
    assert len(error) == 1 and error[0].startswith(f"error: {small_disk}/") and FULL in error[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not _temp_files(small_disk)


def test_a_read_only_output_is_refused_before_any_work(inputs, tmp_path, capsys):
    where = tmp_path / "readonly"
    _mount_tmpfs(where, "size=1m,ro")
    try:
        assert main(["--steps", "step2", "--input_path", str(inputs), "--output_path", str(where), *FAST]) == 1
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: output directory {where}/") and line.endswith(f"is not writable ({where}: read-only file system)"), line
