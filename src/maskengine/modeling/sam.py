"""Sam: the three parts joined, plus the fixed pre- and post-processing around them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SamConfig
from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .tiny_vit import TinyViT

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def normalize_and_pad(x: torch.Tensor, image_size: int, mean: torch.Tensor | None = None,
                      std: torch.Tensor | None = None) -> torch.Tensor:
    """B x 3 x h x w float in 0..255 (h, w <= image_size) -> normalised, zero-padded
    right/bottom to B x 3 x S x S. mean, std: 3 x 1 x 1 (default: SAM's, on x's device)."""
    if mean is None or std is None:
        mean = torch.tensor(PIXEL_MEAN, device=x.device).view(-1, 1, 1)
        std = torch.tensor(PIXEL_STD, device=x.device).view(-1, 1, 1)
    x = (x - mean) / std
    return F.pad(x, (0, image_size - x.shape[-1], 0, image_size - x.shape[-2]))


class Sam(nn.Module):
    """Image encoder, prompt encoder and mask decoder.

    Coordinates given to `decode` are (x, y) pixels in the *input frame*: the image
    resized so its longest side is `image_size` (see `maskengine.transforms`).
    """

    mask_threshold: float = 0.0
    image_format: str = "RGB"

    def __init__(
        self,
        config: SamConfig,
        image_encoder: nn.Module,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        # Not in released checkpoints, so not persistent.
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, config: SamConfig) -> Sam:
        encoder = TinyViT(config) if config.tiny_vit is not None else ImageEncoderViT(config)
        return cls(config, encoder, PromptEncoder(config), MaskDecoder(config))

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """B x 3 x h x w float in 0..255 (h, w <= image_size) -> normalised, zero-padded
        right/bottom to B x 3 x S x S."""
        return normalize_and_pad(x, self.config.image_size, self.pixel_mean, self.pixel_std)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """B x 3 x h x w float 0..255 in the input frame -> embeddings B x C x E x E."""
        return self.image_encoder(self.preprocess(x))

    def decode(
        self,
        image_embeddings: torch.Tensor,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        dense_pe: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (low-res logits B x M x 4E x 4E, IoU predictions B x M).

        image_embeddings: 1 x C x E x E shared by the B prompts, or B x C x E x E.
        points: (B x N x 2 input-frame (x, y), B x N labels); boxes: B x 4 input-frame
        (x0, y0, x1, y1); mask_input: B x 1 x 4E x 4E logits. dense_pe: the prompt
        encoder's `get_dense_pe()` when a caller keeps it (it depends on the weights alone).
        """
        sparse, dense = self.prompt_encoder(points, boxes, mask_input)
        if dense_pe is None:
            dense_pe = self.prompt_encoder.get_dense_pe()
        return self.mask_decoder(image_embeddings, dense_pe, sparse, dense, multimask_output)

    def forward(
        self,
        images: torch.Tensor,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """B images (B x 3 x h x w, 0..255, input frame) with one prompt each."""
        emb = self.encode_image(images)
        return self.decode(emb, points, boxes, mask_input, multimask_output)

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> torch.Tensor:
        """Low-res logits B x M x 4E x 4E -> B x M x H x W logits in the original frame:
        bilinear to S x S, crop the padding, bilinear to the original size."""
        return postprocess_masks(masks, self.config.image_size, input_size, original_size)


def unpad_masks(masks: torch.Tensor, image_size: int, input_size: tuple[int, int]) -> torch.Tensor:
    """Low-res logits B x M x 4E x 4E -> B x M x h x w logits over the resized image (the
    input frame, h x w = input_size): bilinear to S x S, crop the padding. The original
    frame is one more bilinear step away (`postprocess_masks`), or sampled at some of its
    pixels only (`engine.display`)."""
    s = image_size
    masks = F.interpolate(masks, (s, s), mode="bilinear", align_corners=False)
    return masks[..., : input_size[0], : input_size[1]]


def postprocess_masks(
    masks: torch.Tensor, image_size: int, input_size: tuple[int, int],
    original_size: tuple[int, int],
) -> torch.Tensor:
    """Low-res logits B x M x 4E x 4E -> B x M x H x W logits in the original frame
    (`Sam.postprocess_masks` without a model: only the input size S matters)."""
    masks = unpad_masks(masks, image_size, input_size)
    return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)
