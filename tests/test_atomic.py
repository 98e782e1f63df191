"""Outputs are renamed into place whole and get the mode the umask says, whichever writer made them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lib.io.atomic import atomic_path, umask_mode, write_text_atomic


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_text_outputs_get_the_umask_mode(tmp_path, umask):
    path = write_text_atomic(tmp_path / "table.csv", "a,b\n")
    assert _mode(path) == 0o666 & ~umask == umask_mode()


def test_a_figure_written_through_atomic_path_gets_the_umask_mode(tmp_path, umask):
    with atomic_path(tmp_path / "fits" / "fit_30-45_BB.png") as tmp:
        tmp.write_bytes(b"\x89PNG")
    assert _mode(tmp_path / "fits" / "fit_30-45_BB.png") == 0o666 & ~umask


def test_a_correction_json_gets_the_umask_mode(tmp_path, umask):
    from lib.correction.writer import atomic_write_bytes

    target = tmp_path / "res_calib.json"
    atomic_write_bytes(target, b"{}")
    assert _mode(target) == 0o666 & ~umask


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "table.csv") as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_keep_mode_keeps_the_replaced_files_bits_and_durable_writes_the_same_bytes(tmp_path):
    target = tmp_path / "correction_filelist.yaml"
    target.write_text("old\n")
    os.chmod(target, 0o664)
    with atomic_path(target, durable=True, keep_mode=True) as tmp:
        tmp.write_text("new\n")
    assert target.read_text() == "new\n" and _mode(target) == 0o664
    with atomic_path(target) as tmp:
        tmp.write_text("newer\n")
    assert _mode(target) == umask_mode()


def test_without_create_parent_a_missing_directory_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "missing" / "c.json", create_parent=False) as tmp:
            tmp.write_text("{}")
    assert list(tmp_path.iterdir()) == []
