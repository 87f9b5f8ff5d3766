"""Encoder and decoder speed of maskengine, side by side with the official implementation
when it is importable (`make bench-reference` runs this in .venv-ref, which has it).

vit_b dimensions, random weights (the same weights in both), one 1024x1024 image, fp32, CPU,
2 threads. Writes benchmarks/results/encoder.json (or encoder-ours.json without the
official package). Usage: python benchmarks/encoder.py [--repeat 2] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import environment, official_available, timeit_side_by_side, write_results  # noqa: E402
from maskengine import Sam  # noqa: E402
from maskengine.modeling.registry import MODEL_CONFIGS  # noqa: E402
from maskengine.threads import set_process_threads  # noqa: E402


def build_official(state_dict: dict) -> torch.nn.Module:
    from segment_anything import sam_model_registry

    model = sam_model_registry["vit_b"]()
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def decoder_call(model: torch.nn.Module, emb: torch.Tensor, coords, labels):
    """Prompt encoder + mask decoder for B prompts on one image (same call for both
    implementations: the official MaskDecoder copies the embedding per prompt itself)."""
    sparse, dense = model.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    return model.mask_decoder(
        image_embeddings=emb,
        image_pe=model.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--quick", action="store_true", help="skip the encoder timing")
    args = parser.parse_args()
    set_process_threads(2)
    torch.manual_seed(0)

    cfg = MODEL_CONFIGS["vit_b"]
    ours = Sam.from_config(cfg).eval()
    models = {"maskengine": ours}
    if official_available():
        models["official"] = build_official(ours.state_dict())
    image = torch.randn(1, 3, 1024, 1024)
    out: dict = {"environment": environment(), "model": "vit_b (random weights)",
                 "dtype": "float32", "image": "1x3x1024x1024", "encoder": {}, "decoder": {}}

    with torch.inference_mode():
        feats = {}
        for name, m in models.items():
            feats[name] = m.image_encoder(image)
        emb = feats["maskengine"]
        if "official" in models:
            out["encoder"]["max_abs_diff"] = (feats["official"] - emb).abs().max().item()
        if not args.quick:
            fns = {name: (lambda m=m: m.image_encoder(image)) for name, m in models.items()}
            for name, t in timeit_side_by_side(fns, args.repeat, warmup=0).items():
                out["encoder"][name] = t
                print(f"encoder {name}: {t['min_s']:.2f} s (min of {args.repeat})", flush=True)

        gen = torch.Generator().manual_seed(1)
        for b in args.batches:
            coords = torch.rand(b, 1, 2, generator=gen) * 1024
            labels = torch.ones(b, 1, dtype=torch.int)
            row: dict = {}
            results = {}
            for name, m in models.items():
                results[name] = decoder_call(m, emb, coords, labels)
            fns = {name: (lambda m=m, c=coords, lab=labels: decoder_call(m, emb, c, lab))
                   for name, m in models.items()}
            for name, t in timeit_side_by_side(fns, max(3, 128 // b)).items():
                row[name] = {**t, "ms_per_prompt": 1000 * t["min_s"] / b}
                print(f"decoder batch {b} {name}: {row[name]['ms_per_prompt']:.1f} ms/prompt",
                      flush=True)
            if "official" in results:
                row["max_abs_diff_low_res"] = (
                    results["official"][0] - results["maskengine"][0]).abs().max().item()
                row["max_abs_diff_iou"] = (
                    results["official"][1] - results["maskengine"][1]).abs().max().item()
                row["speedup"] = row["official"]["min_s"] / row["maskengine"]["min_s"]
            out["decoder"][f"batch_{b}"] = row

    if "official" in models and not args.quick:
        out["encoder"]["speedup"] = (
            out["encoder"]["official"]["min_s"] / out["encoder"]["maskengine"]["min_s"])
    name = "encoder" if "official" in models else "encoder-ours"
    path = write_results(name + ("-quick" if args.quick else ""), out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
