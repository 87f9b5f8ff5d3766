"""Prompt encoder: points and boxes become sparse tokens (random-Fourier position plus a
learned type embedding), a low-resolution mask becomes a dense embedding."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import SamConfig
from .common import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) coordinates; the 2 x (C/2) Gaussian
    matrix is a buffer stored in checkpoints."""

    def __init__(self, num_pos_feats: int) -> None:
        super().__init__()
        self.register_buffer(
            "positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats)
        )

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        """... x 2 in [0, 1] -> ... x C."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def grid(self, size: int) -> torch.Tensor:
        """C x size x size positions of the embedding grid's cell centres."""
        m = self.positional_encoding_gaussian_matrix
        centres = (torch.arange(size, device=m.device, dtype=m.dtype) + 0.5) / size
        yy, xx = torch.meshgrid(centres, centres, indexing="ij")
        return self._encode(torch.stack([xx, yy], dim=-1)).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: int) -> torch.Tensor:
        """B x N x 2 (x, y) input-frame pixels -> B x N x C."""
        return self._encode(coords / image_size)


class PromptEncoder(nn.Module):
    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        dim = cfg.prompt_embed_dim
        self.embed_dim = dim
        self.input_image_size = cfg.image_size
        self.embed_size = cfg.embed_size
        self.pe_layer = PositionEmbeddingRandom(dim // 2)
        # 0 negative point, 1 positive point, 2 box top-left, 3 box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, dim)
        c = cfg.mask_in_chans
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, c // 4, kernel_size=2, stride=2),
            LayerNorm2d(c // 4),
            nn.GELU(),
            nn.Conv2d(c // 4, c, kernel_size=2, stride=2),
            LayerNorm2d(c),
            nn.GELU(),
            nn.Conv2d(c, dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, dim)

    def get_dense_pe(self) -> torch.Tensor:
        """1 x C x E x E positional encoding of the image embedding grid."""
        return self.pe_layer.grid(self.embed_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        points = points + 0.5  # pixel centre
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, -labels.new_ones(labels.shape[0], 1)], dim=1)
        emb = self.pe_layer.forward_with_coords(points, self.input_image_size)
        lab = labels.unsqueeze(-1)
        # torch.where keeps it one pass and differentiable for every label type.
        emb = torch.where(lab == -1, self.not_a_point_embed.weight.expand_as(emb), emb)
        emb = emb + torch.where(lab == 0, self.point_embeddings[0].weight, 0.0)
        emb = emb + torch.where(lab == 1, self.point_embeddings[1].weight, 0.0)
        return emb

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        emb = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        emb[:, 0, :] += self.point_embeddings[2].weight[0]
        emb[:, 1, :] += self.point_embeddings[3].weight[0]
        return emb

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode prompts.

        points: (B x N x 2 (x, y) input-frame pixels, B x N labels in {-1, 0, 1}).
        boxes: B x 4 (x0, y0, x1, y1) input-frame pixels. masks: B x 1 x 4E x 4E logits.
        Returns sparse B x T x C and dense B x C x E x E embeddings (1 x C x E x E, the
        learned no-mask vector broadcast, when `masks` is None).
        """
        if points is not None:
            b = points[0].shape[0]
        elif boxes is not None:
            b = boxes.shape[0]
        elif masks is not None:
            b = masks.shape[0]
        else:
            b = 1
        weight = self.no_mask_embed.weight
        sparse = weight.new_empty((b, 0, self.embed_dim))
        if points is not None:
            coords, labels = points
            sparse = torch.cat([sparse, self._embed_points(coords, labels, boxes is None)], 1)
        if boxes is not None:
            sparse = torch.cat([sparse, self._embed_boxes(boxes)], dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            # Batch 1, not b: the decoder then shares one image copy across all prompts.
            dense = weight.reshape(1, -1, 1, 1).expand(1, -1, self.embed_size, self.embed_size)
        return sparse, dense
