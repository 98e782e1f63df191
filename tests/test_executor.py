"""Executors: results in task order, a crashing task is retried once and otherwise stops the run naming it, progress only where wanted."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib.errors import ExecutionError
from lib.executor import PROGRESS_ENV, STOP_GRACE_S, InlineExecutor, ProcessExecutor, run_in_worker, stop_pool, worker_pool
from tests.helpers_faults import square_always_killed, square_killed_once, write_slowly
from tests.helpers_tasks import square_or_crash


def test_inline_keeps_order():
    assert InlineExecutor().map(square_or_crash, [3, 1, 2], ["a", "b", "c"]) == [9, 1, 4]


def test_process_pool_keeps_order():
    assert ProcessExecutor(2).map(square_or_crash, list(range(6)), [str(i) for i in range(6)]) == [0, 1, 4, 9, 16, 25]


@pytest.mark.slow
def test_a_task_that_crashes_on_every_try_stops_the_map_naming_it_after_the_others():
    tasks = [2, -1, 3, -1, 4]
    finished: dict[int, int] = {}
    with pytest.raises(ExecutionError) as err:
        ProcessExecutor(2).map(square_or_crash, tasks, ["a", "crash1", "b", "crash2", "c"], on_result=finished.__setitem__)
    message = str(err.value)
    assert message.startswith("could not run crash1, crash2: the worker process died on each of 2 tries") and "\n" not in message
    assert finished == {0: 4, 2: 9, 4: 16}, "the other tasks finish and are handed on (a cache keeps them for the re-run)"


def test_a_worker_killed_once_is_retried_and_gives_the_same_result(tmp_path, caplog):
    tasks = [(3, str(tmp_path / "never")), (5, str(tmp_path / "kill-once")), (7, str(tmp_path / "never"))]
    (tmp_path / "never").touch()
    with caplog.at_level(logging.INFO, logger="lib.executor"):
        assert ProcessExecutor(2).map(square_killed_once, tasks, ["a", "b", "c"]) == [9, 25, 49]
    assert "worker process died while 'b' was running; re-running it alone" in caplog.text


def test_a_task_killed_every_time_is_one_line_naming_it():
    with pytest.raises(ExecutionError, match=r"^could not run 30-45_BB: the worker process died on each of 2 tries"):
        ProcessExecutor(1).map(square_always_killed, [-1], ["30-45_BB"])


EXECUTORS = [InlineExecutor, lambda: ProcessExecutor(2)]


@pytest.mark.parametrize("make", EXECUTORS, ids=["inline", "process"])
def test_progress_is_silent_when_stderr_is_not_a_terminal(make, monkeypatch, capsys):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    make().map(square_or_crash, [1, 2, 3], ["a", "b", "c"], progress="files")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("make", EXECUTORS, ids=["inline", "process"])
def test_progress_forced_shows_counts_and_logs_a_summary(make, monkeypatch, capsys, caplog):
    monkeypatch.setenv(PROGRESS_ENV, "1")
    caplog.set_level(logging.INFO, logger="lib.executor")
    make().map(square_or_crash, [1, 2, 3], ["a", "b", "c"], progress="files")
    err = capsys.readouterr().err
    assert "\rfiles: 1/3 (" in err and re.search(r"\rfiles: 3/3 \(\d+\.\d/s\)\n$", err)
    assert re.search(r"files: 3/3 done in \d+\.\d s \(\d+\.\d/s\)", caplog.text)


def test_progress_silenced_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    InlineExecutor().map(square_or_crash, [1, 2], ["a", "b"], progress="files")
    assert "files: 2/2" in capsys.readouterr().err
    monkeypatch.setenv(PROGRESS_ENV, "0")
    InlineExecutor().map(square_or_crash, [1, 2], ["a", "b"], progress="files")
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_dask_progress_silent_unless_forced(monkeypatch, capsys, caplog):
    pytest.importorskip("distributed")
    from lib.cluster import dask_client
    from lib.executor import DaskExecutor

    tasks = list(range(5))
    names = [f"t{i}" for i in tasks]
    caplog.set_level(logging.INFO, logger="lib.executor")
    with dask_client("local", 2) as client:
        executor = DaskExecutor(client)
        monkeypatch.delenv(PROGRESS_ENV, raising=False)
        executor.map(square_or_crash, tasks, names, progress="files")
        assert "files" not in capsys.readouterr().err
        monkeypatch.setenv(PROGRESS_ENV, "1")
        assert executor.map(square_or_crash, tasks, names, progress="files") == [t * t for t in tasks]
    err = capsys.readouterr().err
    assert "\rfiles: 1/5 (" in err and "\rfiles: 5/5 (" in err
    assert len(re.findall(r"files: 5/5 done in", caplog.text)) == 2


REPO = Path(__file__).resolve().parent.parent


def test_forkserver_preload_reaches_the_workers(tmp_path):
    """Workers forked after ``start()`` already hold the preloaded module (a fresh interpreter: one forkserver per process)."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "probe.py"
    script.write_text(
        "from lib.executor import ProcessExecutor\n"
        "from tests.helpers_tasks import module_loaded\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessExecutor(2, preload=('json.tool',))\n"
        "    pool.start()\n"
        "    print(pool.map(module_loaded, ['json.tool', 'http.server'], ['a', 'b']))\n"
    )
    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=repo, env={"PYTHONPATH": str(repo)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[True, False]"


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_stopped_pool_ends_its_task_without_writing(tmp_path):
    target = tmp_path / "figure.png"
    pool = worker_pool(1, "spawn")
    pool.submit(run_in_worker, write_slowly, str(target))
    assert _wait_for(lambda: list(tmp_path.glob(".*.tmp*")), 60), "the task must be writing when the pool is stopped"
    started = time.monotonic()
    stop_pool(pool)
    assert time.monotonic() - started < STOP_GRACE_S, "the task unwinds at once, nothing needs killing"
    assert list(tmp_path.iterdir()) == []


def test_workers_end_when_the_process_that_started_them_is_killed(tmp_path):
    """The parent is SIGKILLed while its worker writes: the worker removes its temp file and exits by itself."""
    target, pid_file = tmp_path / "out" / "figure.png", tmp_path / "worker.pid"
    target.parent.mkdir()
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from lib.executor import run_in_worker, worker_pool\n"
        "from tests.helpers_faults import pid_after, write_slowly\n"
        "if __name__ == '__main__':\n"
        "    pool = worker_pool(1, 'spawn')\n"
        "    Path(sys.argv[2]).write_text(str(pool.submit(run_in_worker, pid_after, 0).result()))\n"
        "    pool.submit(run_in_worker, write_slowly, sys.argv[1])\n"
        "    time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script), str(target), str(pid_file)], cwd=REPO, env={"PYTHONPATH": str(REPO)})
    try:
        assert _wait_for(lambda: list(target.parent.glob(".*.tmp*")), 60), "the worker must be writing when its parent dies"
    finally:
        parent.kill()
        parent.wait()
    worker = int(pid_file.read_text())
    gone = _wait_for(lambda: not Path(f"/proc/{worker}").exists(), 10)
    if not gone:
        os.kill(worker, signal.SIGKILL)
    assert gone, "the orphaned worker exits"
    assert list(target.parent.iterdir()) == [], "without finishing its file or leaving the temp one"
