"""The one atomic-write helper: whole files or nothing, unique temp names, stale temps removed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

import pytest

from maskengine.atomic import atomic_open, remove_stale_temps, temp_path, write_atomic


def test_write_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_atomic(path, "old")
    write_atomic(path, b"new")
    assert path.read_text() == "new"
    assert os.listdir(path.parent) == ["a.json"]  # no temp file left


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "a.bin"
    write_atomic(path, b"old")
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write(b"half")
        raise RuntimeError("killed halfway")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_mode_and_umask(tmp_path):
    write_atomic(tmp_path / "secret", "t", mode=0o600)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_temp_names_are_unique(tmp_path):
    names = {temp_path(tmp_path / "x").name for _ in range(100)}
    assert len(names) == 100


def test_concurrent_writers_do_not_collide(tmp_path):
    path = tmp_path / "shared.txt"
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(20):
                write_atomic(path, f"{i}" * 1000)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    text = path.read_text()
    assert len(text) == 1000 and len(set(text)) == 1


def test_stale_temps_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".a.json.{pid}.0123abcd.tmp"
    live = tmp_path / f".a.json.{os.getpid()}.0123abcd.tmp"
    other = tmp_path / ".notes.tmp"  # not ours: kept
    for f in (stale, live, other):
        f.write_text("x")
    assert remove_stale_temps(tmp_path) == 1
    assert not stale.exists() and live.exists() and other.exists()
    assert remove_stale_temps(tmp_path / "missing") == 0
