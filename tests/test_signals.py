"""A run stopped by its batch system: SIGTERM/SIGHUP end it like Ctrl-C, and no process or temp file outlives it, even after SIGKILL;
a run whose Dask scheduler dies ends with one line.

Each test starts the real CLI in its own session during the fits (fit workers, their forkserver,
two figure processes and the resource tracker all running), stops it, and then looks for any
process of that session still alive: once the main process is gone, its children are orphans
that ``ps --ppid`` would no longer find, but they keep its session id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OUT = Path("binned") / "2018" / "Data_2018"
INTERRUPTED = "finished outputs are intact; re-run to resume"
pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    pytest.importorskip("ROOT")
    from lib.generator import SampleRequest, WriteOptions, generate_sample

    root = tmp_path_factory.mktemp("signals")
    generate_sample(root, SampleRequest(2018, seed=3, n_data=100_000, n_mc=0, n_signal=0), WriteOptions(files_per_dataset=2, workers=1))
    return root


def _cmd(stage1: Path, out: Path, *extra: str, mode: str = "--no-dask-client") -> list[str]:
    return [sys.executable, str(REPO / "getCalibrationFactor.py"), "--ifbinned", mode, "--workers", "2",
            "--input_path", str(stage1), "--output_path", str(out), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def reference(sample, tmp_path_factory) -> Path:
    """The output directory of an uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(_cmd(sample, out, "--no-plots"), check=True, capture_output=True, timeout=600)
    return out / OUT


def _session(sid: int) -> list[str]:
    """The processes of session ``sid`` still alive (zombies aside), as ``pid command``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, _ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
        if int(session) == sid and state != "Z":
            found.append(f"{entry.name} {command[:120]}")
    return found


def _stopped_during_the_fits(stage1: Path, out: Path, signum: int, mode: str = "--no-dask-client") -> tuple[subprocess.Popen[str], str]:
    """Start a run with figures, send ``signum`` to its main process once two fits are finished; the process and its stderr."""
    proc = subprocess.Popen(_cmd(stage1, out, "--plot-formats", "png", mode=mode), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    fits = out / OUT / ".cache" / "fits"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(fits.glob("fit-*.entry"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None and len(_session(proc.pid)) >= 5, "the signal must reach a run in its fits, workers and figure processes up"
    os.kill(proc.pid, signum)
    return proc, proc.communicate(timeout=60)[1]


def _assert_nothing_left(proc: subprocess.Popen[str], out: Path) -> None:
    deadline = time.monotonic() + 15
    while _session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session(proc.pid) == [], "every process the run started ends with it"
    assert not list(out.rglob(".*.tmp*")), "no half-written file is left behind"
    assert not (out / OUT / "calibration_factors.csv").exists()


def _assert_rerun_identical(stage1: Path, out: Path, reference: Path) -> None:
    rerun = subprocess.run(_cmd(stage1, out, "--no-plots", "--log-level", "INFO"), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "re-using" in rerun.stderr
    for name in ("fit_results.csv", "calibration_factors.csv"):
        assert (out / OUT / name).read_text() == (reference / name).read_text(), name


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_ends_the_run_like_ctrl_c(sample, reference, tmp_path, signum, code):
    out = tmp_path / "out"
    proc, stderr = _stopped_during_the_fits(sample, out, signum)
    assert proc.returncode == code
    assert stderr.splitlines()[-1] == f"interrupted by {signal.Signals(signum).name}: {INTERRUPTED}"
    assert "Traceback" not in stderr and all(line.startswith("WARNING lib.") for line in stderr.splitlines()[:-1]), stderr
    _assert_nothing_left(proc, out)
    if signum == signal.SIGTERM:
        _assert_rerun_identical(sample, out, reference)


def test_a_killed_main_process_takes_its_children_with_it(sample, reference, tmp_path):
    out = tmp_path / "out"
    proc, _ = _stopped_during_the_fits(sample, out, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    _assert_nothing_left(proc, out)
    _assert_rerun_identical(sample, out, reference)


def test_a_killed_main_process_takes_its_local_dask_cluster_with_it(sample, tmp_path):
    out = tmp_path / "out"
    proc, _ = _stopped_during_the_fits(sample, out, signal.SIGKILL, mode="--dask=local")
    _assert_nothing_left(proc, out)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_lost_scheduler_is_one_line_without_a_traceback(sample, tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                  "--dashboard-address", ":0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    workers = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        out = tmp_path / "out"
        run = subprocess.Popen(_cmd(sample, out, "--no-plots", mode=f"--scheduler={address}"), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        fits = out / OUT / ".cache" / "fits"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(list(fits.glob("fit-*.entry"))) < 2 and run.poll() is None:
            time.sleep(0.05)
        assert run.poll() is None, "the scheduler must die during the fits"
        scheduler.kill()
        _, stderr = run.communicate(timeout=120)
    finally:
        for proc in (scheduler, workers):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert run.returncode == 1
    *warnings, last = stderr.splitlines()
    assert last.startswith(f"error: lost the Dask scheduler at {address} (") and last.endswith("tasks did not finish; re-run to resume")
    assert all(line.startswith("WARNING lib.") for line in warnings) and "Traceback" not in stderr, stderr
    _assert_nothing_left(run, out)
