"""MobileSAM's TinyViT image encoder, with the official key names.

Input B x 3 x S x S (normalised, padded; S = image_size); output B x C x S/p x S/p with
p = `patch_size` (the total stride) and C = prompt_embed_dim.

  stem        two 3x3 stride-2 conv + batch norm (GELU between)             -> 1/4
  stage 0     MBConv blocks (1x1 expand, 3x3 depthwise, 1x1, residual)
  merge       1x1 conv, 3x3 depthwise (stride 2 or 1), 1x1 conv              -> 1/8 ...
  stages 1..  windowed attention with a learned bias per head and |dy|, |dx| offset,
              a 3x3 depthwise conv + batch norm, an MLP; merges between them
  neck        as the ViT's: 1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d

Attention stages work on B x H x W x C tensors, conv parts on B x C x H x W. Nothing here
assumes an input size or a grid: the window is padded with zero tokens (which take part in
the attention, as in the official code) and the result cropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SamConfig, TinyViTConfig
from .common import LayerNorm2d
from .image_encoder import window_partition, window_unpartition


class Conv2dBN(nn.Sequential):
    """Conv (no bias) then batch norm, as `c` and `bn`."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, bn_weight: float = 1.0) -> None:
        super().__init__()
        self.c = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        nn.init.constant_(self.bn.weight, bn_weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        if bn.training:  # batch statistics: the two steps as they are
            return bn(self.c(x))
        # Fixed statistics: one conv with the batch norm folded into its weight and bias
        # (the same function, one pass over the activations instead of two).
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = self.c.weight * scale.view(-1, 1, 1, 1)
        bias = bn.bias - bn.running_mean * scale
        c = self.c
        return F.conv2d(x, weight, bias, c.stride, c.padding, c.dilation, c.groups)


class PatchEmbed(nn.Module):
    """Stem: B x 3 x S x S -> B x dim x S/4 x S/4 (`seq.0`, GELU, `seq.2`)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            Conv2dBN(3, dim // 2, 3, 2), nn.GELU(), Conv2dBN(dim // 2, dim, 3, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project (its batch norm starts at
    zero, so the block starts as the identity), GELU after the sum."""

    def __init__(self, dim: int, expand: float) -> None:
        super().__init__()
        hidden = int(dim * expand)
        self.conv1 = Conv2dBN(dim, hidden)
        self.conv2 = Conv2dBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = Conv2dBN(hidden, dim, bn_weight=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """B x C x H x W -> B x C' x H/s x W/s: 1x1 conv, GELU, 3x3 depthwise (stride s), GELU,
    1x1 conv."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = Conv2dBN(dim, out_dim)
        self.conv2 = Conv2dBN(out_dim, out_dim, 3, stride, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))


class Attention(nn.Module):
    """Multi-head attention over the tokens of one window, with a learned bias per head for
    each (|dy|, |dx|) offset of two tokens (`attention_biases`: heads x window^2). The
    pre-norm lives inside (`norm`). qkv is laid out per head as [q, k, v]."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window = window
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window * window))
        # Offset of token i and j, numbered |dy| * window + |dx| (the official numbering:
        # offsets in order of first appearance, which for a square window is this).
        yy, xx = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        yy, xx = yy.flatten(), xx.flatten()
        idx = (yy[:, None] - yy[None]).abs() * window + (xx[:, None] - xx[None]).abs()
        self.register_buffer("bias_index", idx, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: G x N x C (G windows of N = window^2 tokens) -> G x N x C."""
        g, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(g, n, self.num_heads, 3 * self.head_dim)
        q, k, v = qkv.permute(0, 2, 1, 3).split(self.head_dim, dim=-1)  # G x nh x N x hd
        # Always computed from the current weights: never a table cached at eval().
        bias = self.attention_biases[:, self.bias_index].to(q.dtype)  # nh x N x N
        if torch.is_grad_enabled():
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:  # in place, without the mask checks of the fused kernel's CPU path
            scores = torch.matmul(q, k.transpose(-2, -1)).mul_(self.head_dim**-0.5).add_(bias)
            out = torch.matmul(scores.softmax(-1), v)
        return self.proj(out.transpose(1, 2).reshape(g, n, -1))


class MLP(nn.Module):
    """LayerNorm, fc1, GELU, fc2 (`norm`, `fc1`, `fc2`)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Window attention (residual), 3x3 depthwise conv + batch norm, MLP (residual).
    B x H x W x C -> same."""

    def __init__(self, dim: int, num_heads: int, window: int, mlp_ratio: float,
                 local_conv: int) -> None:
        super().__init__()
        self.window = window
        self.attn = Attention(dim, num_heads, window)
        self.local_conv = Conv2dBN(dim, dim, local_conv, groups=dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        ws = self.window
        windows, padded = window_partition(x, ws)
        y = self.attn(windows.view(-1, ws * ws, c)).view(-1, ws, ws, c)
        x = x + window_unpartition(y, ws, padded, (h, w))
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(x)


class ConvLayer(nn.Module):
    """Stage 0: MBConv blocks, then the merge into stage 1."""

    def __init__(self, dim: int, depth: int, expand: float, downsample: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class BasicLayer(nn.Module):
    """An attention stage (B x C x H x W in and out), then the merge into the next stage
    (none after the last)."""

    def __init__(self, blocks: list[TinyViTBlock], downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        for block in self.blocks:
            x = block(x)
        x = x.permute(0, 3, 1, 2)
        return self.downsample(x) if self.downsample is not None else x


def merge_strides(cfg: TinyViTConfig, patch_size: int) -> list[int]:
    """Stride of each merge: 2 until the total stride (4 after the stem) is `patch_size`."""
    total, strides = 4, []
    for _ in range(len(cfg.embed_dims) - 1):
        s = 2 if total < patch_size else 1
        total *= s
        strides.append(s)
    return strides


class TinyViT(nn.Module):
    """B x 3 x S x S -> B x prompt_embed_dim x S/p x S/p (p = config.patch_size)."""

    def __init__(self, config: SamConfig) -> None:
        super().__init__()
        cfg = config.tiny_vit
        if cfg is None:
            raise ValueError("TinyViT needs SamConfig.tiny_vit")
        self.img_size = config.image_size
        dims = cfg.embed_dims
        strides = merge_strides(cfg, config.patch_size)
        self.patch_embed = PatchEmbed(dims[0])
        layers: list[nn.Module] = [
            ConvLayer(dims[0], cfg.depths[0], cfg.mbconv_expand_ratio,
                      PatchMerging(dims[0], dims[1], strides[0]))
        ]
        for i in range(1, len(dims)):
            blocks = [TinyViTBlock(dims[i], cfg.num_heads[i], cfg.window_sizes[i],
                                   cfg.mlp_ratio, cfg.local_conv_size)
                      for _ in range(cfg.depths[i])]
            last = i == len(dims) - 1
            down = None if last else PatchMerging(dims[i], dims[i + 1], strides[i])
            layers.append(BasicLayer(blocks, down))
        self.layers = nn.ModuleList(layers)
        if cfg.num_classes:
            self.norm_head = nn.LayerNorm(dims[-1])
            self.head = nn.Linear(dims[-1], cfg.num_classes)
        out = config.prompt_embed_dim
        self.neck = nn.Sequential(
            nn.Conv2d(dims[-1], out, kernel_size=1, bias=False),
            LayerNorm2d(out),
            nn.Conv2d(out, out, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out),
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-last: the convolutions run faster on CPUs, and the B x H x W x C views the
        # attention stages take are then free (no copies).
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        for layer in self.layers:
            x = layer(x)
        return self.neck(x)
