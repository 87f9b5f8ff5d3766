"""Fitting the IoU head again on focus-pass answers: only the head changes, it fits the true
IoUs better than before, and the written checkpoint loads with the masks unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from maskengine import Predictor, create_model
from maskengine.training.iou_head import IouHeadConfig, collect, correlations, fit, main


@pytest.fixture(scope="module")
def tiny():
    return create_model("tiny").eval()


@pytest.fixture(scope="module")
def rows(tiny):
    return collect(tiny, seed=7000, images=3)


def test_rows_hold_whole_image_and_crop_answers(rows, tiny):
    tokens = tiny.mask_decoder.num_mask_tokens
    assert rows.y.shape == (len(rows.x), tokens) and rows.x.shape[1] == tiny.config.prompt_embed_dim
    assert 0 < rows.crop.sum() < len(rows.crop)  # small objects got a crop answer
    assert ((rows.y >= 0) & (rows.y <= 1)).all()
    # Each crop row belongs to an object that also has its whole-image row.
    plain = set(rows.obj[~rows.crop].tolist())
    assert set(rows.obj[rows.crop].tolist()) <= plain
    assert len(plain) == (~rows.crop).sum()
    c = correlations(tiny.mask_decoder.iou_prediction_head, rows)
    assert set(c) == {"whole_image", "focus", "crops"} and all(-1 <= v <= 1 for v in c.values())


def test_fit_lowers_the_error_and_keeps_the_best_epoch(rows, tiny):
    old = tiny.mask_decoder.iou_prediction_head
    cfg = IouHeadConfig(lr=1e-3, max_epochs=30, patience=30, batch_size=64)
    head, curve = fit(old, rows, rows, cfg)
    with torch.no_grad():
        before = float(((old(rows.x) - rows.y) ** 2).mean())
        after = float(((head(rows.x) - rows.y) ** 2).mean())
    assert after < 0.8 * before
    assert curve[0]["epoch"] == 0 and len(curve) == 31
    best = max(curve, key=lambda r: r["whole_image"] + r["focus"])
    assert correlations(head, rows)["focus"] == pytest.approx(best["focus"], abs=1e-4)
    assert head is not old and all(  # the model's own head is untouched
        torch.equal(p, q) for p, q in zip(old.parameters(),
                                          tiny.mask_decoder.iou_prediction_head.parameters(),
                                          strict=True))


def test_the_written_model_differs_only_in_the_head(tmp_path, tiny):
    # Start from a head whose last layer is negated (it ranks backwards), so the fit must
    # improve on it (the shipped head is fitted already: its best epoch could be the first).
    start = {k: v.clone() for k, v in tiny.state_dict().items()}
    for k in [k for k in start if k.startswith("mask_decoder.iou_prediction_head.")][-2:]:
        start[k] = -start[k]
    torch.save(start, tmp_path / "start.pt")
    main(["--checkpoint", str(tmp_path / "start.pt"), "--train-images", "3", "--val-images",
          "2", "--max-epochs", "10", "--lr", "3e-3", "--batch-size", "16",
          "--out", str(tmp_path / "cal")])
    report = json.loads((tmp_path / "cal.json").read_text())
    assert report["rows"]["train"] > 0 and report["best_epoch"] > 0
    assert report["val_after"]["focus"] > report["val_before"]["focus"]
    new = create_model("tiny", checkpoint=str(tmp_path / "cal.pt")).eval()
    changed = {k for k, v in new.state_dict().items() if not torch.equal(v, start[k])}
    assert changed and all(k.startswith("mask_decoder.iou_prediction_head.") for k in changed)
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    a, b = Predictor(tiny), Predictor(new)
    a.set_image(image)
    b.set_image(image)
    ma, sa, _ = a.predict(np.array([[60.0, 40.0]]), np.array([1]))
    mb, sb, _ = b.predict(np.array([[60.0, 40.0]]), np.array([1]))
    assert np.array_equal(ma, mb) and not np.allclose(sa, sb)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="must be >= 1"):
        IouHeadConfig(train_images=0)
    with pytest.raises(SystemExit):
        main(["--lr", "0", "--out", "/nonexistent/x"])
