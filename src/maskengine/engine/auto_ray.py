"""The fully automatic stage on a Ray cluster: the local runner's work as a Ray Data job.

The driver lists the images and keeps those whose JSON is not complete (as the local runner
does), then a Ray Data pipeline hands them, one per block, to a pool of actors; each actor
loads the model once and runs the local runner's per-image function (`auto.annotate`): it
reads the image, generates, and writes the SA-1B JSON atomically, so the files are the
local runner's, byte for byte. Only a small row per image (masks, error) travels back; the
driver lists failures in errors.jsonl, shows progress and writes the summary.

Inputs and outputs are paths every worker can reach (a shared filesystem). A worker that
dies loses only its images in flight: Ray restarts the actor and retries its tasks, and an
image whose JSON was written before the death is not redone. Ray is imported only here, and
only when a job runs (`pip install 'maskengine[ray]'`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import remove_stale_temps
from .auto import (
    DEFAULT_MAX_PIXELS,
    AutoSummary,
    Job,
    annotate,
    finish_run,
    is_done,
    log_error,
    plan_run,
    progress_bar,
)


@dataclass(frozen=True)
class ImageTiming:
    """When a worker processed one image (wall clock, seconds since the epoch)."""

    name: str
    worker: str  # host:pid of the actor's process
    started: float
    ended: float


class RayJobError(RuntimeError):
    """The Ray job could not run or stopped (Ray missing, a worker that cannot load the
    model, a lost cluster); the images finished before it are kept, a rerun resumes."""


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide a Ray job runs."""

    address: str | None = None  # an existing cluster ("HOST:PORT", "auto"); None: a local Ray
    workers: int = 2  # actors, one model each
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0  # > 0: each actor runs its model on a GPU ("cuda")
    threads: int | None = None  # torch threads per actor; None: cpus_per_worker, at least 1
    # A local Ray started for the job: its session folder (None: Ray's default).
    temp_dir: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.cpus_per_worker <= 0:
            raise ValueError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker}")
        if self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    @property
    def worker_threads(self) -> int:
        return self.threads or max(1, int(self.cpus_per_worker))


@dataclass(frozen=True)
class ModelSource:
    """How each actor loads the model: `create_model(name, checkpoint, device)`. Paths must
    be reachable from every worker (made absolute on the driver)."""

    name: str | None
    checkpoint: str | None
    device: str = "cpu"

    def absolute(self) -> ModelSource:
        def fix(p: str | None) -> str | None:
            return str(Path(p).resolve()) if p and Path(p).exists() else p

        return ModelSource(fix(self.name), fix(self.checkpoint), self.device)


class Annotator:
    """One Ray actor: the model loaded once, then one image per call. Rows in and out are
    columns of a Ray Data batch (numpy arrays of objects)."""

    def __init__(self, model: ModelSource, generator_config: Any, *, overlay: bool,
                 max_pixels: int, threads: int) -> None:
        import dataclasses

        from ..generator import MaskGenerator
        from ..modeling import create_model
        from ..threads import set_process_threads

        set_process_threads(threads)
        sam = create_model(model.name, model.checkpoint, model.device)
        self.generator = MaskGenerator(
            sam, dataclasses.replace(generator_config, output_mode="coco_rle"))
        self.overlay = overlay
        self.max_pixels = max_pixels

    def __call__(self, batch: dict) -> dict:
        import socket

        worker = f"{socket.gethostname()}:{os.getpid()}"
        out: dict[str, list] = {"name": [], "masks": [], "error": [], "worker": [],
                                "started": [], "ended": []}
        for path, name, json_path, overlay_path in zip(
                batch["path"], batch["name"], batch["json_path"], batch["overlay_path"],
                strict=True):
            job = Job(Path(path), str(name), Path(json_path), Path(overlay_path))
            started = time.time()
            if is_done(job, self.overlay):  # a retried task: written before a worker died
                masks, error = _count_masks(job.json_path), ""
            else:
                res = annotate(job, self.generator, overlay=self.overlay,
                               max_pixels=self.max_pixels)
                masks, error = (res.masks if res.masks is not None else -1), res.error or ""
            out["name"].append(job.name)
            out["masks"].append(masks)
            out["error"].append(error)
            out["worker"].append(worker)
            out["started"].append(started)
            out["ended"].append(time.time())
        return out


def _count_masks(path: Path) -> int:
    import json

    return len(json.loads(path.read_text())["annotations"])


def _import_ray():  # noqa: ANN202
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayJobError("the Ray runner needs Ray Data: pip install 'maskengine[ray]'") from exc
    return ray


def _connect(ray: Any, cfg: RayConfig) -> bool:
    """Join the cluster at cfg.address, or start a local Ray for this job. True when this
    call started Ray (so it must shut it down)."""
    if ray.is_initialized():
        return False
    common = {"logging_level": "WARNING", "log_to_driver": True}
    if cfg.address:
        ray.init(address=cfg.address, **common)
    else:
        ray.init(address="local", include_dashboard=False, _temp_dir=cfg.temp_dir,
                 **common)
    return True


def _check_resources(ray: Any, cfg: RayConfig) -> None:
    total = ray.cluster_resources()
    if cfg.gpus_per_worker > 0 and total.get("GPU", 0) < cfg.gpus_per_worker:
        raise ValueError(f"--gpus-per-worker {cfg.gpus_per_worker}: the Ray cluster has "
                         f"{total.get('GPU', 0):g} GPUs")
    if total.get("CPU", 0) < cfg.cpus_per_worker:
        raise ValueError(f"the Ray cluster has {total.get('CPU', 0):g} CPUs, one worker needs "
                         f"{cfg.cpus_per_worker:g}")


def run_auto_ray(
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    model: ModelSource,
    generator_config: Any,
    cfg: RayConfig,
    *,
    overlay: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    on_image: Callable[[Job, int], None] | None = None,
    on_timing: Callable[[ImageTiming], None] | None = None,
) -> AutoSummary:
    """`run_auto` on Ray: the same files in `out_dir` (SA-1B JSON per image, errors.jsonl,
    summary.json), the same skipping of complete images, `on_image(job, masks)` on the
    driver as each image is done, and `on_timing` with when and where each image (done or
    failed) was processed; see the module docstring."""
    for p in [*inputs, out_dir]:
        if "://" in str(p):
            raise ValueError(f"{p}: give a path on a filesystem every worker mounts; "
                             "object-store URLs are not supported by the Ray runner yet")
    out = Path(out_dir).resolve()
    plan = plan_run([Path(p).resolve() for p in inputs], out, overlay=overlay,
                    max_pixels=max_pixels)
    ray = _import_ray()
    if model.device == "cpu" and cfg.gpus_per_worker > 0:
        model = ModelSource(model.name, model.checkpoint, "cuda")
    processed = failed = masks = 0
    t0 = time.perf_counter()
    if not plan.todo:  # all done already: no cluster needed
        return finish_run(out, plan, 0, 0, 0, time.perf_counter() - t0)
    started = _connect(ray, cfg)
    try:
        _check_resources(ray, cfg)
        rows = _pipeline(ray, plan.todo, model.absolute(), generator_config, cfg,
                         overlay=overlay, max_pixels=max_pixels)
        by_name = {j.name: j for j in plan.todo}
        with progress_bar(progress) as bar:
            task = bar.add_task("auto (ray)", total=len(plan.jobs),
                                completed=len(plan.jobs) - len(plan.todo), masks=0, rate=0.0)
            for row in rows:
                if on_timing is not None:
                    on_timing(ImageTiming(str(row["name"]), str(row["worker"]),
                                          float(row["started"]), float(row["ended"])))
                if row["error"]:
                    log_error(plan.errors_path, by_name[row["name"]], row["error"])
                    failed += 1
                else:
                    processed += 1
                    masks += int(row["masks"])
                    if on_image is not None:
                        on_image(by_name[row["name"]], int(row["masks"]))
                rate = (processed + failed) / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, advance=1, masks=masks, rate=rate)
    except (ValueError, KeyboardInterrupt):
        raise
    except Exception as exc:  # Ray's own errors (a worker's failed start, a lost cluster)
        why = str(exc).strip().splitlines()
        raise RayJobError(f"the Ray job stopped after {processed + failed} images "
                          f"({type(exc).__name__}: {why[-1] if why else ''}); the finished "
                          "images are kept and a rerun resumes") from exc
    finally:
        if started:
            ray.shutdown()
    for folder in {j.json_path.parent for j in plan.todo}:
        remove_stale_temps(folder)  # a worker killed while writing leaves one behind
    return finish_run(out, plan, processed, failed, masks, time.perf_counter() - t0)


def _pipeline(ray: Any, todo: list[Job], model: ModelSource, generator_config: Any,
              cfg: RayConfig, *, overlay: bool, max_pixels: int):  # noqa: ANN202
    """The rows (name, masks, error, worker, started, ended) of the images of `todo`, as
    they finish."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours shows images, masks and images per second
    ctx.print_on_execution_start = False
    items = [{"path": str(j.path), "name": j.name, "json_path": str(j.json_path),
              "overlay_path": str(j.overlay_path)} for j in todo]
    # One image per block: a task lost with its worker redoes one image, and work spreads
    # over the actors image by image.
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(
        Annotator, batch_size=1, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=cfg.workers),
        num_cpus=cfg.cpus_per_worker, num_gpus=cfg.gpus_per_worker or None,
        fn_constructor_args=(model, generator_config),
        fn_constructor_kwargs={"overlay": overlay, "max_pixels": max_pixels,
                               "threads": cfg.worker_threads},
    )
    return ds.iter_rows()
