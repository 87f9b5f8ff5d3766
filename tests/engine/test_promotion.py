"""The promotion gate: worse only beyond the tolerance plus the paired noise."""

from __future__ import annotations

import numpy as np
import pytest

from maskengine.engine.promotion import gate, judge, promotion_note
from maskengine.engine.rounds import RoundConfig
from maskengine.evaluation import InteractiveReport


def report(curves: np.ndarray) -> InteractiveReport:
    return InteractiveReport(default=curves, oracle=curves)


def curves_reaching(first: np.ndarray, clicks: np.ndarray, max_clicks: int = 20) -> np.ndarray:
    """K x C curves: first-click IoU `first`, IoU 0.95 from click `clicks` on (never when
    clicks > max_clicks)."""
    c = np.repeat(first[:, None], max_clicks, 1).astype(np.float64)
    for i, k in enumerate(clicks):
        if k <= max_clicks:
            c[i, k - 1:] = 0.95
    return c


def random_objects(seed: int, k: int, most_clicks: int):  # noqa: ANN201
    """(rng, first-click IoUs, clicks to 0.95) of k random validation objects."""
    rng = np.random.default_rng(seed)
    return rng, rng.uniform(0.3, 0.8, k), rng.integers(3, most_clicks, k)


def test_a_noisy_rise_of_noc90_with_a_better_first_click_is_promoted_not_a_real_fall():
    k = 200
    rng, first, clicks = random_objects(0, k, 25)
    old = report(curves_reaching(first, clicks))
    # Better at the first click; clicks to 0.9 shuffled by -3..+4 (a small mean rise).
    jitter = rng.integers(-3, 5, k)
    new = report(curves_reaching(np.minimum(first + 0.02, 1.0), np.maximum(clicks + jitter, 1)))
    why, changes = judge(new, old)
    noc = changes["noc@90"]
    assert noc["se"] > 0 and changes["miou@1"]["new"] > changes["miou@1"]["old"]
    assert 0 < noc["new"] - noc["old"] < 2 * noc["se"]  # a rise within the noise
    assert judge(new, old, noise_z=0.0)[0].startswith("validation NoC@90 rose")  # strict
    assert why is None
    assert promotion_note(changes).startswith("promoted: validation mIoU@1")
    assert "(within noise: s.e." in promotion_note(changes)

    # A model worse on every object is worse whatever the noise allowance.
    worse = report(curves_reaching(first - 0.1, clicks + 2))
    why, changes = judge(worse, old)
    assert why is not None and why.startswith("validation mIoU@1 fell")
    assert changes["miou@1"]["new"] == pytest.approx(changes["miou@1"]["old"] - 0.1)
    why, _ = judge(report(curves_reaching(first, clicks + 3)), old)
    assert why is not None and "NoC@90 rose" in why and "allowed" in why


def test_the_gate_refuses_figures_of_different_objects_and_bad_settings():
    a = report(np.full((5, 20), 0.5))
    b = report(np.full((6, 20), 0.5))
    with pytest.raises(ValueError, match="different objects"):
        judge(a, b)
    with pytest.raises(ValueError, match="noise_z"):
        RoundConfig(noise_z=-1.0)
    note = promotion_note(judge(a, a)[1])
    assert "within noise" not in note


def test_the_gate_also_holds_the_new_model_to_the_starting_version():
    k = 300
    _, first, clicks = random_objects(1, k, 15)
    start = report(curves_reaching(first, clicks))
    # The served model drifted down within the noise of one step; the new one a bit more.
    # Per-object changes of +-0.1 around the drift (two patterns, so the steps are paired
    # noise, not a constant shift): s.e. 0.0058 a step, 0.0082 over both.
    swing = 0.1 * np.tile([1, -1], k // 2)
    served_iou = first - 0.01 + swing
    served = report(curves_reaching(served_iou, clicks))
    new = report(curves_reaching(served_iou - 0.008 + 0.1 * np.tile([1, 1, -1, -1], k // 4),
                                 clicks))
    assert judge(new, served)[0] is None  # each step alone is within the noise ...
    calls = []

    def start_report() -> InteractiveReport:
        calls.append(1)
        return start

    why, note, figures = gate(new, served, "version 1 (tiny)", start_report)
    # ... but against the start the fall is real, and the round is not promoted.
    assert why is not None and why.startswith("against the starting version 1 (tiny): "
                                              "validation mIoU@1 fell")
    assert figures["promotion_vs_start"]["miou@1"]["old"] == pytest.approx(first.mean())
    assert set(figures) == {"parent_val", "promotion", "start_val", "promotion_vs_start"}
    # A new model as good as the start passes both and says so in its note.
    why, note, figures = gate(start, served, "version 1 (tiny)", start_report)
    assert why is None and note.startswith("promoted: validation mIoU@1")
    assert "; against the starting version 1 (tiny): validation mIoU@1" in note
    # No starting version to compare with (the served one is it): one comparison only.
    why, note, figures = gate(new, served, "version 2", None)
    assert why is None and "promotion_vs_start" not in figures
    # A model that fails against the served one does not cost the second evaluation.
    calls.clear()
    worse = report(curves_reaching(first - 0.2, clicks))
    why, _, _ = gate(worse, served, "version 1", start_report)
    assert why.startswith("validation mIoU@1 fell") and not calls
