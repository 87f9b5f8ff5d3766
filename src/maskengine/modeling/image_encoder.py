"""ViT image encoder: patch embedding, windowed / global attention blocks with decomposed
relative positions, and a convolutional neck down to the prompt dimension.

Input B x 3 x S x S (normalised, padded; S = image_size); output B x C x S/16 x S/16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SamConfig
from .common import LayerNorm2d, MLPBlock


def window_partition(
    x: torch.Tensor, window: int, pad_value: torch.Tensor | None = None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """B x H x W x C -> (B * nW) x window x window x C, padding H, W to multiples of
    `window` with zeros (or with the C-vector `pad_value`)."""
    b, h, w, c = x.shape
    pad_h, pad_w = (window - h % window) % window, (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        if pad_value is not None:
            x[:, h:, :, :] = pad_value
            x[:, :, w:, :] = pad_value
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of `window_partition`, cropping the padding away."""
    hp, wp = padded
    h, w = size
    b = windows.shape[0] // (hp * wp // window // window)
    x = windows.view(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w, :].contiguous() if (hp > h or wp > w) else x


def relative_table(q_size: int, k_size: int, table: torch.Tensor) -> torch.Tensor:
    """Per-pair relative position embeddings, q_size x k_size x C.

    `table` is (2 * max(q, k) - 1) x C; a table of another length (a checkpoint trained at
    another resolution) is linearly resized first.
    """
    length = 2 * max(q_size, k_size) - 1
    if table.shape[0] != length:
        table = F.interpolate(
            table.t().unsqueeze(0), size=length, mode="linear"
        ).squeeze(0).t()
    q = torch.arange(q_size, device=table.device)[:, None] * max(k_size / q_size, 1.0)
    k = torch.arange(k_size, device=table.device)[None, :] * max(q_size / k_size, 1.0)
    idx = (q - k) + (k_size - 1) * max(q_size / k_size, 1.0)
    return table[idx.long()]


# Bound on the elements of one chunk of attention scores in the inference path (~64 MB).
_SCORE_CHUNK = 16 * 1024 * 1024


def rel_pos_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor,
    rel_w: torch.Tensor, scale: float,
) -> torch.Tensor:
    """softmax(scale q.k + rel_h[key row] + rel_w[key column]) v.

    q, k, v: G x N x d with N = H * W; rel_h: G x H x W x H; rel_w: G x H x W x W.
    With gradients this is one scaled_dot_product_attention with an additive mask. Without,
    the bias is written once per chunk of heads and the q.k product accumulated onto it in
    place (no mask checks, no extra passes over the N x N scores), chunked so the scores
    of a few heads at a time stay in memory.
    """
    g, n, _ = q.shape
    h, w = rel_h.shape[1], rel_h.shape[2]
    if torch.is_grad_enabled() and (q.requires_grad or rel_h.requires_grad):
        bias = (rel_h[..., None] + rel_w[..., None, :]).reshape(g, n, n)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    out = torch.empty_like(v)
    step = min(g, max(1, _SCORE_CHUNK // (n * n)))
    # One buffer for all chunks: fresh large allocations cost page faults every time.
    buf = torch.empty((step, h, w, h, w), dtype=q.dtype, device=q.device)
    for s in range(0, g, step):
        e = min(g, s + step)
        scores = buf[: e - s]
        torch.add(rel_h[s:e, ..., None], rel_w[s:e, ..., None, :], out=scores)
        scores = scores.view(e - s, n, n).baddbmm_(q[s:e], k[s:e].transpose(1, 2), alpha=scale)
        torch.ops.aten._softmax.out(scores, -1, False, out=scores)  # in place, row by row
        torch.bmm(scores, v[s:e], out=out[s:e])
    return out


class Attention(nn.Module):
    """Multi-head self-attention over a B x H x W x C grid with decomposed relative
    positions (one table per axis)."""

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.attend(self.qkv(x)))

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """qkv: B x H x W x 3C (the output of `self.qkv`) -> B x H x W x C, before `proj`."""
        b, h, w, _ = qkv.shape
        n = self.num_heads
        # 3 x (B * nh) x (H * W) x hd
        qkv = qkv.reshape(b, h * w, 3, n, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * n, h * w, -1).unbind(0)
        rh = relative_table(h, h, self.rel_pos_h)  # H x H x hd
        rw = relative_table(w, w, self.rel_pos_w)  # W x W x hd
        rq = q.view(b * n, h, w, -1)
        rel_h = torch.einsum("bhwc,hkc->bhwk", rq, rh)  # (B*nh) x H x W x kH
        rel_w = torch.einsum("bhwc,wkc->bhwk", rq, rw)  # (B*nh) x H x W x kW
        out = rel_pos_attention(q, k, v, rel_h, rel_w, self.scale)
        return out.view(b, n, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)


class Block(nn.Module):
    """Pre-norm transformer block; windowed attention unless `window` is 0."""

    def __init__(self, dim: int, num_heads: int, window: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, (window, window) if window else grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * 4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window:
            # qkv and proj are per token: run them on the H x W tokens only. Padding tokens
            # are zeros before qkv, so after it they are the qkv bias.
            size = (x.shape[1], x.shape[2])
            qkv, padded = window_partition(self.attn.qkv(x), self.window, self.attn.qkv.bias)
            x = window_unpartition(self.attn.attend(qkv), self.window, padded, size)
            x = self.attn.proj(x)
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # B x H x W x C


class ImageEncoderViT(nn.Module):
    """B x 3 x S x S -> B x prompt_embed_dim x S/p x S/p."""

    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        g = cfg.embed_size
        dim = cfg.encoder_embed_dim
        self.img_size = cfg.image_size
        self.patch_embed = PatchEmbed(cfg.patch_size, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, g, g, dim))
        self.blocks = nn.ModuleList(
            Block(
                dim,
                cfg.encoder_num_heads,
                0 if i in cfg.encoder_global_attn_indexes else cfg.encoder_window_size,
                (g, g),
            )
            for i in range(cfg.encoder_depth)
        )
        out = cfg.prompt_embed_dim
        self.neck = nn.Sequential(
            nn.Conv2d(dim, out, kernel_size=1, bias=False),
            LayerNorm2d(out),
            nn.Conv2d(out, out, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))
