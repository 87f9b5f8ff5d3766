"""A checkpoint that does not fit says why."""

from __future__ import annotations

import pytest
import torch

from maskengine import CheckpointError, create_model
from maskengine.modeling.registry import load_checkpoint

from .conftest import REFERENCE

CKPT = REFERENCE / "checkpoint.pt"


def test_size_mismatch_names_file_size_and_first_key(reference_config):
    with pytest.raises(CheckpointError) as err:
        create_model("vit_b", checkpoint=CKPT)
    msg = str(err.value)
    assert "embed dim 48" in msg and "the model is vit_b" in msg
    assert "first mismatched key image_encoder.pos_embed" in msg
    assert "[1, 32, 32, 48]" in msg


def test_missing_and_unexpected_keys_are_listed(reference_config, tmp_path):
    sd = torch.load(CKPT, weights_only=True)
    del sd["mask_decoder.iou_token.weight"]
    sd["mask_decoder.extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        create_model(reference_config, checkpoint=path)
    msg = str(err.value)
    assert "1 missing keys (first: mask_decoder.iou_token.weight)" in msg
    assert "1 unexpected keys (first: mask_decoder.extra.weight)" in msg


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "truncated.pt"
    path.write_bytes(CKPT.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="could not read checkpoint .*truncated"):
        create_model(checkpoint=path)


def test_text_file_is_reported(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="could not read checkpoint"):
        load_checkpoint(path)


def test_non_state_dict_is_reported(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="does not hold a state_dict"):
        load_checkpoint(path)


def test_not_a_sam_state_dict_cannot_infer_size(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="cannot infer the model size"):
        create_model(checkpoint=path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_model(checkpoint=tmp_path / "nope.pt")


def test_training_checkpoint_wrapper_is_unwrapped(reference_config, tmp_path):
    sd = torch.load(CKPT, weights_only=True)
    path = tmp_path / "wrapped.pt"
    torch.save({"model": sd, "step": 3}, path)
    assert create_model(checkpoint=path).config == reference_config


@pytest.mark.parametrize("shape", [(1, 32, 32, 0), (32, 48), (1, 0, 32, 48), (1, 32, 32, 47)])
def test_wrongly_shaped_pos_embed_is_a_checkpoint_error(tmp_path, shape, reference_config):
    sd = torch.load(CKPT, weights_only=True)
    sd["image_encoder.pos_embed"] = torch.zeros(shape)
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    for spec in (None, "vit_b", reference_config):  # inferred from the file, or given
        with pytest.raises(CheckpointError, match="pos_embed|embed"):
            create_model(spec, checkpoint=path)


def test_one_resolver_for_name_json_and_bundled(tmp_path):
    import json

    from maskengine.modeling.registry import (
        MODEL_CONFIGS,
        bundled_weights_path,
        resolve_checkpoint,
        resolve_config,
    )

    cfg = MODEL_CONFIGS["tiny"]
    path = tmp_path / "model.cfg"  # any existing file holds a config, whatever its suffix
    path.write_text(json.dumps(cfg.to_dict()))
    assert resolve_config("tiny") == resolve_config(path) == resolve_config(cfg) == cfg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_config(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        resolve_config("nope")
    assert resolve_checkpoint("tiny", "bundled") == bundled_weights_path("tiny")
    with pytest.raises(ValueError, match="no bundled weights"):
        resolve_checkpoint("vit_b", "bundled")
    with pytest.raises(ValueError, match="no bundled weights"):
        resolve_checkpoint(str(path), "bundled")  # bundled weights belong to a name
    # A JSON config with the bundled file loads the same weights as the name.
    a, b = create_model(str(path), bundled_weights_path("tiny")), create_model("tiny")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                b.state_dict().values(), strict=True))
