"""An interrupted step 1 leaves finished fits on disk; the re-run resumes and ends identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    pytest.importorskip("ROOT")
    from lib.generator import SampleRequest, WriteOptions, generate_sample

    root = tmp_path_factory.mktemp("resume")
    generate_sample(root, SampleRequest(2018, seed=3, n_data=300_000, n_mc=0, n_signal=0), WriteOptions(files_per_dataset=2, workers=1))
    return root


def _cmd(stage1: Path, out: Path) -> list[str]:
    return [sys.executable, str(REPO / "getCalibrationFactor.py"), "--steps", "all", "--ifbinned", "--no-plots",
            "--no-dask-client", "--workers", "1", "--input_path", str(stage1), "--output_path", str(out)]  # fmt: skip


def test_killed_run_resumes_to_identical_results(sample, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_cmd(sample, reference), check=True, capture_output=True, timeout=600)

    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen(_cmd(sample, interrupted), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    fits_dir = interrupted / "binned" / "2018" / "Data_2018" / ".cache" / "fits"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(fits_dir.glob("fit-*.entry"))) < 5:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run: main process and fit workers
    proc.wait(timeout=60)
    finished = len(list(fits_dir.glob("fit-*.entry")))
    assert 5 <= finished < 36, "the kill must land in the middle of step 1"
    out_dir = interrupted / "binned" / "2018" / "Data_2018"
    assert not (out_dir / "calibration_factors.csv").exists()
    assert not list(out_dir.rglob("*.tmp*")), "no half-written file is left behind"

    resumed = subprocess.run([*_cmd(sample, interrupted), "--log-level", "INFO"], check=True, capture_output=True, text=True, timeout=600)
    # Re-using finished fits is routine: said at INFO, not as a warning the user would have to act on.
    assert f"INFO lib.peak_fits: re-using {finished} finished fits" in resumed.stderr
    ref_dir = reference / "binned" / "2018" / "Data_2018"
    for name in ("fit_results.csv", "median_for_cats.csv", "calibration_factors.csv"):
        assert (out_dir / name).read_text() == (ref_dir / name).read_text(), name
