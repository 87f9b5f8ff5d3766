"""MobileSAM's TinyViT encoder (`vit_t`): the released layout, size inference, clear errors,
a general configuration (any input size, stride, widths), batch norm in training, and the
jobs that must work with it unchanged. Output parity with the official code is in
test_parity.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from maskengine import MaskGenerator, Predictor, Sam, SamConfig, create_model
from maskengine.config import TinyViTConfig
from maskengine.modeling import CheckpointError
from maskengine.modeling.registry import MODEL_CONFIGS, describe, infer_config
from maskengine.modeling.tiny_vit import merge_strides
from maskengine.training import Trainer, TrainingConfig

from .conftest import FIXTURES, REFERENCE

VIT_T_SMALL = FIXTURES / "reference_vit_t"
# A TinyViT of another shape than MobileSAM's: input 96, stride 8, three stages, a last
# stage 40 wide, windows that do not divide the grid (12 x 12 tokens, window 5).
SMALL = SamConfig(image_size=96, patch_size=8, prompt_embed_dim=32, decoder_mlp_dim=64,
                  iou_head_hidden_dim=32,
                  tiny_vit=TinyViTConfig(embed_dims=(16, 24, 40), depths=(1, 1, 2),
                                         num_heads=(1, 2, 4), window_sizes=(7, 5, 5),
                                         num_classes=0))


def test_vit_t_has_the_released_keys_and_size():
    expected = json.loads((FIXTURES / "keys_vit_t.json").read_text())
    with torch.device("meta"):
        model = Sam.from_config(MODEL_CONFIGS["vit_t"])
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert round(count(model) / 1e6, 1) == 10.1
    assert count(model.prompt_encoder) == 6220 and count(model.mask_decoder) == 4_058_340
    assert infer_config(model.state_dict()) == MODEL_CONFIGS["vit_t"]


def test_released_layout_file_loads_strictly_by_name_and_by_inference(tmp_path):
    torch.manual_seed(0)
    sd = Sam.from_config(MODEL_CONFIGS["vit_t"]).state_dict()
    path = tmp_path / "mobile_sam.pt"
    torch.save(sd, path)
    by_name = create_model("vit_t", checkpoint=path)
    inferred = create_model(checkpoint=path)
    assert inferred.config == MODEL_CONFIGS["vit_t"] and describe(inferred.config) == "vit_t"
    for k, v in sd.items():
        assert torch.equal(by_name.state_dict()[k], v)
        assert torch.equal(inferred.state_dict()[k], v)


def test_official_fixture_config_is_inferred():
    official = json.loads((VIT_T_SMALL / "config.json").read_text())
    model = create_model(checkpoint=VIT_T_SMALL / "checkpoint.pt")
    tv = model.config.tiny_vit
    enc = official["image_encoder"]
    assert list(tv.embed_dims) == enc["embed_dims"] and list(tv.depths) == enc["depths"]
    assert list(tv.num_heads) == enc["num_heads"]
    assert list(tv.window_sizes) == enc["window_sizes"]
    assert model.config.decoder_mlp_dim == official["mask_decoder"]["transformer_mlp_dim"]
    assert model.config.iou_head_hidden_dim == official["mask_decoder"]["iou_head_hidden_dim"]
    assert model.config.image_size == 1024 and model.config.embed_size == 64


def test_files_that_do_not_fit_vit_t_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"custom TinyViT .* but the model is vit_t"):
        create_model("vit_t", checkpoint=VIT_T_SMALL / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="but the model is vit_t.*missing keys"):
        create_model("vit_t", checkpoint=REFERENCE / "checkpoint.pt")
    sd = torch.load(VIT_T_SMALL / "checkpoint.pt", weights_only=True)
    del sd["image_encoder.layers.1.blocks.0.attn.attention_biases"]
    torch.save(sd, tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="attention_biases"):
        create_model(checkpoint=tmp_path / "cut.pt")
    (tmp_path / "trunc.pt").write_bytes((VIT_T_SMALL / "checkpoint.pt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        create_model("vit_t", checkpoint=tmp_path / "trunc.pt")


def test_attention_bias_follows_the_loaded_weights_in_eval_mode():
    # The official encoder caches its bias table at eval(); a load after that is ignored.
    model = create_model(SMALL)  # built in eval mode
    x = torch.rand(1, 3, 96, 96) * 255
    with torch.no_grad():
        before = model.encode_image(x)
        model.image_encoder.layers[1].blocks[0].attn.attention_biases.add_(1.0 + torch.arange(
            2 * 25, dtype=torch.float).view(2, 25) / 10)
        after = model.encode_image(x)
    assert (before - after).abs().max() > 1e-3


def test_general_config_any_input_stride_and_width(tmp_path):
    assert merge_strides(SMALL.tiny_vit, 8) == [2, 1]
    assert merge_strides(MODEL_CONFIGS["vit_t"].tiny_vit, 16) == [2, 2, 1]
    torch.manual_seed(0)
    model = Sam.from_config(SMALL).train()
    images = torch.rand(2, 3, 96, 72) * 255
    points = (torch.tensor([[[10.0, 20.0]], [[30.0, 5.0]]]), torch.tensor([[1], [0]]))
    low, iou = model(images, points=points)
    assert low.shape == (2, 3, 48, 48) and iou.shape == (2, 3)
    (low.mean() + iou.mean()).backward()
    enc = model.image_encoder
    assert enc.patch_embed.seq[0].c.weight.grad.abs().sum() > 0
    assert enc.layers[2].blocks[1].attn.attention_biases.grad.abs().sum() > 0
    assert not hasattr(enc, "head")  # num_classes 0: no ImageNet head
    path = tmp_path / "small.pt"
    torch.save(model.state_dict(), path)
    again = create_model(SMALL, checkpoint=path)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images, points=points), again(images, points=points))
    assert SamConfig(**json.loads(json.dumps(SMALL.to_dict()))) == SMALL


def test_bad_tiny_vit_configs_are_refused():
    with pytest.raises(ValueError, match="one entry per stage"):
        TinyViTConfig(embed_dims=(16, 32), depths=(1,), num_heads=(1, 2), window_sizes=(7, 7))
    with pytest.raises(ValueError, match="not divisible"):
        TinyViTConfig(embed_dims=(16, 30), depths=(1, 1), num_heads=(1, 4), window_sizes=(7, 7))
    with pytest.raises(ValueError, match="patch_size 32 is not one"):
        SamConfig(patch_size=32, tiny_vit=SMALL.tiny_vit)


def test_predictor_and_generator_work_unchanged():
    model = create_model(SMALL)
    image = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    predictor = Predictor(model)
    predictor.set_image(image)
    masks, scores, low = predictor.predict(point_coords=np.array([[40, 30]]),
                                           point_labels=np.array([1]))
    assert masks.shape == (3, 60, 80) and low.shape == (3, 48, 48)
    records = MaskGenerator(model, points_per_side=4, pred_iou_thresh=0.0,
                            stability_score_thresh=0.0).generate(image)
    assert all(r.segmentation.shape == (60, 80) for r in records)


@pytest.mark.parametrize("checkpoint", [False, True])
def test_batch_norm_statistics_train_from_scratch_and_stay_when_fine_tuning(tmp_path, checkpoint):
    cfg_path = tmp_path / "small.json"
    cfg_path.write_text(json.dumps(SMALL.to_dict()))
    init = None
    if checkpoint:
        init = tmp_path / "init.pt"
        torch.save(Sam.from_config(SMALL).state_dict(), init)
    cfg = TrainingConfig(out=str(tmp_path / "run"), model=str(cfg_path), steps=1,
                         checkpoint=None if init is None else str(init), num_images=2,
                         scene_size=96, batch_size=2, masks_per_image=2, points=1, mask_only=0)
    trainer = Trainer(cfg)
    bn = trainer.model.image_encoder.patch_embed.seq[0].bn
    mean = bn.running_mean.clone()
    trainer.train_step()
    assert torch.equal(bn.running_mean, mean) == checkpoint
    assert trainer.model.image_encoder.patch_embed.seq[0].c.weight.grad is not None
