"""Typed, frozen configuration for every part of maskengine.

`SamConfig` field names are the keys of the reference fixtures' `config.json`, so
`SamConfig(**json.load(f))` works. The named sizes (`MODEL_CONFIGS`) and the generator's
settings live here too; other jobs (training, evaluation, export, server) keep theirs in
light modules of their own. None of them imports torch, numpy or the database layer, so
the command line builds its options from them and starts at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TinyViTConfig:
    """MobileSAM's TinyViT image encoder: a conv stem to 1/4, a stage of MBConv blocks,
    then windowed-attention stages, each entered through a patch-merging conv.

    Defaults are the released `mobile_sam.pt` (`vit_t`). Stage 0 is convolutional (its
    `num_heads` and `window_sizes` entries are unused, kept for the official layout). Merges
    halve the grid until the total stride reaches `SamConfig.patch_size`, then keep it
    (the released model: 4 -> 8 -> 16 -> 16).
    """

    embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (2, 4, 5, 10)
    window_sizes: tuple[int, ...] = (7, 7, 14, 7)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    # TinyViT's ImageNet head (`norm_head`, `head`): unused by SAM but present in the
    # released file; 0 leaves it out (models trained here).
    num_classes: int = 1000

    def __post_init__(self) -> None:
        for name in ("embed_dims", "depths", "num_heads", "window_sizes"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        n = len(self.embed_dims)
        if n < 2 or any(len(getattr(self, f)) != n
                        for f in ("depths", "num_heads", "window_sizes")):
            raise ValueError("TinyViT embed_dims, depths, num_heads and window_sizes need one "
                             "entry per stage (at least 2 stages)")
        for i in range(1, n):
            if self.embed_dims[i] % self.num_heads[i]:
                raise ValueError(f"TinyViT stage {i}: embed dim {self.embed_dims[i]} is not "
                                 f"divisible by {self.num_heads[i]} heads")
        if min(self.depths) < 1 or min(self.window_sizes) < 1 or self.embed_dims[0] % 2:
            raise ValueError("TinyViT depths and windows must be >= 1, embed_dims[0] even")


@dataclass(frozen=True)
class SamConfig:
    """Dimensions of a SAM-architecture network.

    Defaults are ViT-B (the released `sam_vit_b_01ec64.pth`).
    """

    encoder_embed_dim: int = 768
    encoder_depth: int = 12
    encoder_num_heads: int = 12
    encoder_global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    encoder_window_size: int = 14
    image_size: int = 1024
    patch_size: int = 16
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    num_multimask_outputs: int = 3
    # Set: the image encoder is MobileSAM's TinyViT and the encoder_* fields above are
    # unused; `patch_size` is then the encoder's total stride (4, 8, 16, ...).
    tiny_vit: TinyViTConfig | None = None

    def __post_init__(self) -> None:
        # JSON gives lists and dicts; a frozen config must stay hashable.
        object.__setattr__(
            self, "encoder_global_attn_indexes", tuple(self.encoder_global_attn_indexes)
        )
        if isinstance(self.tiny_vit, dict):
            object.__setattr__(self, "tiny_vit", TinyViTConfig(**self.tiny_vit))
        if self.tiny_vit is not None:
            merges = len(self.tiny_vit.embed_dims) - 1
            if self.patch_size not in [4 * 2**k for k in range(merges + 1)]:
                raise ValueError(
                    f"a TinyViT with {merges} merges has a stride of 4 * 2^k, k <= {merges}; "
                    f"patch_size {self.patch_size} is not one")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of patch_size "
                f"({self.patch_size})"
            )
        if self.encoder_embed_dim % self.encoder_num_heads:
            raise ValueError(
                f"encoder_embed_dim ({self.encoder_embed_dim}) must be divisible by "
                f"encoder_num_heads ({self.encoder_num_heads})"
            )
        bad = [i for i in self.encoder_global_attn_indexes if not 0 <= i < self.encoder_depth]
        if bad:
            raise ValueError(
                f"encoder_global_attn_indexes {bad} outside 0..{self.encoder_depth - 1}"
            )

    @property
    def embed_size(self) -> int:
        """Side of the image embedding grid (64 for 1024 / 16)."""
        return self.image_size // self.patch_size

    @property
    def low_res_size(self) -> int:
        """Side of the decoder's low-resolution mask logits (4 x embedding side)."""
        return 4 * self.embed_size

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["encoder_global_attn_indexes"] = list(self.encoder_global_attn_indexes)
        if self.tiny_vit is None:
            del d["tiny_vit"]  # ViT configs keep the keys of the reference fixtures
        else:
            d["tiny_vit"] = {k: list(v) if isinstance(v, tuple) else v
                             for k, v in d["tiny_vit"].items()}
        return d


# Named sizes (the registry builds them: maskengine.modeling.create_model).
MODEL_CONFIGS: dict[str, SamConfig] = {
    "vit_b": SamConfig(),
    "vit_l": SamConfig(
        encoder_embed_dim=1024, encoder_depth=24, encoder_num_heads=16,
        encoder_global_attn_indexes=(5, 11, 17, 23),
    ),
    "vit_h": SamConfig(
        encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16,
        encoder_global_attn_indexes=(7, 15, 23, 31),
    ),
    # MobileSAM (`mobile_sam.pt`): TinyViT encoder, the standard prompt encoder and decoder.
    "vit_t": SamConfig(tiny_vit=TinyViTConfig()),
    # The bundled model: small enough to train and run on a laptop CPU (a TinyViT encoder of
    # 1.8M parameters, input 256, prompt dim 128); weights in the package. Chosen by
    # benchmarks/model_study.py: it learns fastest per CPU-minute (docs/training.md). Stride 8
    # (the last merge keeps the resolution): a 32 x 32 embedding and 128 x 128 mask logits,
    # chosen by benchmarks/resolution_study.py over stride 16.
    "tiny": SamConfig(
        image_size=256, patch_size=8, prompt_embed_dim=128, decoder_mlp_dim=512,
        iou_head_hidden_dim=128,
        tiny_vit=TinyViTConfig(embed_dims=(32, 64, 128, 160), depths=(2, 2, 4, 2),
                               num_heads=(1, 2, 4, 5), window_sizes=(7, 8, 8, 8),
                               num_classes=0),
    ),
}


OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class GeneratorConfig:
    """Settings of the automatic mask generator (the official names and defaults)."""

    points_per_side: int | None = _opt(
        32, "Points sampled along one side of the image (grid of n x n); none with point grids.")
    points_per_batch: int = _opt(64, "Points the decoder runs at once.")
    pred_iou_thresh: float = _opt(0.88, "Keep masks whose predicted IoU is above this.")
    stability_score_thresh: float = _opt(0.95, "Keep masks whose stability score is >= this.")
    stability_score_offset: float = _opt(1.0, "Logit offset of the stability score.")
    box_nms_thresh: float = _opt(0.7, "Box IoU above which NMS drops a mask within a crop.")
    crop_n_layers: int = _opt(0, "Layers of zoomed crops (layer i: 2^i x 2^i crops).")
    crop_nms_thresh: float = _opt(0.7, "Box IoU above which NMS drops a mask across crops.")
    crop_overlap_ratio: float = _opt(
        512 / 1500, "Overlap of neighbouring crops, as a fraction of the short side.")
    crop_n_points_downscale_factor: int = _opt(
        1, "Points per side in crop layer i: points_per_side / factor^i.")
    min_mask_region_area: int = _opt(
        0, "Fill holes and remove islands smaller than this many pixels (0: off).")
    output_mode: str = _opt("binary_mask", "binary_mask, uncompressed_rle or coco_rle.")
    # Not an official option: the focus pass (maskengine.focus) on the masks that are kept.
    focus: bool | None = _opt(
        None, "Refine each kept small mask on a zoomed crop (the focus pass). Default: on for "
        "models with an input under 1024 (like tiny), off for the released ones (official).")

    def __post_init__(self) -> None:
        if self.output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {self.output_mode!r}")
        if self.points_per_side is not None and self.points_per_side < 1:
            raise ValueError(f"points_per_side must be >= 1, got {self.points_per_side}")
        for name in ("points_per_batch", "crop_n_points_downscale_factor"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("crop_n_layers", "min_mask_region_area"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("box_nms_thresh", "crop_nms_thresh"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.crop_overlap_ratio < 1.0:
            raise ValueError(f"crop_overlap_ratio must be in [0, 1), got {self.crop_overlap_ratio}")
