"""Atomic file writes: a kill leaves either the old file or the new one, never half of one.

The one way every file of a long job is written (SA-1B JSON, checkpoints, embeddings,
exports, project files, benchmark results): a temporary file beside the target with a name
no other writer uses, fsync, rename over the target, fsync of the folder so the rename
itself survives a power cut. Temporary files that a killed process left behind are
recognised by the process id in their name and removed by `remove_stale_temps`.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

# .<target name>.<pid>.<random>.tmp
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


def temp_path(path: Path) -> Path:
    """A temporary name beside `path` that no other process or thread will pick."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform that cannot open folders: the rename is all we can do
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: int = 0o666) -> Iterator[IO[bytes]]:
    """A binary file to write `path` through: it appears under `path` (fsynced, with
    permissions `mode` minus the umask) only when the block ends without an exception;
    otherwise the target is left as it was. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_atomic(path: str | os.PathLike, data: bytes | str, mode: int = 0o666) -> None:
    """Write `data` (str as UTF-8) to `path` atomically; see `atomic_open`."""
    with atomic_open(path, mode) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete the temporary files in `folder` (not below) whose writing process is gone:
    what a killed run leaves. Temporary files of live processes are kept. Returns how
    many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for file in folder.glob(".*.tmp"):
        m = _TEMP_NAME.match(file.name)
        if m and not _alive(int(m.group(1))):
            file.unlink(missing_ok=True)
            removed += 1
    return removed
