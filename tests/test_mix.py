"""MixedDataset: new data with a share of replayed old data."""

from __future__ import annotations

import pytest

from maskengine.data import SceneConfig, SyntheticDataset
from maskengine.data.mix import MixedDataset


def test_replay_share_and_order() -> None:
    cfg = SceneConfig(height=32, width=32, min_objects=1, max_objects=2)
    new, old = SyntheticDataset(4, seed=1, config=cfg), SyntheticDataset(3, seed=2, config=cfg)
    mix = MixedDataset(new, old, 0.5)
    assert len(mix) == 8  # 4 new + 4 replayed: half of all items
    assert [mix[i].name for i in range(4)] == [new[i].name for i in range(4)]
    assert [mix[i].name for i in range(4, 8)] == [old[i % 3].name for i in range(4)]
    assert len(MixedDataset(new, old, 0.0)) == 4
    assert len(MixedDataset(new, old, 0.75)) == 16
    with pytest.raises(IndexError):
        mix[8]
    with pytest.raises(ValueError, match="replay_fraction"):
        MixedDataset(new, old, 1.0)
