"""Executors: results in task order, and a crashing task never takes the run down with it."""

from __future__ import annotations

import pytest

from lib.executor import InlineExecutor, ProcessExecutor, TaskCrash
from tests.helpers_tasks import square_or_crash


def test_inline_keeps_order():
    assert InlineExecutor().map(square_or_crash, [3, 1, 2], ["a", "b", "c"]) == [9, 1, 4]


def test_process_pool_keeps_order():
    assert ProcessExecutor(2).map(square_or_crash, list(range(6)), [str(i) for i in range(6)]) == [0, 1, 4, 9, 16, 25]


@pytest.mark.slow
def test_segfault_is_isolated_and_reported():
    tasks = [2, -1, 3, 4]
    out = ProcessExecutor(2).map(square_or_crash, tasks, ["a", "crash", "b", "c"])
    assert out[0] == 4 and out[2] == 9 and out[3] == 16
    assert isinstance(out[1], TaskCrash) and out[1].name == "crash" and "crashed twice" in out[1].reason
