"""CPU image-encoder time of MobileSAM (`vit_t`) against SAM's ViT-B, and against the
official MobileSAM code when it is importable (`mobile_sam`, with timm, e.g. in .venv-ref).

One 1024x1024 image, fp32, 2 threads, random weights (the same weights in ours and the
official vit_t), the implementations timed interleaved so that other load hits them alike.
Writes benchmarks/results/mobile_sam.json. Usage: python benchmarks/mobile_sam.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import environment, timeit_side_by_side, write_results  # noqa: E402
from maskengine import Sam  # noqa: E402
from maskengine.modeling.registry import MODEL_CONFIGS  # noqa: E402
from maskengine.threads import set_process_threads  # noqa: E402


def build_official(state_dict: dict) -> torch.nn.Module | None:
    try:
        from mobile_sam import sam_model_registry
    except ImportError:
        return None
    model = sam_model_registry["vit_t"]()
    model.load_state_dict(state_dict, strict=True)
    # The official attention caches its bias table when eval() is called: call it after the
    # load, as the official README does, or the biases of the random init are used.
    return model.eval()


def encoder_gflop(name: str) -> float:
    """Floating-point operations of one 1024 image through the encoder (2 per multiply-add),
    counted on the meta device (no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = Sam.from_config(MODEL_CONFIGS[name]).eval()
        image = torch.randn(1, 3, 1024, 1024)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.image_encoder(image)
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_process_threads(args.threads)
    torch.manual_seed(0)
    vit_t = Sam.from_config(MODEL_CONFIGS["vit_t"]).eval()
    vit_b = Sam.from_config(MODEL_CONFIGS["vit_b"]).eval()
    encoders = {"vit_t": vit_t.image_encoder, "vit_b": vit_b.image_encoder}
    official = build_official(vit_t.state_dict())
    if official is not None:
        encoders["vit_t_official"] = official.image_encoder
    image = torch.randn(1, 3, 1024, 1024)
    out: dict = {"environment": environment(), "dtype": "float32", "image": "1x3x1024x1024",
                 "weights": "random (vit_t_official: the same as vit_t)", "encoder": {}}
    with torch.inference_mode():
        if official is not None:
            diff = (official.image_encoder(image) - vit_t.image_encoder(image)).abs().max()
            out["vit_t_max_abs_diff"] = float(diff)
        fns = {name: (lambda e=e: e(image)) for name, e in encoders.items()}
        for name, t in timeit_side_by_side(fns, args.repeat, warmup=1).items():
            out["encoder"][name] = t
            print(f"{name}: {t['min_s']:.3f} s per image (min of {args.repeat})", flush=True)
    enc = out["encoder"]
    out["vit_b_over_vit_t"] = enc["vit_b"]["min_s"] / enc["vit_t"]["min_s"]
    print(f"vit_t encoder is {out['vit_b_over_vit_t']:.1f}x cheaper than vit_b")
    if official is not None:
        out["official_over_ours"] = enc["vit_t_official"]["min_s"] / enc["vit_t"]["min_s"]
        print(f"official vit_t / ours: {out['official_over_ours']:.2f}")
    out["gflop"] = {name: encoder_gflop(name) for name in ("vit_t", "vit_b")}
    for name in ("vit_t", "vit_b"):
        out["encoder"][name]["gflop_per_s"] = out["gflop"][name] / enc[name]["min_s"]
    print("GFLOP per image:", {k: round(v, 1) for k, v in out["gflop"].items()})
    out["parameters_m"] = {
        "vit_t_encoder": sum(p.numel() for p in vit_t.image_encoder.parameters()) / 1e6,
        "vit_b_encoder": sum(p.numel() for p in vit_b.image_encoder.parameters()) / 1e6,
    }
    print("wrote", write_results("mobile_sam", out))


if __name__ == "__main__":
    main()
