"""Typed, frozen configuration for every part of maskengine.

`SamConfig` field names are the keys of the reference fixtures' `config.json`, so
`SamConfig(**json.load(f))` works. Other jobs (generator, training, server) keep their
settings in their own frozen dataclasses next to this one or in their modules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


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

    def __post_init__(self) -> None:
        # JSON gives lists; a frozen config must stay hashable.
        object.__setattr__(
            self, "encoder_global_attn_indexes", tuple(self.encoder_global_attn_indexes)
        )
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
        return d
