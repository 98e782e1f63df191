"""The CLI as users run it: expected failures give one line on stderr and exit code 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from getCalibrationFactor import build_parser, request_from_args

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "getCalibrationFactor.py"), *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def _one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_original_flags():
    out = run_cli("--help").stdout
    for flag in ("--steps", "--isMC", "--ifbinned", "--closure_test", "--fixCat", "--years", "--nanoAODv",
                 "--extraString", "--no-dask-client", "--input_path", "--output_path"):  # fmt: skip
        assert flag in out


def test_no_input_files_shows_glob(tmp_path):
    proc = run_cli("--steps", "step2", "--input_path", str(tmp_path), "--output_path", str(tmp_path / "out"), "--no-dask-client")
    _one_line_error(proc, f"no input files match {tmp_path}/2018/compacted/data_*/*/*.parquet")


def test_unknown_fixcat_lists_valid(tmp_path):
    proc = run_cli("--steps", "step1", "--fixCat", "30-45_ZZ", "--output_path", str(tmp_path), "--no-dask-client")
    _one_line_error(proc, "unknown category '30-45_ZZ'; valid: 30-45_BB")


def test_closure_without_json(tmp_path):
    proc = run_cli("--closure_test", "--output_path", str(tmp_path / "out"), "--no-dask-client")
    _one_line_error(proc, "no calibration JSON")
    assert not (tmp_path / "out").exists(), "a refused run leaves no directory"


def test_step3_without_previous_steps(tmp_path):
    proc = run_cli("--steps", "step3", "--output_path", str(tmp_path / "out"), "--no-dask-client")
    _one_line_error(proc, "fit_results.csv not found: run step1 into")
    assert not (tmp_path / "out").exists(), "a refused run leaves no directory"


def test_fixcat_without_fits_names_the_directory_that_has_them(tmp_path):
    """The README's --fixCat right after `make run` (which writes *_demo): refused at once, pointing at the suffix."""
    (tmp_path / "out" / "binned" / "2018" / "Data_2018_demo").mkdir(parents=True)
    proc = run_cli("--steps", "step1", "--fixCat", "30-45_EE", "--ifbinned", "--output_path", str(tmp_path / "out"), "--no-dask-client")
    _one_line_error(proc, "exist in: Data_2018_demo; --extraString selects the suffix")
    assert sorted(p.name for p in (tmp_path / "out" / "binned" / "2018").iterdir()) == ["Data_2018_demo"]


def test_wrong_input_path_leaves_nothing(tmp_path):
    proc = run_cli("--steps", "all", "--input_path", str(tmp_path / "nowhere"), "--output_path", str(tmp_path / "out"), "--no-dask-client")
    _one_line_error(proc, f"input path {tmp_path / 'nowhere'} does not exist")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--validate-higgs"], "--validate-higgs checks the Higgs peak beside the closure: add --closure_test"),
     (["--calib-json", "x.json"], "--calib-json names the JSON the closure tests: add --closure_test"),
     (["--closure_test", "--steps", "step1"], "--closure_test runs the closure alone: drop --steps step1")],
)  # fmt: skip
def test_flag_combinations_are_refused_before_any_work(argv, message, tmp_path):
    proc = run_cli(*argv, "--output_path", str(tmp_path / "out"), "--no-dask-client")
    _one_line_error(proc, message)
    assert not (tmp_path / "out").exists()


def test_help_is_grouped_with_each_default_once_and_examples():
    out = " ".join(run_cli("--help").stdout.split())  # argparse wraps lines at the terminal's width
    for group in ("what to run:", "inputs and outputs:", "execution:", "figures:", "output handling:", "examples:"):
        assert group in out
    assert "(default: None)" not in out and out.count("(default: configs/default.yaml)") == 1
    assert "--backend" in out and "fit.backend of the configuration, cpu" in out


def test_malformed_config(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("fit: [\n")
    _one_line_error(run_cli("--config", str(cfg), "--output_path", str(tmp_path)), "not valid YAML")


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_cli("--steps", "step2", "--output_path", str(blocker / "sub"), "--no-dask-client")
    _one_line_error(proc, f"cannot be made: {blocker} is a file, not a directory")


@pytest.mark.root
def test_cuda_backend_refused_without_crash(tmp_path):
    pytest.importorskip("ROOT")
    from lib.fitting.backend import cuda_available

    if cuda_available():
        pytest.skip("this ROOT has CUDA support")
    proc = run_cli("--backend", "cuda", "--output_path", str(tmp_path), "--no-dask-client")
    _one_line_error(proc, "no RooFit CUDA support")


@pytest.mark.parametrize(
    "argv,message",
    [(["--workers", "-1"], "error: --workers -1: must be 0 (serial, in-process) or more"),
     (["--gateway", "--gateway-option", "worker_cores"], "error: --gateway-option 'worker_cores' is not KEY=VALUE"),
     (["--task-timeout", "-5"], "error: --task-timeout -5: must be 0 (no limit) or more seconds"),
     (["--steps", "step3", "--fixCat", "30-45_EE"],
      "error: --fixCat refits one category in step 1, which --steps step3 does not run: use --steps step1")],
)  # fmt: skip
def test_bad_numbers_and_options_are_one_line_before_any_work(argv, message, capsys, tmp_path):
    from getCalibrationFactor import main

    assert main([*argv, "--output_path", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == message and not any(tmp_path.iterdir())


@pytest.mark.parametrize(("argv", "limit"), [([], 600.0), (["--task-timeout", "3600"], 3600.0), (["--task-timeout", "0"], None)])
def test_the_task_time_limit_reaches_the_request(argv: list[str], limit: float | None):
    assert request_from_args(build_parser().parse_args(argv)).execution.task_timeout_s == limit


@pytest.mark.parametrize(
    ("argv", "mode"),
    [([], "local"), (["--workers", "0"], None), (["--workers", "2"], "local"), (["--no-dask-client"], None),
     (["--workers", "0", "--scheduler", "tcp://h:8786"], "scheduler"), (["--workers", "0", "--dask", "gateway"], "gateway")],
)  # fmt: skip
def test_workers_0_runs_serially_in_process_unless_a_cluster_is_named(argv: list[str], mode: str | None):
    assert request_from_args(build_parser().parse_args(argv)).execution.dask_mode == mode


@pytest.mark.parametrize(
    ("argv", "formats"),
    [([], ("png", "pdf")), (["--plot-formats", "png"], ("png",)), (["--plot-formats", "pdf", "pdf"], ("pdf",)),
     (["--no-plots", "--plot-formats", "png"], ())],
)  # fmt: skip
def test_plot_formats_reach_the_request(argv: list[str], formats: tuple[str, ...]):
    request = request_from_args(build_parser().parse_args(argv))
    assert request.figures.formats == formats and request.figures.enabled == bool(formats)
