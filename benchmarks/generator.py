"""Automatic mask generation: maskengine's MaskGenerator against the official
SamAutomaticMaskGenerator, same weights, image and parameters, on CPU (2 threads).

Run in .venv-ref (it has both): `make bench-generator`. Each measurement runs in its own
subprocess so that its peak resident memory (ru_maxrss) is its own; the parent checks parity
(mask count, one-to-one matches at mask IoU >= 0.98, predicted IoU / stability / box
differences) and writes benchmarks/results/generator.json.

Model: the reference model of the official architecture (tests/fixtures/reference, 512 input,
so the encoder is negligible and the per-mask work dominates, as in FACTS.md). Image:
reference image0 resized (bilinear). Parameter sets: "defaults" (the official defaults) and
"permissive" (pred_iou_thresh 0.05, stability_score_thresh 0.3: nearly every candidate
survives the filters, the hard case for a generator that works on survivors).

Usage: python benchmarks/generator.py [--quick] [--official-64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import environment, official_available, write_results  # noqa: E402
from maskengine.parity import match_records  # noqa: E402
from maskengine.threads import set_process_threads  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "fixtures" / "reference"
PARAMS = {
    "defaults": {},
    "permissive": {"pred_iou_thresh": 0.05, "stability_score_thresh": 0.3},
}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_official(cfg: dict) -> torch.nn.Module:
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    e = cfg["image_size"] // cfg["patch_size"]
    model = Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg["encoder_depth"], embed_dim=cfg["encoder_embed_dim"],
            img_size=cfg["image_size"], mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=cfg["encoder_num_heads"], patch_size=cfg["patch_size"], qkv_bias=True,
            use_rel_pos=True, global_attn_indexes=cfg["encoder_global_attn_indexes"],
            window_size=cfg["encoder_window_size"], out_chans=cfg["prompt_embed_dim"],
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg["prompt_embed_dim"], image_embedding_size=(e, e),
            input_image_size=(cfg["image_size"], cfg["image_size"]),
            mask_in_chans=cfg["mask_in_chans"],
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=cfg["num_multimask_outputs"],
            transformer=TwoWayTransformer(
                depth=cfg["decoder_depth"], embedding_dim=cfg["prompt_embed_dim"],
                mlp_dim=cfg["decoder_mlp_dim"], num_heads=cfg["decoder_num_heads"],
            ),
            transformer_dim=cfg["prompt_embed_dim"], iou_head_depth=cfg["iou_head_depth"],
            iou_head_hidden_dim=cfg["iou_head_hidden_dim"],
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    sd = torch.load(REFERENCE / "checkpoint.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def make_generator(impl: str, params: dict):
    cfg = json.loads((REFERENCE / "config.json").read_text())
    if impl == "official":
        from segment_anything import SamAutomaticMaskGenerator

        return SamAutomaticMaskGenerator(build_official(cfg), output_mode="coco_rle", **params)
    from maskengine import MaskGenerator, SamConfig, create_model

    model = create_model(SamConfig(**cfg), checkpoint=REFERENCE / "checkpoint.pt")
    # The official single pass (the focus pass is the default for inputs under 1024).
    return MaskGenerator(model, output_mode="coco_rle", focus=False, **params)


def test_image(height: int, width: int) -> np.ndarray:
    img = Image.open(REFERENCE / "image0.png").convert("RGB")
    return np.array(img.resize((width, height), Image.BILINEAR))


def worker(args: argparse.Namespace) -> None:
    """One implementation, one case, in this process: warm up on a small image, time one
    generate() on the real one, report peak RSS."""
    set_process_threads(2)
    params = json.loads(args.params)
    gen = make_generator(args.worker, params)
    gen_small = make_generator(args.worker, {**params, "points_per_side": 4})
    gen_small.generate(test_image(96, 128))
    del gen_small
    image = test_image(args.height, args.width)
    before = rss_mb()
    t0 = time.perf_counter()
    records = gen.generate(image)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    recs = [{k: (v if not hasattr(v, "tolist") else v.tolist())
             for k, v in (r if isinstance(r, dict) else r.to_dict()).items()} for r in records]
    Path(args.out).write_text(json.dumps({
        "seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": before, "records": recs,
    }))


def run_worker(impl: str, h: int, w: int, params: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, __file__, "--worker", impl, "--height", str(h),
               "--width", str(w), "--params", json.dumps(params), "--out", str(out)]
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def compare(h: int, w: int, params: dict, with_official: bool) -> dict:
    row: dict = {"image": f"{h}x{w}", "params": params}
    ours = [run_worker("maskengine", h, w, params)]
    if with_official:
        off = run_worker("official", h, w, params)
        ours.append(run_worker("maskengine", h, w, params))  # again: load on a shared box
        row["official"] = {k: off[k] for k in ("seconds", "peak_rss_mb", "rss_before_mb")}
    best = min(ours, key=lambda r: r["seconds"])
    row["maskengine"] = {k: best[k] for k in ("seconds", "peak_rss_mb", "rss_before_mb")}
    row["maskengine"]["runs_s"] = [r["seconds"] for r in ours]
    row["masks"] = len(best["records"])
    if with_official:
        row["parity"] = match_records(off["records"], best["records"]).to_dict()
        row["speedup"] = off["seconds"] / best["seconds"]
        row["peak_memory_ratio"] = best["peak_rss_mb"] / off["peak_rss_mb"]
    print(json.dumps({k: v for k, v in row.items() if k != "params"}), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small case only")
    parser.add_argument("--official-64", action="store_true",
                        help="also run the official generator at 64 points per side")
    parser.add_argument("--worker", choices=["maskengine", "official"], help=argparse.SUPPRESS)
    parser.add_argument("--height", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    official = official_available()
    result: dict = {"environment": environment(), "model": "reference (tests/fixtures/reference)",
                    "threads": 2, "official_available": official, "speed": [], "memory": []}
    sizes = [(480, 640)] if args.quick else [(750, 1000), (1200, 1800)]
    for h, w in sizes:
        for name, params in PARAMS.items():
            row = compare(h, w, {"points_per_side": 32, **params}, official)
            result["speed"].append({"params_name": name, **row})
    if not args.quick:
        for pps in (32, 64):
            params = {"points_per_side": pps, **PARAMS["permissive"]}
            row = compare(1500, 2250, params, official and (pps == 32 or args.official_64))
            result["memory"].append({"points_per_side": pps, **row})
    name = "generator" + ("-quick" if args.quick else "") + ("" if official else "-ours")
    print(f"wrote {write_results(name, result)}")


if __name__ == "__main__":
    main()
