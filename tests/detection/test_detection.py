"""The detector's parts on small hand-made inputs: box coding, AP50 / recall, and a head
that learns objects from an embedding where they are visible (and learns to score a rejected
look-alike down)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskengine.detection import (
    Detection,
    DetectorConfig,
    DetectorSample,
    decode_detections,
    evaluate_detections,
    train_detector_head,
)
from maskengine.detection.head import encode_targets
from maskengine.detection.metrics import box_iou


def test_targets_decode_back_to_the_boxes() -> None:
    # Perfect head outputs (built from the targets) give the boxes back, in the original
    # frame (input frame / scale), best first, nothing from the padded part of the grid.
    boxes = torch.tensor([[10.0, 20.0, 50.0, 44.0], [100.0, 60.0, 190.0, 120.0]])
    grid, cell = 32, 8.0
    t = encode_targets(boxes, torch.zeros(0, 4), grid, cell, 0.3)
    assert t.heat.max() == 1.0 and t.heat.view(-1)[t.index].tolist() == [1.0, 1.0]
    heat = torch.full((1, grid, grid), -8.0)
    heat.view(-1)[t.index] = torch.tensor([4.0, 3.0])
    heat[0, 31, 31] = 9.0  # a peak over the padding (the image is 256 x 200 here)
    size = torch.zeros(2, grid, grid)
    off = torch.zeros(2, grid, grid)
    size.view(2, -1)[:, t.index] = t.size.T
    off.view(2, -1)[:, t.index] = t.offset.T
    dets = decode_detections(heat, size, off, cell=cell, input_size=(200, 256),
                             scale=(2.0, 2.0), max_detections=2)
    assert [round(d.score, 3) for d in dets] == [round(float(torch.sigmoid(torch.tensor(4.0))),
                                                       3), 0.953]
    np.testing.assert_allclose([d.box for d in dets], (boxes / 2).numpy(), atol=1e-4)


def test_ap50_and_recall_on_known_cases() -> None:
    truth = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0, 0, 10, 10]])]
    perfect = [[Detection((0, 0, 10, 10), 0.9), Detection((20, 20, 30, 30), 0.8)],
               [Detection((0, 0, 10, 10), 0.7)]]
    r = evaluate_detections(perfect, truth)
    assert (r.ap50, r.recall50, r.boxes, r.detections) == (1.0, 1.0, 3, 3)
    # A confident false positive first, then two hits, one object missed: precision 1/2 at
    # recall 1/3 and 2/3 at 2/3 -> AP = 1/3 * 1/2 ... enveloped: (2/3) * (2/3).
    mixed = [[Detection((50, 50, 60, 60), 0.95), Detection((0, 0, 10, 10), 0.9)],
             [Detection((1, 1, 10, 10), 0.5), Detection((0, 0, 10, 10), 0.4)]]
    r = evaluate_detections(mixed, truth)
    assert r.recall50 == pytest.approx(2 / 3, abs=1e-3)
    assert r.ap50 == pytest.approx((2 / 3) * (2 / 3), abs=1e-3)  # the duplicate is a miss
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == \
        pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 detection lists for 1 images"):
        evaluate_detections(perfect, truth[:1])


def _scene(rng: np.random.Generator, n: int, fake: bool) -> DetectorSample:
    """A 16-channel 16 x 16 'embedding' with a bright 3x3 blob per object (channel 0) and
    one look-alike blob (channel 0 too, plus channel 1) that is no object when `fake`."""
    emb = torch.zeros(16, 16, 16)
    boxes = []
    cells = rng.choice(np.arange(2, 14), size=(n + 1, 2), replace=False)
    for k, (cy, cx) in enumerate(cells):
        emb[0, cy - 1:cy + 2, cx - 1:cx + 2] = 1.0
        box = [cx * 16 - 20.0, cy * 16 - 20.0, cx * 16 + 28.0, cy * 16 + 28.0]
        if k == n:
            emb[1, cy - 1:cy + 2, cx - 1:cx + 2] = 1.0
            neg = torch.tensor([box]) if fake else torch.zeros(0, 4)
            return DetectorSample(emb, torch.tensor(boxes), neg, (256, 256))
        boxes.append(box)
    raise AssertionError


def _peak(prob: torch.Tensor, box: torch.Tensor) -> float:
    """The heat map's (G x G probabilities over 256 pixels) best near the box centre."""
    g = 256 / prob.shape[-1]
    cx, cy = int((box[0] + box[2]) / 2 / g), int((box[1] + box[3]) / 2 / g)
    return float(prob[cy - 1:cy + 2, cx - 1:cx + 2].max())


@pytest.mark.slow
def test_head_learns_objects_and_rejected_look_alikes() -> None:
    rng = np.random.default_rng(0)
    cfg = DetectorConfig(hidden=16, layers=1, steps=150, batch_size=4, lr=1e-2, flip=False,
                         negative_weight=8.0)
    train = [_scene(rng, 3, fake=True) for _ in range(12)]
    head, figures = train_detector_head(train, 256, cfg)
    assert figures["boxes"] == 36 and figures["negatives"] == 12
    test = [_scene(rng, 3, fake=True) for _ in range(6)]
    dets, truths, fake_scores, real_scores = [], [], [], []
    for s in test:
        with torch.no_grad():
            h, w, o = head(s.embedding[None])
        d = decode_detections(h[0], w[0], o[0], cell=256 / h.shape[-1], input_size=(256, 256),
                              scale=(1.0, 1.0), max_detections=10)
        dets.append(d)
        truths.append(s.boxes.numpy())
        prob = h[0, 0].sigmoid()
        fake_scores.append(_peak(prob, s.negatives[0]))
        real_scores += [_peak(prob, b) for b in s.boxes]
    report = evaluate_detections(dets, truths)
    assert report.ap50 > 0.8 and report.recall50 > 0.85  # touching blobs may merge
    # The rejected look-alike scores far below the real objects.
    assert max(fake_scores) < 0.3 * float(np.median(real_scores))


def test_config_and_training_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        DetectorConfig(hidden=12)
    with pytest.raises(ValueError, match="upsample must be 1 or 2"):
        DetectorConfig(upsample=4)
    empty = DetectorSample(torch.zeros(8, 4, 4), torch.zeros(0, 4), torch.zeros(0, 4), (64, 64))
    with pytest.raises(ValueError, match="at least one box"):
        train_detector_head([empty], 64, DetectorConfig(hidden=8, steps=1))
