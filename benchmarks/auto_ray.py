"""`maskengine auto` on one machine against the Ray runner with 1 and 2 workers.

The same images and settings through the local runner (one torch thread, as one Ray
worker has) and through `run_auto_ray` with a local Ray started for each job (what
`maskengine auto --ray` does). For each run: wall time of the whole job, and the steady rate
between the first and the last image (the job without its start); from these the fixed cost
of a Ray job (start Ray, start the actors, load one model each) and the overhead per image
(Ray's steady time per image per worker against the local runner's). The outputs are checked
identical. Writes benchmarks/results/auto_ray.json.

    make bench-auto-ray
    python benchmarks/auto_ray.py [--images 16] [--points-per-side 16]
"""

from __future__ import annotations

import filecmp
import os
import shlex
import shutil
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


def _timed(run, n: int) -> dict:  # noqa: ANN001 - run(on_image) -> summary
    stamps: list[float] = []
    t0 = time.perf_counter()
    summary = run(lambda _job, _masks: stamps.append(time.perf_counter()))
    total = time.perf_counter() - t0
    assert summary.processed == n, summary
    steady = (stamps[-1] - stamps[0]) / (n - 1)  # seconds per image once running
    return {"seconds": total, "images_per_second": n / total,
            "steady_seconds_per_image": steady, "steady_images_per_second": 1 / steady,
            "start_seconds": total - n * steady, "masks": summary.masks}


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
    try:
        set_process_threads(1)
        gen = MaskGenerator(create_model(cfg.model), gen_cfg)
        runs["local"] = _timed(lambda cb: run_auto([images], work / "local", gen,
                                                   progress=False, on_image=cb), cfg.images)
        print("local", runs["local"], flush=True)
        for workers in (1, 2):
            name = f"ray_{workers}_workers"
            ray_cfg = RayConfig(workers=workers, threads=1,
                                temp_dir=str(work / f"t{workers}"))
            runs[name] = _timed(lambda cb, r=ray_cfg, w=workers: run_auto_ray(
                [images], work / f"ray{w}", ModelSource(cfg.model, None), gen_cfg, r,
                progress=False, on_image=cb), cfg.images)
            print(name, runs[name], flush=True)
            same = all(filecmp.cmp(work / "local" / f"scene{i:03d}.json",
                                   work / f"ray{workers}" / f"scene{i:03d}.json", shallow=False)
                       for i in range(cfg.images))
            assert same, f"{name}: outputs differ from the local runner's"
        load["after"] = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    local, one, two = runs["local"], runs["ray_1_workers"], runs["ray_2_workers"]
    derived = {
        "overhead_seconds_per_image": one["steady_seconds_per_image"]
        - local["steady_seconds_per_image"],
        "ray_job_start_seconds_1_worker": one["start_seconds"],
        "ray_job_start_seconds_2_workers": two["start_seconds"],
        "steady_speedup_2_workers_over_1": one["steady_seconds_per_image"]
        / two["steady_seconds_per_image"],
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
