"""The attention code has fast paths: a fused kernel when gradients flow and an in-place
one without (ViT and TinyViT encoders), and a shared-image path in the decoder when many
prompts use one embedding. Each pair of branches must give the same numbers."""

from __future__ import annotations

import pytest
import torch

from maskengine import Sam, SamConfig, TinyViTConfig
from maskengine.modeling.image_encoder import rel_pos_attention
from maskengine.modeling.transformer import Attention

SMALL_VIT = SamConfig(image_size=64, patch_size=16, encoder_embed_dim=32, encoder_depth=2,
                      encoder_num_heads=2, encoder_global_attn_indexes=(1,),
                      encoder_window_size=2, prompt_embed_dim=32, decoder_mlp_dim=64,
                      iou_head_hidden_dim=32)
SMALL_TINY_VIT = SamConfig(
    image_size=64, patch_size=16, prompt_embed_dim=32, decoder_mlp_dim=64,
    iou_head_hidden_dim=32,
    tiny_vit=TinyViTConfig(embed_dims=(16, 32, 32, 48), depths=(1, 1, 1, 1),
                           num_heads=(1, 2, 2, 3), window_sizes=(2, 2, 2, 2), num_classes=0))


def _random_model(cfg: SamConfig) -> Sam:
    torch.manual_seed(0)
    model = Sam.from_config(cfg).eval()
    with torch.no_grad():  # non-zero relative-position tables and biases
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_rel_pos_attention_with_and_without_gradients():
    torch.manual_seed(0)
    g, h, w, d = 3, 4, 5, 8
    q, k, v = (torch.randn(g, h * w, d) for _ in range(3))
    rel_h, rel_w = torch.randn(g, h, w, h), torch.randn(g, h, w, w)
    with torch.no_grad():
        fast = rel_pos_attention(q, k, v, rel_h, rel_w, d**-0.5)
    qg = q.clone().requires_grad_(True)
    fused = rel_pos_attention(qg, k, v, rel_h, rel_w, d**-0.5)
    torch.testing.assert_close(fast, fused.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cfg", [SMALL_VIT, SMALL_TINY_VIT], ids=["vit", "tiny_vit"])
def test_encoder_with_and_without_gradients(cfg):
    model = _random_model(cfg)
    x = torch.rand(1, 3, 64, 48) * 255
    with torch.no_grad():
        fast = model.encode_image(x)
    with torch.enable_grad():
        fused = model.encode_image(x.requires_grad_(True))
    torch.testing.assert_close(fast, fused.detach(), atol=1e-4, rtol=1e-4)


def test_decoder_attention_shared_image_and_per_prompt_paths():
    torch.manual_seed(0)
    att = Attention(32, 4, downsample_rate=2)
    b, t, n = 3, 5, 16
    tokens = torch.randn(b, t, 32)
    image = torch.randn(1, n, 32)
    residual = torch.randn(1, n, 32)
    with torch.no_grad():
        shared = att.tokens_to_image(tokens, image, image)
        per_prompt = att.tokens_to_image(tokens, image.expand(b, -1, -1),
                                         image.expand(b, -1, -1))
        torch.testing.assert_close(shared, per_prompt, atol=1e-5, rtol=1e-5)
        shared = att.image_to_tokens(image, tokens, tokens, residual)
        per_prompt = att.image_to_tokens(image.expand(b, -1, -1), tokens, tokens,
                                         residual.expand(b, -1, -1))
        torch.testing.assert_close(shared, per_prompt, atol=1e-5, rtol=1e-5)


def test_decode_with_and_without_gradients():
    model = _random_model(SMALL_VIT)
    emb = torch.randn(1, 32, 4, 4)
    points = (torch.rand(2, 3, 2) * 64, torch.tensor([[1, 0, 1], [1, 1, 0]]))
    with torch.no_grad():
        fast = model.decode(emb, points)
    slow = model.decode(emb.requires_grad_(True), points)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=1e-5)
