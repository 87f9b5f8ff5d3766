"""CPU threads: how many torch uses, decided in one place per process.

`set_process_threads` is called once, where a process starts its job (each command, the
server's lifespan hook). Library code never changes the process's setting: the generator's
filtering step, which runs faster on one thread, narrows only its own thread with
`single_threaded`, so other threads (the server's requests) keep theirs.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


def set_process_threads(threads: int | None) -> None:
    """Set the CPU threads torch uses in this process; None or 0 keeps torch's default
    (the number of cores, or OMP_NUM_THREADS)."""
    if threads:
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        torch.set_num_threads(threads)


@functools.cache
def _openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime torch runs on (the copy in torch/lib), or None."""
    lib = Path(torch.__file__).parent / "lib"
    for pattern in ("libgomp*.so*", "libomp*.so*", "libiomp5*.so*", "libomp*.dylib"):
        for path in sorted(lib.glob(pattern)):
            try:
                omp = ctypes.CDLL(str(path))
                omp.omp_get_max_threads.restype = ctypes.c_int
                omp.omp_set_num_threads.argtypes = [ctypes.c_int]
                return omp
            except (OSError, AttributeError):
                continue
    return None


@contextmanager
def single_threaded() -> Iterator[None]:
    """Inside, the calling thread's torch ops run on one CPU thread; the process setting
    and other threads are left alone (OpenMP's thread count is a per-thread setting).
    Where torch's OpenMP runtime cannot be reached, nothing changes but speed."""
    omp = _openmp()
    if omp is None:
        yield
        return
    torch.get_num_threads()  # torch sets up a thread's count lazily: let it do so first
    before = omp.omp_get_max_threads()
    omp.omp_set_num_threads(1)
    try:
        yield
    finally:
        omp.omp_set_num_threads(before)
