"""Mask decoder: output tokens + prompt tokens through the two-way transformer, image
tokens upscaled 4x, hypernetwork MLPs turn mask tokens into per-pixel weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SamConfig
from .common import MLP, LayerNorm2d
from .transformer import TwoWayTransformer


def _as_matmul(conv: nn.ConvTranspose2d) -> torch.Tensor:
    """A 2x2, stride-2 transposed convolution maps each input pixel to its own 2x2 output
    block: one matmul Cin -> (2 x 2 x Cout), output channels last."""
    cin, cout = conv.weight.shape[:2]
    return conv.weight.permute(0, 2, 3, 1).reshape(cin, 4 * cout)


# Elements of the widest upscaling intermediate processed at once (~16 MB).
_UPSCALE_CHUNK = 4 * 1024 * 1024


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

    def upscale_masks(self, src: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
        """Image tokens B x (E E) x C (row-major) and hypernetwork weights B x M x C/8 ->
        mask logits B x M x 4E x 4E.

        Pixels stay in block order (h, w, i1, j1, i2, j2) through both upscaling steps, so
        channels are always last (no permute of the wide tensors); only the M-channel
        result is put in image order at the end.
        """
        b, n, _ = src.shape
        m = hyper.shape[1]
        e = int(round(n**0.5))
        up0, ln, _, up1, _ = self.output_upscaling
        weights = (_as_matmul(up0), up0.bias.repeat(4), _as_matmul(up1), up1.bias.repeat(4))
        # A few prompts at a time keeps the wide intermediates (16 x 32 values per image
        # token) in cache instead of streaming hundreds of MB through memory.
        step = max(1, _UPSCALE_CHUNK // (n * 16 * hyper.shape[-1]))
        masks = src.new_empty((b, n * 16, m))
        for i in range(0, b, step):
            masks[i : i + step] = self._upscale(src[i : i + step], hyper[i : i + step], *weights)
        masks = masks.view(b, e, e, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return masks.reshape(b, m, 4 * e, 4 * e)

    def _upscale(
        self, src: torch.Tensor, hyper: torch.Tensor, w0: torch.Tensor, b0: torch.Tensor,
        w1: torch.Tensor, b1: torch.Tensor,
    ) -> torch.Tensor:
        """B x N x C, B x M x C/8 -> B x (N 16) x M logits, pixels in block order."""
        ln = self.output_upscaling[1]
        b, n, _ = src.shape
        # addmm fuses the bias (tiled over the 2x2 block) into the matmul.
        x = torch.addmm(b0, src.reshape(b * n, -1), w0)
        x = F.gelu(F.layer_norm(x.view(b * n * 4, -1), (ln.weight.shape[0],), ln.weight,
                                ln.bias, ln.eps))
        x = F.gelu(torch.addmm(b1, x, w1)).view(b, n * 16, -1)
        return torch.bmm(x, hyper.transpose(1, 2))  # the small operand is the transposed one

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

        hyper = torch.stack(
            [mlp(mask_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1,
        )  # B x (M+1) x C/8
        masks = self.upscale_masks(src.expand(b, -1, -1), hyper)
        return masks, self.iou_prediction_head(iou_out)
