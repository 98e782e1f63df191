"""One run per output directory, no empty directory from a run that wrote nothing, and steps that agree on their inputs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lib.errors import CalibrationError
from lib.outputs import OutputDir
from lib.run.outputs import check_refit_inputs, check_steps_agree

REPO = Path(__file__).resolve().parent.parent


def test_a_second_claim_is_refused_with_the_holder(tmp_path):
    out = OutputDir(tmp_path / "binned" / "2018" / "Data_2018")
    with out.claim():
        (out / "fit_results.csv").write_text("cat_name\n")
        with pytest.raises(CalibrationError, match=r"is in use by another run \(pid \d+"):
            with out.claim():
                pass
    with out.claim():  # released when the first run ended
        pass


def test_a_killed_run_does_not_block_the_next(tmp_path):
    out = OutputDir(tmp_path / "Data_2018")
    holder = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from lib.outputs import OutputDir
        out = OutputDir(Path({str(out.path)!r}))
        with out.claim():
            (out / "x.csv").write_text("a\\n")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", holder], capture_output=True, timeout=60)
    assert proc.returncode == -9
    with out.claim():  # the system released the lock with the process
        pass


def test_a_run_that_wrote_nothing_leaves_no_directory(tmp_path):
    out = OutputDir(tmp_path / "plots" / "binned" / "2018" / "Data_2018")
    with pytest.raises(RuntimeError):
        with out.claim():
            raise RuntimeError("failed before writing")
    assert not (tmp_path / "plots").exists()
    existing = OutputDir(tmp_path / "kept")
    existing.path.mkdir()
    with existing.claim():
        pass
    assert existing.path.is_dir(), "a directory that existed before the run stays"


def test_check_writable_creates_nothing(tmp_path):
    out = OutputDir(tmp_path / "a" / "b" / "Data_2018")
    out.check_writable()
    assert list(tmp_path.iterdir()) == []


def _provenance(out: OutputDir, steps: dict) -> None:
    out.path.mkdir(parents=True, exist_ok=True)
    out.write_provenance({"steps": steps})


def test_step3_refuses_fits_and_medians_of_different_inputs(tmp_path):
    out = OutputDir(tmp_path / "Data_2018")
    same = {"inputs": "aaa", "config": "c1", "binned": True}
    _provenance(out, {"step1": same, "step2": same})
    check_steps_agree(out)
    _provenance(out, {"step1": same, "step2": {**same, "inputs": "bbb"}})
    with pytest.raises(CalibrationError, match="fits \\(step 1\\) and the medians \\(step 2\\) were made from different inputs"):
        check_steps_agree(out)
    _provenance(out, {"step1": same, "step2": {**same, "config": "c2"}})
    with pytest.raises(CalibrationError, match="different config"):
        check_steps_agree(out)


def test_fixcat_refuses_other_inputs_than_the_fits(tmp_path):
    out = OutputDir(tmp_path / "Data_2018")
    _provenance(out, {"step1": {"inputs": "aaa", "config": "c1", "binned": True}})
    check_refit_inputs(out, "aaa")
    with pytest.raises(CalibrationError, match="--fixCat would merge a fit of other input files"):
        check_refit_inputs(out, "bbb")
    assert json.loads((out / OutputDir.PROVENANCE_JSON).read_text())["steps"]["step1"]["inputs"] == "aaa"
