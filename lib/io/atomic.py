"""Atomic file writes: a reader never sees a half-written output, an interrupted run keeps the old one."""

from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def umask_mode() -> int:
    """The mode a plain ``open()`` would give a new file here: 0o666 less the process's umask (temporary files are 0600)."""
    current = os.umask(0)
    os.umask(current)
    return 0o666 & ~current


@contextmanager
def atomic_path(target: Path, durable: bool = False, keep_mode: bool = False, create_parent: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; it is renamed onto ``target`` only on success.

    The file gets the umask's mode, or with ``keep_mode`` the mode of the file it replaces.
    ``durable`` flushes it to disk before the rename, for outputs a later job trusts without
    reading them back (the correction JSON). Without ``create_parent`` a missing directory is an error.
    """
    target = Path(target)
    if create_parent:
        target.parent.mkdir(parents=True, exist_ok=True)
    mode = umask_mode()
    if keep_mode and target.exists():
        mode = stat.S_IMODE(target.stat().st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if durable:
            with open(tmp_path, "rb+") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, target)
    except OSError as err:
        if err.filename is None or Path(os.fsdecode(err.filename)) == tmp_path:
            # A write that failed (a full disk) names no file, or the temporary one: name the output instead.
            raise OSError(err.errno, err.strerror or str(err), str(target)) from err
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(target: Path, text: str) -> Path:
    """Write ``text`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)
