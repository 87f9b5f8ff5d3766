"""Helpers shared by the benchmark scripts: timing, environment description, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from maskengine.atomic import write_atomic

RESULTS = Path(__file__).parent / "results"


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


def bundled_sha256(name: str = "tiny") -> str:
    """SHA-256 of a bundled model's weights: a study's figures hold for these weights only."""
    import hashlib

    from maskengine.modeling.registry import bundled_weights_path

    return hashlib.sha256(bundled_weights_path(name).read_bytes()).hexdigest()


def run_threads(threads: list) -> float:
    """Start the threads, wait for all; the wall-clock seconds they took together."""
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def timeit(fn: Callable[[], object], repeat: int, warmup: int = 1) -> dict:
    """Run `fn` warmup + repeat times; seconds as median, min and all runs."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(runs), "min_s": min(runs), "runs_s": runs}


def timeit_side_by_side(
    fns: dict[str, Callable[[], object]], repeat: int, warmup: int = 1
) -> dict[str, dict]:
    """Time several implementations interleaved (A, B, A, B, ...), so that load from other
    processes hits them alike; report each one's median and minimum."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t0)
    return {
        name: {"median_s": statistics.median(r), "min_s": min(r), "runs_s": r}
        for name, r in runs.items()
    }


def write_results(name: str, payload: dict) -> Path:
    """Write benchmarks/results/<name>.json atomically."""
    path = RESULTS / f"{name}.json"
    write_atomic(path, json.dumps(payload, indent=2) + "\n")
    return path


def official_available() -> bool:
    try:
        import segment_anything  # noqa: F401
    except ImportError:
        return False
    return True


def parse_config(cls: type, description: str) -> object:
    """A benchmark's dataclass config from the command line: one --option per field, its
    default and type from the dataclass (`--train-images 20` sets train_images; a bool
    field is a flag: `--baseline-only` / `--no-baseline-only`)."""
    import argparse
    from dataclasses import asdict

    ap = argparse.ArgumentParser(description=description)
    for name, default in asdict(cls()).items():
        option = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            ap.add_argument(option, action=argparse.BooleanOptionalAction, default=default)
        else:
            ap.add_argument(option, type=type(default), default=default)
    return cls(**vars(ap.parse_args()))
