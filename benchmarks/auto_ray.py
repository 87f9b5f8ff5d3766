"""`maskengine auto` on one machine against the Ray runner with 1 and 2 workers.

The same images and settings through the local runner (one torch thread, as one Ray
worker has) and through `run_auto_ray` with a local Ray started for each job (what
`maskengine auto --ray` does) with 1 and 2 workers. From the workers' own timestamps of
each image: the fixed cost of a Ray job (job start to the first image: start Ray, start the
actors, load one model each; and the last image to the job's end), the generator's time per
image in a worker, and Ray's overhead per image (the gap between two images on one worker:
dispatch, the row back). Images per second over the whole job and without its start. The
outputs are checked identical to the local runner's. Writes benchmarks/results/auto_ray.json.

    make bench-auto-ray
    python benchmarks/auto_ray.py [--images 16] [--points-per-side 16]
"""

from __future__ import annotations

import filecmp
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import environment, parse_config, write_results  # noqa: E402
from maskengine import MaskGenerator, create_model  # noqa: E402
from maskengine.config import GeneratorConfig  # noqa: E402
from maskengine.data import SceneConfig, generate_scene  # noqa: E402
from maskengine.engine.auto import run_auto  # noqa: E402
from maskengine.engine.auto_ray import ModelSource, RayConfig, run_auto_ray  # noqa: E402
from maskengine.threads import set_process_threads  # noqa: E402


@dataclass(frozen=True)
class AutoRayConfig:
    images: int = 16
    size: int = 256
    points_per_side: int = 16
    seed: int = 4100
    model: str = "tiny"
    out: str = "auto_ray"


def _ray_figures(timings: list, t_start: float, t_end: float, n: int) -> dict:
    """Fixed cost, per-image time and overhead from the workers' timestamps (wall clock)."""
    first, last = min(t.started for t in timings), max(t.ended for t in timings)
    gaps = []
    for w in {t.worker for t in timings}:
        mine = sorted((t for t in timings if t.worker == w), key=lambda t: t.started)
        gaps += [b.started - a.ended for a, b in zip(mine, mine[1:], strict=False)]
    return {"images": n, "seconds": t_end - t_start, "images_per_second": n / (t_end - t_start),
            "start_seconds": first - t_start, "end_seconds": t_end - last,
            "images_per_second_without_start": n / (last - first) if last > first else None,
            "worker_seconds_per_image": statistics.mean(t.ended - t.started for t in timings),
            "overhead_seconds_per_image": statistics.mean(gaps) if gaps else None,
            "workers_seen": len({t.worker for t in timings})}


def main() -> None:
    cfg = parse_config(AutoRayConfig, __doc__.split("\n")[0])
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a Ray of this process only
    work = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    images = work / "images"
    images.mkdir()
    for i in range(cfg.images):
        scene = generate_scene(SceneConfig(height=cfg.size, width=cfg.size), cfg.seed, i)
        Image.fromarray(scene.image).save(images / f"scene{i:03d}.png")
    gen_cfg = GeneratorConfig(points_per_side=cfg.points_per_side, pred_iou_thresh=0.0,
                              stability_score_thresh=0.8, output_mode="coco_rle")
    load = {"before": os.getloadavg()}
    runs = {}
    n = cfg.images
    try:
        set_process_threads(1)
        gen = MaskGenerator(create_model(cfg.model), gen_cfg)
        t0 = time.time()
        summary = run_auto([images], work / "local", gen, progress=False)
        seconds = time.time() - t0
        assert summary.processed == n, summary
        runs["local"] = {"images": n, "seconds": seconds, "images_per_second": n / seconds,
                         "seconds_per_image": seconds / n}
        print("local", runs["local"], flush=True)
        for workers in (1, 2):
            timings: list = []
            t0 = time.time()
            summary = run_auto_ray(
                [images], work / f"ray{workers}", ModelSource(cfg.model, None), gen_cfg,
                RayConfig(workers=workers, threads=1, temp_dir=str(work / f"t{workers}")),
                progress=False, on_timing=timings.append)
            t1 = time.time()
            assert summary.processed == n, summary
            name = f"ray_{workers}_workers"
            runs[name] = _ray_figures(timings, t0, t1, n)
            print(name, runs[name], flush=True)
            same = all(filecmp.cmp(work / "local" / f"scene{i:03d}.json",
                                   work / f"ray{workers}" / f"scene{i:03d}.json",
                                   shallow=False) for i in range(n))
            assert same, f"{name}: outputs differ from the local runner's"
        load["after"] = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    local, one, two = runs["local"], runs["ray_1_workers"], runs["ray_2_workers"]
    derived = {
        "ray_overhead_seconds_per_image": one["overhead_seconds_per_image"],
        "ray_overhead_share_of_local_image_time": one["overhead_seconds_per_image"]
        / local["seconds_per_image"],
        "ray_fixed_seconds_1_worker": one["start_seconds"] + one["end_seconds"],
        "ray_fixed_seconds_2_workers": two["start_seconds"] + two["end_seconds"],
        "speedup_2_workers_over_1_without_start": two["images_per_second_without_start"]
        / one["images_per_second_without_start"],
    }
    print(derived)
    path = write_results(cfg.out, {
        "command": "python benchmarks/auto_ray.py " + shlex.join(sys.argv[1:]),
        "config": asdict(cfg), "generator": asdict(gen_cfg), "environment": environment(),
        "load_average": load, "runs": runs, "derived": derived, "outputs_identical": True,
        "note": ("2 CPU cores shared with other jobs (see load_average): Ray's 2 workers "
                 "get at most the 2 cores the local runner's 1 thread shares; the Ray runs "
                 "each start a local Ray (ray.init) as `maskengine auto --ray` does"),
    })
    print("wrote", path)


if __name__ == "__main__":
    main()
