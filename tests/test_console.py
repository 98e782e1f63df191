"""What a user sees in the default mode (local Dask cluster): the summary, and one line when something is wrong.

Each test runs the real CLI in a subprocess, as a user does, so the Dask scheduler, nannies and
workers are real processes that log (or not) on their own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers_tables import random_stage1_table

REPO = Path(__file__).resolve().parent.parent
YEAR = "2018"

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _write(root: Path, name: str, n: int, seed: int, drop: str | None = None) -> Path:
    table = random_stage1_table(n, seed, mass_range=(76.0, 104.0))
    if drop:
        table = table.drop_columns([drop])
    path = root / YEAR / "compacted" / "data_A" / "0" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=5000)
    return path


def _run(inputs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(REPO / "getCalibrationFactor.py"), "--steps", "all", "--ifbinned", "--years", YEAR,
            "--input_path", str(inputs), "--output_path", str(out), "--workers", "2", *extra]  # fmt: skip
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_truncated_file_gives_one_error_line_and_no_traceback(tmp_path):
    for i in range(3):
        _write(tmp_path / "in", f"part{i}.parquet", 20_000, seed=i)
    bad = _write(tmp_path / "in", "part9.parquet", 20_000, seed=9)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    done = _run(tmp_path / "in", tmp_path / "out", "--no-plots")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "part9.parquet" in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_missing_column_gives_one_error_line_naming_it(tmp_path):
    _write(tmp_path / "in", "part0.parquet", 20_000, seed=0)
    _write(tmp_path / "in", "part1.parquet", 20_000, seed=1, drop="mu1_ptErr")
    done = _run(tmp_path / "in", tmp_path / "out", "--no-plots")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "mu1_ptErr" in lines[0], done.stderr


def test_successful_run_prints_the_summary_only(tmp_path):
    from lib.generator import SampleRequest, WriteOptions, generate_sample

    generate_sample(tmp_path / "in", SampleRequest(2018, seed=3, n_data=200_000, n_mc=0, n_signal=0), WriteOptions(files_per_dataset=2))
    done = _run(tmp_path / "in", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    everything = done.stdout + done.stderr
    assert "INFO distributed" not in everything and "[#0]" not in everything and "Traceback" not in everything
    # Only the tool's own warnings (small categories, fallbacks) may reach stderr.
    assert all(line.startswith("WARNING lib.") for line in done.stderr.splitlines()), done.stderr
    assert "correction JSON:" in done.stdout and "timings:" in done.stdout


def test_every_command_line_shares_one_error_boundary(capsys):
    """A CalibrationError is one 'error:' line (1), Ctrl-C one line (130), a bug one 'internal error:' line (2) or its traceback when debugging."""
    from lib.console import run_cli
    from lib.errors import InputError

    def fails(exc: BaseException):
        def body() -> int:
            raise exc

        return body

    assert run_cli(fails(InputError("file x.parquet: no column mu1_pt")), debug=False) == 1
    assert run_cli(fails(KeyboardInterrupt()), debug=False, interrupted="interrupted: re-run to resume") == 130
    assert run_cli(fails(ZeroDivisionError("division by zero")), debug=False) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: file x.parquet: no column mu1_pt",
        "interrupted: re-run to resume",
        "internal error: ZeroDivisionError: division by zero (re-run with --log-level DEBUG for the traceback)",
    ]
    with pytest.raises(ZeroDivisionError):
        run_cli(fails(ZeroDivisionError("division by zero")), debug=True)
    assert run_cli(lambda: 0, debug=False) == 0


def test_sigterm_and_sighup_end_a_command_like_ctrl_c_with_the_shells_codes(capsys):
    """The signal raises in the main thread wherever the body is; the previous handlers are back afterwards."""
    import os
    import signal

    from lib.console import run_cli

    def stopped(signum: int):
        def body() -> int:
            os.kill(os.getpid(), signum)
            raise AssertionError("the signal interrupts the body")

        return body

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    assert run_cli(stopped(signal.SIGTERM), debug=False, interrupted="interrupted: outputs intact") == 143
    assert run_cli(stopped(signal.SIGHUP), debug=False, interrupted="interrupted: outputs intact") == 129
    assert capsys.readouterr().err.splitlines() == ["interrupted by SIGTERM: outputs intact", "interrupted by SIGHUP: outputs intact"]
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_stop_swallowed_by_a_finaliser_still_stops_the_run(capsys):
    """SIGTERM's exception raised inside a ``__del__`` is swallowed by Python: the signal is raised again, the run stops."""
    import signal
    import time

    from lib import console

    class Finalised:
        def __del__(self) -> None:
            raise console.Terminated(signal.SIGTERM)

    def body() -> int:
        Finalised()  # collected at once: its finaliser's exception never reaches this frame
        for _ in range(100):
            time.sleep(0.01)  # the signal's handler runs at the next line
        return 0

    assert console.run_cli(body, False, "interrupted") == 143
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("interrupted by SIGTERM") and "Exception ignored" not in err
