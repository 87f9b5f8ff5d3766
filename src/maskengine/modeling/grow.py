"""Grow a trained TinyViT SAM deeper without changing what it computes.

A model trained for hours on a CPU is worth keeping when more capacity is wanted: new
attention blocks are appended to chosen stages, each set up as the identity, so the grown
model starts with exactly the trained model's outputs and training goes on from there.

A new TinyViTBlock is the identity when
  - the attention's output projection is zero (its residual adds nothing),
  - the 3x3 depthwise local conv is a centred 1 with a batch norm that passes its input
    through (weight 1, bias 0, running mean 0, running variance 1 - eps),
  - the MLP's last layer is zero (its residual adds nothing).
The attention and MLP inputs keep random weights, so gradients reach the zeroed layers.
The batch norm is only the identity with fixed statistics: train a grown model with
`--freeze-batchnorm` (a batch's own statistics would renormalise the residual stream).

    python -m maskengine.modeling.grow --checkpoint tiny.pt --model tiny \
        --depths 2,2,8,4 --out grown
writes grown.pt (weights) and grown.json (its SamConfig), which `maskengine train --model
grown.json --checkpoint grown.pt` continues from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from ..atomic import atomic_open, write_atomic
from .registry import create_model
from .sam import Sam
from .tiny_vit import TinyViTBlock


def _make_identity(block: TinyViTBlock) -> None:
    with torch.no_grad():
        block.attn.proj.weight.zero_()
        block.attn.proj.bias.zero_()
        conv, bn = block.local_conv.c, block.local_conv.bn
        conv.weight.zero_()
        k = conv.weight.shape[-1] // 2
        conv.weight[:, 0, k, k] = 1.0
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        block.mlp.fc2.weight.zero_()
        block.mlp.fc2.bias.zero_()


def deepen(model: Sam, depths: Sequence[int], seed: int = 0) -> Sam:
    """A TinyViT SAM with `depths` blocks per stage (each at least the current depth; stage
    0, the convolutional one, cannot grow). Existing blocks keep their weights; new blocks
    go at the end of their stage as the identity. Returns a new model in eval mode."""
    cfg = model.config
    tv = cfg.tiny_vit
    if tv is None:
        raise ValueError("only a TinyViT encoder can be deepened (this model has a ViT)")
    depths = tuple(int(d) for d in depths)
    if len(depths) != len(tv.depths):
        raise ValueError(f"give {len(tv.depths)} depths (one per stage), not {len(depths)}")
    if depths[0] != tv.depths[0]:
        raise ValueError(f"stage 0 is convolutional and keeps its depth {tv.depths[0]}")
    shrunk = [i for i, (new, old) in enumerate(zip(depths, tv.depths, strict=True))
              if new < old]
    if shrunk:
        raise ValueError(f"stages {shrunk} would lose blocks: depths {list(depths)} against "
                         f"the model's {list(tv.depths)}")
    grown_cfg = dataclasses.replace(cfg, tiny_vit=dataclasses.replace(tv, depths=depths))
    torch.manual_seed(seed)
    grown = Sam.from_config(grown_cfg)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected:
        raise RuntimeError(f"keys that the grown model lacks: {unexpected[:5]}")
    layers = grown.image_encoder.layers
    for stage in range(1, len(depths)):
        for block in list(layers[stage].blocks)[tv.depths[stage]:]:
            _make_identity(block)
    new_prefixes = {f"image_encoder.layers.{s}.blocks.{b}."
                    for s in range(1, len(depths)) for b in range(tv.depths[s], depths[s])}
    stray = [k for k in missing if not any(k.startswith(p) for p in new_prefixes)]
    if stray:
        raise RuntimeError(f"weights missing outside the new blocks: {stray[:5]}")
    return grown.eval()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m maskengine.modeling.grow",
                                 description="Deepen a trained TinyViT SAM (new blocks start "
                                             "as the identity).")
    ap.add_argument("--model", default="tiny", help="size name or SamConfig JSON")
    ap.add_argument("--checkpoint", default=None, help="weights (default: the bundled ones)")
    ap.add_argument("--depths", required=True, help="blocks per stage, e.g. 2,2,8,4")
    ap.add_argument("--out", required=True, help="writes OUT.pt and OUT.json")
    ap.add_argument("--seed", type=int, default=0, help="seed of the new blocks' weights")
    args = ap.parse_args(argv)
    try:
        depths = [int(d) for d in args.depths.split(",")]
    except ValueError:
        ap.error(f"--depths {args.depths!r}: give integers separated by commas")
    try:
        grown = deepen(create_model(args.model, args.checkpoint), depths, args.seed)
    except ValueError as exc:
        ap.error(str(exc))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out.with_name(out.name + ".pt")) as f:
        torch.save(grown.state_dict(), f)
    write_atomic(out.with_name(out.name + ".json"),
                 json.dumps(grown.config.to_dict(), indent=2) + "\n")
    n = sum(p.numel() for p in grown.image_encoder.parameters())
    print(f"wrote {out}.pt and {out}.json: depths {depths}, image encoder {n / 1e6:.2f}M "
          f"parameters")


if __name__ == "__main__":
    main()
