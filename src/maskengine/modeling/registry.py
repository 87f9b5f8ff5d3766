"""Named model sizes, one builder, and checkpoint loading that explains what does not fit."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..config import MODEL_CONFIGS, SamConfig, TinyViTConfig
from .sam import Sam

# Weights shipped inside the package, loaded when no checkpoint is given.
BUNDLED_WEIGHTS: dict[str, str] = {"tiny": "tiny.pt"}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model."""


def bundled_weights_path(name: str) -> Path | None:
    file = BUNDLED_WEIGHTS.get(name)
    if file is None:
        return None
    path = Path(__file__).resolve().parent.parent / "weights" / file
    return path if path.is_file() else None


def load_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict (weights only). Training checkpoints ({"model": sd, ...}) are
    unwrapped. Raises CheckpointError for anything that is not a readable state_dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise CheckpointError(
            f"could not read checkpoint {path}: the file is truncated, corrupt or not a "
            f"PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path} does not hold a state_dict of tensors")
    return dict(obj)


def _count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in sd if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _decoder_fields(sd: Mapping[str, torch.Tensor]) -> dict:
    """SamConfig fields of the prompt encoder and mask decoder, read from shapes."""
    return dict(
        mask_in_chans=sd["prompt_encoder.mask_downscaling.3.weight"].shape[0],
        decoder_depth=_count(sd, r"mask_decoder\.transformer\.layers\.(\d+)\."),
        decoder_mlp_dim=sd["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0],
        iou_head_depth=_count(sd, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\."),
        iou_head_hidden_dim=sd["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0],
        num_multimask_outputs=sd["mask_decoder.mask_tokens.weight"].shape[0] - 1,
        prompt_embed_dim=sd["image_encoder.neck.0.weight"].shape[0],
    )


def _infer_tiny_vit(sd: Mapping[str, torch.Tensor]) -> SamConfig:
    """A TinyViT's stages from its keys. Neither the input size nor the merge strides show in
    shapes: the input defaults to 1024 and the stride to 16 (MobileSAM's)."""
    p = "image_encoder.layers"
    stages = _count(sd, rf"{p}\.(\d+)\.")
    dims = [sd[f"{p}.0.blocks.0.conv1.c.weight"].shape[1]]
    dims += [sd[f"{p}.{i}.blocks.0.attn.norm.weight"].shape[0] for i in range(1, stages)]
    depths = [_count(sd, rf"{p}\.{i}\.blocks\.(\d+)\.") for i in range(stages)]
    biases = [sd[f"{p}.{i}.blocks.0.attn.attention_biases"].shape for i in range(1, stages)]
    heads = [max(1, dims[0] // 32)] + [b[0] for b in biases]
    windows = [7] + [round(b[1] ** 0.5) for b in biases]
    expand = sd[f"{p}.0.blocks.0.conv1.c.weight"].shape[0] / dims[0]
    mlp = sd[f"{p}.1.blocks.0.mlp.fc1.weight"].shape[0] / dims[1]
    head = sd.get("image_encoder.head.weight")
    tv = TinyViTConfig(
        embed_dims=tuple(dims), depths=tuple(depths), num_heads=tuple(heads),
        window_sizes=tuple(windows), mlp_ratio=mlp, mbconv_expand_ratio=expand,
        local_conv_size=sd[f"{p}.1.blocks.0.local_conv.c.weight"].shape[-1],
        num_classes=0 if head is None else head.shape[0],
    )
    cfg = SamConfig(image_size=1024, patch_size=16, tiny_vit=tv, **_decoder_fields(sd))
    # A registered TinyViT with these shapes knows its input size and stride.
    same = [c for c in MODEL_CONFIGS.values()
            if c == dataclasses.replace(cfg, image_size=c.image_size, patch_size=c.patch_size)]
    return same[0] if len(same) == 1 else cfg


def infer_config(sd: Mapping[str, torch.Tensor]) -> SamConfig:
    """Read the dimensions of a SAM network from its state_dict's shapes. The decoder's head
    count is not visible in shapes; the standard 8 is assumed."""
    try:
        if "image_encoder.patch_embed.seq.0.c.weight" in sd:
            return _infer_tiny_vit(sd)
        pos = sd["image_encoder.pos_embed"]
        if pos.ndim != 4 or pos.shape[1] != pos.shape[2] or min(pos.shape) < 1:
            raise CheckpointError(
                f"image_encoder.pos_embed has shape {list(pos.shape)}; a SAM encoder's is "
                "[1, grid, grid, embed dim]")
        patch = sd["image_encoder.patch_embed.proj.weight"].shape[-1]
        depth = _count(sd, r"image_encoder\.blocks\.(\d+)\.")
        grid = pos.shape[1]
        rel = [sd[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape for i in range(depth)]
        global_idx = tuple(i for i, s in enumerate(rel) if s[0] == 2 * grid - 1)
        windowed = [s[0] for i, s in enumerate(rel) if i not in global_idx]
        dim = pos.shape[-1]
        return SamConfig(
            encoder_embed_dim=dim,
            encoder_depth=depth,
            encoder_num_heads=dim // rel[0][1],
            encoder_global_attn_indexes=global_idx,
            encoder_window_size=(windowed[0] + 1) // 2 if windowed else 14,
            image_size=grid * patch,
            patch_size=patch,
            **_decoder_fields(sd),
        )
    except (KeyError, IndexError) as exc:
        raise CheckpointError(
            f"cannot infer the model size: the state_dict lacks SAM key {exc}"
        ) from exc
    except (ValueError, ZeroDivisionError) as exc:  # shapes that make no SamConfig
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"cannot infer the model size from the state_dict's shapes: "
                              f"{exc}") from exc


def describe(cfg: SamConfig) -> str:
    """'vit_b' for a registered size, else the main dimensions."""
    for name, known in MODEL_CONFIGS.items():
        if known == cfg:
            return name
    if cfg.tiny_vit is not None:
        tv = cfg.tiny_vit
        return (f"a custom TinyViT (dims {list(tv.embed_dims)}, depths {list(tv.depths)}, "
                f"input {cfg.image_size}, stride {cfg.patch_size})")
    return (f"a custom size (embed dim {cfg.encoder_embed_dim}, {cfg.encoder_depth} blocks, "
            f"input {cfg.image_size})")


def check_fits(model: Sam, sd: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming what differs between `sd` and `model`: the file's size
    when it is another size, then the first mismatched key or the missing/unexpected keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or mismatched):
        return
    try:
        size = describe(infer_config(sd))
    except CheckpointError as exc:
        size = f"not a SAM state_dict of any size ({exc})"
    parts = [f"checkpoint {source} is {size} but the model is {describe(model.config)}"]
    if mismatched:
        k = mismatched[0]
        parts.append(
            f"first mismatched key {k} has shape {list(sd[k].shape)} in the file and "
            f"{list(own[k].shape)} in the model"
        )
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:5])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:5])})")
    raise CheckpointError("; ".join(parts))


def resolve_config(spec: str | os.PathLike | SamConfig) -> SamConfig:
    """The SamConfig a model spec names: a SamConfig itself, a registered size name, or the
    path of a JSON file of SamConfig fields (any existing file; a missing one whose name
    ends in .json is a FileNotFoundError)."""
    if isinstance(spec, SamConfig):
        return spec
    if str(spec) in MODEL_CONFIGS:
        return MODEL_CONFIGS[str(spec)]
    path = Path(spec)
    if path.is_file():
        try:
            return SamConfig(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"model config {path} is not a JSON object of SamConfig "
                             f"fields: {exc}") from exc
    if path.suffix == ".json":
        raise FileNotFoundError(f"model config {path} does not exist")
    raise ValueError(f"unknown model {str(spec)!r}: neither a registered size "
                     f"({', '.join(MODEL_CONFIGS)}) nor a SamConfig JSON file")


def resolve_checkpoint(spec: str | os.PathLike | SamConfig | None,
                       checkpoint: str | os.PathLike | None) -> Path | None:
    """The weights file a model is loaded from: `checkpoint`; the bundled weights of the
    registered size `spec` when `checkpoint` is 'bundled' (an error when it has none); None
    when `checkpoint` is None."""
    if checkpoint is None:
        return None
    if str(checkpoint) != "bundled":
        return Path(checkpoint)
    path = bundled_weights_path(spec) if isinstance(spec, str) else None
    if path is None:
        raise ValueError(f"model {spec!r} has no bundled weights")
    return path


def create_model(
    name_or_config: str | os.PathLike | SamConfig | None = None,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> Sam:
    """Build a Sam in eval mode: the one way a model is loaded by name, config or checkpoint.

    name_or_config: a registered name ("vit_b", "vit_l", "vit_h", "vit_t", "tiny"), a
    SamConfig or the path of a SamConfig JSON file (`resolve_config`), or None to infer the
    size from `checkpoint`. checkpoint: a state_dict file, or 'bundled'. Without a
    checkpoint, a name with bundled weights ("tiny") loads them; other sizes get random
    weights.
    """
    if checkpoint is None and isinstance(name_or_config, str):
        checkpoint = bundled_weights_path(name_or_config)
    path = resolve_checkpoint(name_or_config, checkpoint)
    sd = load_checkpoint(path) if path is not None else None
    if name_or_config is None:
        if sd is None:
            raise ValueError("give a model name, a SamConfig, or a checkpoint to infer it from")
        cfg = infer_config(sd)
    else:
        cfg = resolve_config(name_or_config)
    model = Sam.from_config(cfg)
    if sd is not None:
        check_fits(model, sd, str(path))
        model.load_state_dict(sd, strict=True)
    return model.to(device or "cpu").eval()
