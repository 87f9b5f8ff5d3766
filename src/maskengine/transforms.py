"""Resize-longest-side and the coordinate transforms that go with it.

The "input frame" is the image resized so that its longest side is the model's
`image_size`; prompts given to the network are in that frame.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def preprocess_shape(h: int, w: int, long_side: int) -> tuple[int, int]:
    """(h, w) after scaling the longest side to `long_side`, rounded half up."""
    scale = long_side / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


class ResizeLongestSide:
    def __init__(self, target_length: int) -> None:
        self.target_length = target_length

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """H x W x 3 uint8 -> h x w x 3 uint8, Pillow bilinear."""
        h, w = preprocess_shape(image.shape[0], image.shape[1], self.target_length)
        return np.array(Image.fromarray(image).resize((w, h), Image.BILINEAR))

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """... x 2 (x, y) original-frame pixels -> input frame (float)."""
        oh, ow = original_size
        h, w = preprocess_shape(oh, ow, self.target_length)
        out = np.array(coords, dtype=np.float64, copy=True)
        out[..., 0] = out[..., 0] * (w / ow)
        out[..., 1] = out[..., 1] * (h / oh)
        return out

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """... x 4 (x0, y0, x1, y1) -> input frame."""
        return self.apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size).reshape(
            -1, 4
        )

    def apply_coords_torch(
        self, coords: torch.Tensor, original_size: tuple[int, int]
    ) -> torch.Tensor:
        oh, ow = original_size
        h, w = preprocess_shape(oh, ow, self.target_length)
        scale = coords.new_tensor([w / ow, h / oh])
        return coords.float() * scale

    def apply_boxes_torch(
        self, boxes: torch.Tensor, original_size: tuple[int, int]
    ) -> torch.Tensor:
        return self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)
