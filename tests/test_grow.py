"""Deepening a trained TinyViT SAM (modeling/grow.py): the grown model computes exactly what
the trained one did, its new blocks learn, the files it writes load, and bad requests are
named."""

from __future__ import annotations

import json

import pytest
import torch

from maskengine import Sam, SamConfig, create_model
from maskengine.config import TinyViTConfig
from maskengine.modeling.grow import deepen, main

SMALL = SamConfig(image_size=64, patch_size=8, prompt_embed_dim=32, decoder_mlp_dim=64,
                  iou_head_hidden_dim=32,
                  tiny_vit=TinyViTConfig(embed_dims=(16, 24, 32), depths=(1, 1, 2),
                                         num_heads=(1, 2, 2), window_sizes=(7, 4, 4)))


def _trained_like() -> Sam:
    """Random weights and batch-norm statistics away from their defaults, as after training."""
    torch.manual_seed(0)
    model = Sam.from_config(SMALL)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return model.eval()


def _outputs(model: Sam, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        emb = model.image_encoder(image)
        sparse, dense = model.prompt_encoder(
            points=(torch.tensor([[[20.0, 30.0]]]), torch.tensor([[1]])), boxes=None,
            masks=None)
        masks, iou = model.mask_decoder(emb, model.prompt_encoder.get_dense_pe(), sparse,
                                        dense, multimask_output=True)
    return emb, masks, iou


def test_grown_model_computes_what_the_trained_one_did():
    model = _trained_like()
    grown = deepen(model, (1, 3, 4))
    assert grown.config.tiny_vit.depths == (1, 3, 4)
    assert [len(layer.blocks) for layer in grown.image_encoder.layers] == [1, 3, 4]
    n = lambda m: sum(p.numel() for p in m.image_encoder.parameters())  # noqa: E731
    assert n(grown) > n(model)
    image = torch.randn(1, 3, 64, 64)
    for a, b in zip(_outputs(model, image), _outputs(grown, image), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    # The identity is not trivial: a grown model with a new block's MLP disturbed differs.
    with torch.no_grad():
        grown.image_encoder.layers[1].blocks[2].mlp.fc2.weight.normal_()
    assert not torch.allclose(_outputs(grown, image)[0], _outputs(model, image)[0])


def test_new_blocks_receive_gradients_with_frozen_batch_norm():
    grown = deepen(_trained_like(), (1, 2, 2))
    grown.train()
    for m in grown.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    grown.image_encoder(torch.randn(2, 3, 64, 64)).square().mean().backward()
    new = grown.image_encoder.layers[1].blocks[1]
    for p in (new.attn.proj.weight, new.mlp.fc2.weight, new.local_conv.c.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_cli_writes_weights_and_config_that_load(tmp_path, capsys):
    src = tmp_path / "trained.pt"
    torch.save(_trained_like().state_dict(), src)
    (tmp_path / "small.json").write_text(json.dumps(SMALL.to_dict()))
    main(["--model", str(tmp_path / "small.json"), "--checkpoint", str(src),
          "--depths", "1,2,3", "--out", str(tmp_path / "grown")])
    assert "depths [1, 2, 3]" in capsys.readouterr().out
    loaded = create_model(tmp_path / "grown.json", tmp_path / "grown.pt")
    assert loaded.config.tiny_vit.depths == (1, 2, 3)
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize("depths, message", [
    ((1, 2), "give 3 depths"),
    ((2, 1, 2), "stage 0 is convolutional"),
    ((1, 1, 1), "stages [2] would lose blocks"),
])
def test_bad_depths_are_named(depths, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        deepen(_trained_like(), depths)


def test_a_vit_model_cannot_be_deepened():
    vit = Sam.from_config(SamConfig(encoder_embed_dim=32, encoder_depth=1, encoder_num_heads=2,
                                    encoder_global_attn_indexes=(0,), image_size=64,
                                    prompt_embed_dim=32, decoder_mlp_dim=64,
                                    iou_head_hidden_dim=32))
    with pytest.raises(ValueError, match="only a TinyViT"):
        deepen(vit, (1, 1))


def test_cli_names_bad_depths(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--depths", "2,x", "--out", str(tmp_path / "g")])
    assert "give integers" in capsys.readouterr().err
