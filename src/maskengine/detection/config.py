"""The detector's settings: the head's shape, its training, and how detections are read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DetectorConfig:
    """A CenterNet-style head on the image embedding (C x E x E, stride image_size / E):
    an objectness heat map with a peak at each object's box centre, and per cell the box
    size and the centre's offset inside the cell."""

    hidden: int = field(default=96, metadata={"help": "channels of the head's conv layers"})
    layers: int = field(default=3, metadata={"help": "3x3 conv layers of the head"})
    upsample: int = field(default=2, metadata={
        "help": "output grid = embedding grid x this (1 or 2): finer centres"})
    steps: int = field(default=600, metadata={"help": "training steps"})
    batch_size: int = field(default=8, metadata={"help": "images per training step"})
    lr: float = field(default=3e-3, metadata={"help": "peak learning rate (AdamW, cosine)"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    size_weight: float = field(default=1.0, metadata={"help": "loss weight of log box size"})
    offset_weight: float = field(default=1.0, metadata={"help": "loss weight of the offset"})
    sigma_fraction: float = field(default=0.3, metadata={
        "help": "heat-map Gaussian sigma as a share of the box's short side (cells)"})
    negative_weight: float = field(default=4.0, metadata={
        "help": "extra loss weight where rejected pre-fills were centred (hard negatives)"})
    flip: bool = field(default=True, metadata={
        "help": "random horizontal flips of the embedding and boxes while training"})
    max_detections: int = field(default=100, metadata={"help": "detections per image"})
    seed: int = field(default=0, metadata={"help": "training seed"})

    def __post_init__(self) -> None:
        if self.upsample not in (1, 2):
            raise ValueError(f"upsample must be 1 or 2, got {self.upsample}")
        if min(self.hidden, self.layers, self.steps, self.batch_size,
               self.max_detections) < 1:
            raise ValueError("hidden, layers, steps, batch_size and max_detections must be >= 1")
        if self.hidden % 8:
            raise ValueError(f"hidden must be a multiple of 8 (group norm), got {self.hidden}")
        if self.lr <= 0 or self.weight_decay < 0 or self.negative_weight < 0:
            raise ValueError("lr must be > 0, weight_decay and negative_weight >= 0")
        if not 0 < self.sigma_fraction <= 1:
            raise ValueError(f"sigma_fraction must be in (0, 1], got {self.sigma_fraction}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
