"""A throwaway Ray cluster on 127.0.0.1 (`ray start --head`), for the Ray runner's tests and
`benchmarks/auto_ray.py`.

Every process of the cluster carries a marker in its environment (the raylet hands its
environment to the workers it starts), so the cluster is stopped by killing exactly those
processes by id: `ray stop` would stop every Ray on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
MARKER = "MASKENGINE_TEST_RAY"


@dataclass(frozen=True)
class Cluster:
    address: str
    temp_dir: str
    session: int  # the session id of `ray start` and the processes it started
    env: dict  # the environment a driver or a worker of this cluster runs with

    def processes(self) -> dict[int, str]:
        """pid -> command line (process title) of the live processes of this cluster."""
        return cluster_processes(self.temp_dir, self.session)


def cluster_processes(tag: str, session: int) -> dict[int, str]:
    """Processes in the cluster's session (Ray's daemons and agents) or with its marker in
    their environment (the workers, which start sessions of their own; a process title
    written over the environment hides it, hence both)."""
    found = {}
    want = f"{MARKER}={tag}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[-1].split()
            if fields[0] == b"Z":  # a zombie: gone already
                continue
            if int(fields[3]) != session:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if want not in f.read().split(b"\0"):
                        continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):  # exited meanwhile, or not ours to read
            continue
        found[int(entry)] = cmd
    return found


def _kill_all(tag: str, session: int) -> None:
    for _ in range(50):
        procs = cluster_processes(tag, session)
        if not procs:
            return
        for pid in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)


@contextmanager
def throwaway_ray(num_cpus: int = 2, object_store_mb: int = 200) -> Iterator[Cluster]:
    """Start a one-node cluster (`num_cpus` worker slots, no dashboard) in a fresh temporary
    folder under /tmp (short: Ray's socket paths must stay under 108 characters); yield it;
    kill its processes and remove the folder at the end, whatever happened."""
    tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, MARKER: tmp, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    ray = str(Path(sys.executable).parent / "ray")
    cmd = [ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
           f"--num-cpus={num_cpus}", "--num-gpus=0", "--include-dashboard=false",
           f"--object-store-memory={object_store_mb * 1_000_000}", f"--temp-dir={tmp}",
           "--disable-usage-stats"]
    # Its own session: `ray start` leads it (session id = its pid), its daemons stay in it.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{out}")
        yield Cluster(f"127.0.0.1:{port}", tmp, proc.pid, env)
    finally:
        proc.kill()
        _kill_all(tmp, proc.pid)
        shutil.rmtree(tmp, ignore_errors=True)
