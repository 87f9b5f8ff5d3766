"""The record every dataset yields."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One image with its instance masks.

    image: H x W x 3 uint8 RGB. masks: N x H x W bool, in the image's own frame.
    name: an identifier (file stem or synthetic id).
    """

    image: np.ndarray
    masks: np.ndarray
    name: str

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(
                f"{self.name}: image must be H x W x 3 uint8, got {self.image.shape} "
                f"{self.image.dtype}"
            )
        if self.masks.ndim != 3 or self.masks.shape[1:] != self.image.shape[:2]:
            raise ValueError(
                f"{self.name}: masks must be N x {self.image.shape[0]} x "
                f"{self.image.shape[1]}, got {self.masks.shape}"
            )


def drop_large(masks: np.ndarray, max_fraction: float) -> np.ndarray:
    """Keep masks (N x H x W bool) covering at most `max_fraction` of the image, and not
    empty. The paper drops masks over 90% of the image from training."""
    if len(masks) == 0:
        return masks
    area = masks.reshape(len(masks), -1).mean(axis=1)
    return masks[(area <= max_fraction) & (area > 0)]
