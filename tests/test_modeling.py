"""Contract tests over the registered sizes: state_dict layout, parameter counts, a forward
and backward pass and a checkpoint round trip on small models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from maskengine import Sam, SamConfig, create_model
from maskengine.modeling.registry import MODEL_CONFIGS, infer_config

from .conftest import FIXTURES, REFERENCE


def meta_model(cfg: SamConfig) -> Sam:
    # Shapes only: building ViT-H for real would take GBs and seconds.
    with torch.device("meta"):
        return Sam.from_config(cfg)


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_state_dict_matches_released_checkpoint_layout(name):
    expected = json.loads((FIXTURES / f"keys_{name}.json").read_text())
    got = {k: list(v.shape) for k, v in meta_model(MODEL_CONFIGS[name]).state_dict().items()}
    assert sorted(got) == sorted(expected), set(got) ^ set(expected)
    assert got == expected


@pytest.mark.parametrize(
    ("name", "millions"), [("vit_b", 93.7), ("vit_l", 312.3), ("vit_h", 641.1)]
)
def test_parameter_counts(name, millions):
    model = meta_model(MODEL_CONFIGS[name])
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert round(count(model) / 1e6, 1) == millions
    assert count(model.prompt_encoder) == 6220
    assert count(model.mask_decoder) == 4_058_340


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h", "tiny"])
def test_size_is_inferred_from_state_dict(name):
    sd = meta_model(MODEL_CONFIGS[name]).state_dict()
    assert infer_config(sd) == MODEL_CONFIGS[name]


def test_reference_config_inferred_from_checkpoint(reference_config):
    model = create_model(checkpoint=REFERENCE / "checkpoint.pt")
    assert model.config == reference_config


@pytest.mark.parametrize("cfg_name", ["reference", "tiny"])
def test_forward_backward_and_round_trip(cfg_name, reference_config, tmp_path):
    cfg = reference_config if cfg_name == "reference" else MODEL_CONFIGS["tiny"]
    torch.manual_seed(0)
    model = Sam.from_config(cfg).train()
    s = cfg.image_size
    images = torch.rand(2, 3, s, s * 3 // 4) * 255
    points = (torch.tensor([[[10.0, 20.0]], [[30.0, 5.0]]]), torch.tensor([[1], [0]]))
    low, iou = model(images, points=points, multimask_output=True)
    assert low.shape == (2, 3, cfg.low_res_size, cfg.low_res_size)
    assert iou.shape == (2, 3)
    (low.mean() + iou.mean()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads[:5])
    first = next(model.image_encoder.parameters())  # the patch embedding / the stem
    assert first.grad is not None and first.grad.abs().sum() > 0

    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    again = create_model(checkpoint=path)
    assert again.config == cfg
    model.eval()
    with torch.no_grad():
        a = model(images, points=points)
        b = again(images, points=points)
    torch.testing.assert_close(a, b)


def test_decoder_shared_image_equals_repeated_image(reference_model):
    """One embedding shared by B prompts gives what B copies of it give."""
    torch.manual_seed(1)
    emb = torch.randn(1, 32, 32, 32)
    pts = (torch.rand(4, 2, 2) * 500, torch.tensor([[1, 0], [1, 1], [0, 1], [1, -1]]))
    with torch.no_grad():
        shared = reference_model.decode(emb, pts)
        copied = reference_model.decode(emb.expand(4, -1, -1, -1).contiguous(), pts)
    torch.testing.assert_close(shared, copied, atol=1e-4, rtol=1e-4)


def test_import_does_not_load_torchvision():
    code = "import sys, maskengine; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="unknown model 'vit_x'"):
        create_model("vit_x")


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        SamConfig(image_size=1000)
    with pytest.raises(ValueError, match="encoder_global_attn_indexes"):
        SamConfig(encoder_depth=4, encoder_global_attn_indexes=(7,))
