"""A throwaway PostgreSQL cluster from Debian's postgresql package, on a free loopback port,
for the store's PostgreSQL tests and for `benchmarks/load.py`."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise FileNotFoundError(f"{name} not found: install Debian's postgresql package "
                                "(make setup)")
    return found[-1]


def _as_owner(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def throwaway_postgres(max_connections: int = 100) -> Iterator[str]:
    """Start a fresh cluster (fsync off: nothing in it outlives the block); yields its
    SQLAlchemy URL; stops it and removes its files at the end."""
    tmp = tempfile.mkdtemp(prefix="maskengine-pg-")
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
    data = os.path.join(tmp, "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(_as_owner([_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)
    opts = (f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c max_connections={max_connections}")
    subprocess.run(_as_owner([_bin("pg_ctl"), "-D", data, "-o", opts, "-w", "-l",
                              os.path.join(tmp, "log"), "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_owner([_bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
