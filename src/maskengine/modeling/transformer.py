"""Two-way transformer: prompt tokens and image tokens attend to each other.

Tokens are B x T x C; image tokens Bi x N x C (N = H * W), with Bi = B, or Bi = 1 when one
image (and no mask prompt) is shared by all B prompts: the shared side is then projected
once, never copied per prompt.

Cross-attention between T ~ 7 tokens and N = 4096 image tokens is computed with the
projections folded onto the token side: q.(W_k x + b_k) = (W_k^T q).x + q.b_k, and since
attention rows sum to 1, A (W_v x + b_v) = W_v (A x) + b_v. The image tokens are then
never projected, which removes most of the decoder's per-prompt arithmetic; the result is
the same function (to float rounding) and trains the same parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import MLPBlock


class Attention(nn.Module):
    """Multi-head attention with projections to `dim // downsample_rate` channels."""

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.internal_dim = dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide {self.internal_dim}")
        self.scale = (self.internal_dim // num_heads) ** -0.5
        self.q_proj = nn.Linear(dim, self.internal_dim)
        self.k_proj = nn.Linear(dim, self.internal_dim)
        self.v_proj = nn.Linear(dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape  # B x N x (h d) -> B x h x N x d
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, n, d = x.shape  # B x h x N x d -> B x N x (h d)
        return x.transpose(1, 2).reshape(b, n, h * d)

    def _w(self, lin: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        """Projection weight as h x d x C and bias as h x d."""
        h = self.num_heads
        return lin.weight.view(h, -1, lin.weight.shape[1]), lin.bias.view(h, -1)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Plain attention (token self-attention): q, k, v B x N x C."""
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(
            self.v_proj(v))
        attn = torch.softmax((q * self.scale) @ k.transpose(-1, -2), dim=-1)
        return self.out_proj(self._merge(attn @ v))

    def tokens_to_image(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Tokens attend to the image. q: B x T x C; k, v: Bi x N x C. -> B x T x C."""
        b, t, _ = q.shape
        h = self.num_heads
        qh = self._heads(self.q_proj(q)) * self.scale  # B x h x T x d
        if k.shape[0] == 1 and b > 1:
            # Shared image: project it once; fold prompts into the rows of one bmm per head.
            kh = self._heads(self.k_proj(k))[0]  # h x N x d
            vh = self._heads(self.v_proj(v))[0]
            rows = qh.transpose(0, 1).reshape(h, b * t, -1)  # h x (B T) x d
            attn = torch.softmax(rows @ kh.transpose(1, 2), dim=-1)  # h x (B T) x N
            out = (attn @ vh).view(h, b, t, -1).transpose(0, 1)  # B x h x T x d
            return self.out_proj(self._merge(out))
        wk, bk = self._w(self.k_proj)
        wv, bv = self._w(self.v_proj)
        qk = (qh @ wk).reshape(b, h * t, -1)  # B x (h T) x C: queries in image space
        qb = (qh * bk[:, None, :]).sum(-1).reshape(b, h * t, 1)
        attn = torch.softmax(torch.baddbmm(qb, qk, k.transpose(1, 2)), dim=-1)  # B x hT x N
        ax = (attn @ v).view(b, h, t, -1)  # B x h x T x C
        out = ax @ wv.transpose(1, 2) + bv[:, None, :]  # B x h x T x d
        return self.out_proj(self._merge(out))

    def image_to_tokens(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, residual: torch.Tensor
    ) -> torch.Tensor:
        """The image attends to the tokens; returns residual + attention output.

        q: Bi x N x C; k, v: B x T x C; residual: Bi x N x C. -> B x N x C. Scores are laid
        out B x h x T x N so the softmax over T runs along a contiguous N axis (much faster
        than a softmax over a last axis of ~7).
        """
        b, t, _ = k.shape
        h = self.num_heads
        n = q.shape[1]
        kh = self._heads(self.k_proj(k)) * self.scale  # B x h x T x d
        vh = self._heads(self.v_proj(v))  # B x h x T x d
        wo = self.out_proj.weight.view(-1, h, vh.shape[-1]).permute(1, 2, 0)  # h x d x C
        # Values through out_proj; each head's weights sum to 1, so bias / h per head.
        vo = (vh @ wo + self.out_proj.bias / h).reshape(b, h * t, -1)  # B x hT x C
        if q.shape[0] == 1 and b > 1:
            qh = self._heads(self.q_proj(q))[0]  # h x N x d, once for all prompts
            rows = kh.transpose(0, 1).reshape(h, b * t, -1)  # h x (B T) x d
            scores = (rows @ qh.transpose(1, 2)).view(h, b, t, n).transpose(0, 1)
        else:
            wq, bq = self._w(self.q_proj)
            kq = (kh @ wq).reshape(b, h * t, -1)  # B x hT x C: keys in image space
            kb = (kh * bq[:, None, :]).sum(-1).reshape(b, h * t, 1)
            scores = torch.baddbmm(kb, kq, q.expand(b, -1, -1).transpose(1, 2))
            scores = scores.view(b, h, t, n)
        attn = torch.softmax(scores, dim=2).reshape(b, h * t, n)  # B x hT x N
        return torch.baddbmm(residual, attn.transpose(1, 2), vo)


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image attention, token MLP, image->token attention."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, skip_first_layer_pe: bool) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample_rate=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim, act=nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample_rate=2)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
        key_pe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            # The first layer replaces the tokens (no residual, no positions).
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q = queries + query_pe
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image.tokens_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        keys = self.norm4(self.cross_attn_image_to_token.image_to_tokens(k, q, queries, keys))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth: int, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, mlp_dim, skip_first_layer_pe=(i == 0))
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(dim, num_heads, downsample_rate=2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image_embedding: Bi x C x H x W (Bi = B or 1); image_pe: 1 x C x H x W;
        point_embedding: B x T x C. Returns tokens B x T x C, image tokens B x HW x C."""
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q = queries + point_embedding
        k = keys + key_pe
        queries = self.norm_final_attn(
            queries + self.final_attn_token_to_image.tokens_to_image(q, k, keys))
        return queries, keys
