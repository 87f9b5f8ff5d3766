"""Mask decoder: output tokens + prompt tokens through the two-way transformer, image
tokens upscaled 4x, hypernetwork MLPs turn mask tokens into per-pixel weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SamConfig
from .common import MLP, LayerNorm2d
from .transformer import TwoWayTransformer


def conv_transpose_2x2(x: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """A 2x2, stride-2 transposed convolution on channels-last B x H x W x Cin, as one
    matmul (each input pixel maps to its own 2x2 output block) -> B x 2H x 2W x Cout."""
    b, h, w, _ = x.shape
    cout = conv.weight.shape[1]
    y = x @ conv.weight.reshape(conv.weight.shape[0], cout * 4)  # B x H x W x (Cout*2*2)
    y = y.view(b, h, w, cout, 2, 2).permute(0, 1, 4, 2, 5, 3).reshape(b, 2 * h, 2 * w, cout)
    return y + conv.bias


class MaskDecoder(nn.Module):
    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        dim = cfg.prompt_embed_dim
        self.num_multimask_outputs = cfg.num_multimask_outputs
        self.num_mask_tokens = cfg.num_multimask_outputs + 1
        self.transformer = TwoWayTransformer(
            cfg.decoder_depth, dim, cfg.decoder_num_heads, cfg.decoder_mlp_dim
        )
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            dim, cfg.iou_head_hidden_dim, self.num_mask_tokens, cfg.iou_head_depth
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict masks for B prompts on one image (or B images, one prompt each).

        image_embeddings: 1 x C x E x E (shared by all prompts) or B x C x E x E.
        image_pe: 1 x C x E x E. sparse: B x T x C. dense: B x C x E x E, or 1 x C x E x E
        when it is the same for all prompts. Returns low-res logits B x M x 4E x 4E and
        IoU predictions B x M, with M = 3 (multimask) or 1.
        """
        masks, iou = self.predict_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
        )
        sl = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, sl], iou[:, sl]

    def predict_masks(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
        sparse: torch.Tensor, dense: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All mask tokens: logits B x (M+1) x 4E x 4E, IoU B x (M+1)."""
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        # Bi stays 1 (no copy per prompt) when image and dense prompt are shared.
        src = image_embeddings + dense
        hs, src = self.transformer(src, image_pe, tokens)
        iou_out = hs[:, 0, :]
        mask_out = hs[:, 1 : 1 + self.num_mask_tokens, :]

        e = image_embeddings.shape[-1]
        src = src.expand(b, -1, -1).reshape(b, e, e, -1)  # channels-last B x E x E x C
        up0, ln, _, up1, _ = self.output_upscaling
        x = conv_transpose_2x2(src, up0)
        x = F.gelu(F.layer_norm(x, (x.shape[-1],), ln.weight, ln.bias, ln.eps))
        x = F.gelu(conv_transpose_2x2(x, up1))  # B x 4E x 4E x C/8
        hyper = torch.stack(
            [mlp(mask_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1,
        )  # B x (M+1) x C/8
        h = x.shape[1]
        masks = torch.bmm(hyper, x.reshape(b, h * h, -1).transpose(1, 2)).view(b, -1, h, h)
        return masks, self.iou_prediction_head(iou_out)
