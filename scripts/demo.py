"""`make demo`: sample images -> automatic masks with the bundled tiny model -> SA-1B JSON,
overlay PNGs, and a summary with the recall of the known objects.

Usage: python scripts/demo.py [--out demo-output] [--images 6] [--threads 2]
Everything it writes goes under --out; running it again starts afresh.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo-output")
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from maskengine.cli import app
    from maskengine.data import SceneConfig, generate_scene
    from maskengine.data.sa1b import write_sa1b_folder
    from maskengine.evaluation import RecallCounter
    from maskengine.masks import decode_rle
    from maskengine.modeling.registry import bundled_weights_path

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    images, truth, masks_dir = out / "images", out / "ground_truth", out / "masks"
    images.mkdir(parents=True)

    # 1. Sample images: synthetic scenes from a seed the bundled model never trained on.
    cfg = SceneConfig(height=384, width=512)
    scenes = [generate_scene(cfg, 2024, i) for i in range(args.images)]
    for s in scenes:
        Image.fromarray(s.image).save(images / f"{s.name}.png")
    write_sa1b_folder(scenes, truth)
    print(f"[1/3] {len(scenes)} sample images in {images}/ (their true masks: {truth}/)")

    # 2. Automatic mask generation: the `maskengine auto` command, bundled weights.
    weights = bundled_weights_path("tiny")
    print(f"[2/3] maskengine auto {images} --out {masks_dir} --overlay --model tiny "
          f"(weights: {weights or 'none bundled: random init'})")
    t0 = time.perf_counter()
    # The tiny model's predicted IoUs stay under the official 0.88 filter (with it and
    # stability 0.95 it keeps 1 mask on 6 other scenes), so the demo uses the thresholds
    # chosen on scenes of another seed (benchmarks/generator_thresholds.py, seed 3000: the
    # best AR@100 with at most 2 masks per true mask): no IoU filter, stability 0.8, the
    # official 32 x 32 grid. See docs/training.md for the model's figures.
    app(["auto", str(images), "--out", str(masks_dir), "--overlay", "--model", "tiny",
         "--threads", str(args.threads), "--no-progress", "--points-per-side", "32",
         "--pred-iou-thresh", "0.0", "--stability-score-thresh", "0.8"],
        standalone_mode=False)
    seconds = time.perf_counter() - t0

    # 3. Summary: masks per image and how many of the known objects were found.
    print("[3/3] summary")
    recall = RecallCounter(ks=(100, 1000))
    total = 0
    for s in scenes:
        record = json.loads((masks_dir / f"{s.name}.json").read_text())
        anns = record["annotations"]
        total += len(anns)
        shape = s.image.shape[:2]
        props = (np.stack([decode_rle(a["segmentation"]) for a in anns]) if anns
                 else np.zeros((0, *shape), bool))
        recall.add(props, np.array([a["predicted_iou"] for a in anns]), s.masks)
        ious = [a["predicted_iou"] for a in anns]
        print(f"  {s.name}: {len(anns):3d} masks (true: {len(s.masks):3d}), mean predicted "
              f"IoU {np.mean(ious) if ious else 0:.3f}")
    r = recall.summary()
    true = sum(len(s.masks) for s in scenes)
    print(f"  {total} masks for {true} true masks ({total / max(true, 1):.2f} per true mask) "
          f"in {seconds:.1f} s; recall of the true masks AR@100 {r['ar@100']:.3f}, "
          f"AR@1000 {r['ar@1000']:.3f}")
    print(f"\nLook at: {masks_dir}/*.overlay.png (masks painted on the images)")
    print(f"         {masks_dir}/*.json (SA-1B: COCO RLE per mask)")


if __name__ == "__main__":
    main()
