"""Predictor: embed an image once, then answer many prompts on it.

The API is the one users of the official SamPredictor know: `set_image`, `predict`,
`predict_torch`, `get_image_embedding`, `reset_image`; plus `predict_batch` for many boxes
or point sets in one call.
"""

from __future__ import annotations

import numpy as np
import torch

from .modeling import Sam
from .transforms import ResizeLongestSide, preprocess_shape


def _array(value: object, name: str, dtype: type = np.float64) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {type(value).__name__}") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_prompts(
    point_coords: object, point_labels: object, box: object, mask_input: object,
    *, batched: bool, low_res: int,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Validate prompts in the original frame; raise ValueError naming the argument.

    Unbatched shapes: point_coords N x 2, point_labels N, box 4, mask_input 1 x L x L.
    Batched (K prompts): K x N x 2, K x N, K x 4, K x 1 x L x L.
    """
    lead = (-1,) if batched else ()
    coords = labels = boxes = masks = None
    if point_coords is not None:
        if point_labels is None:
            raise ValueError("point_labels must be given with point_coords")
        coords = _array(point_coords, "point_coords")
        labels = _array(point_labels, "point_labels")
        if coords.ndim != 2 + batched or coords.shape[-1] != 2 or coords.shape[-2] == 0:
            want = "K x N x 2" if batched else "N x 2"
            raise ValueError(f"point_coords must have shape {want}, got {coords.shape}")
        if labels.shape != coords.shape[:-1]:
            raise ValueError(
                f"point_labels must have shape {coords.shape[:-1]} to match point_coords, "
                f"got {labels.shape}"
            )
        if not np.isin(labels, (-1, 0, 1)).all():
            bad = sorted(set(labels[~np.isin(labels, (-1, 0, 1))].tolist()))
            raise ValueError(f"point_labels must be -1, 0 or 1, got {bad[:5]}")
    elif point_labels is not None:
        raise ValueError("point_coords must be given with point_labels")
    if box is not None:
        boxes = _array(box, "box")
        if boxes.shape[-1:] != (4,) or boxes.ndim != 1 + batched:
            want = "K x 4" if batched else "4 (x0, y0, x1, y1)"
            raise ValueError(f"box must have shape {want}, got {boxes.shape}")
        b2 = boxes.reshape(-1, 4)
        if (b2[:, 2] < b2[:, 0]).any() or (b2[:, 3] < b2[:, 1]).any():
            raise ValueError("box must satisfy x1 >= x0 and y1 >= y0 (x0, y0, x1, y1 order)")
    if mask_input is not None:
        masks = _array(mask_input, "mask_input", np.float32)
        want = (*lead, 1, low_res, low_res) if batched else (1, low_res, low_res)
        if masks.ndim != len(want) or masks.shape[-3:] != want[-3:]:
            raise ValueError(
                f"mask_input must have shape {'K x ' if batched else ''}1 x {low_res} x "
                f"{low_res} (low-res logits), got {masks.shape}"
            )
    if batched:
        sizes = {len(a) for a in (coords, boxes, masks) if a is not None}
        if len(sizes) > 1:
            raise ValueError(f"point_coords, box and mask_input disagree on K: {sorted(sizes)}")
    return coords, labels, boxes, masks


def input_frame_prompts(
    transform: ResizeLongestSide, original_size: tuple[int, int], coords: np.ndarray | None,
    labels: np.ndarray | None, boxes: np.ndarray | None, masks: np.ndarray | None,
    device: torch.device,
) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None, torch.Tensor | None]:
    """Batched prompts checked by `check_prompts` (original frame) -> the model's inputs:
    points (K x N x 2 input-frame float, K x N int labels) or None, boxes K x 4 input-frame
    or None, mask_input K x 1 x L x L or None."""
    if coords is None and boxes is None and masks is None:
        raise ValueError("give at least one prompt: point_coords, box or mask_input")
    points = None
    if coords is not None:
        points = (torch.as_tensor(transform.apply_coords(coords, original_size),
                                  dtype=torch.float, device=device),
                  torch.as_tensor(labels, dtype=torch.int, device=device))
    if boxes is not None:
        boxes = torch.as_tensor(transform.apply_boxes(boxes, original_size),
                                dtype=torch.float, device=device)
    if masks is not None:
        masks = torch.as_tensor(masks, dtype=torch.float, device=device)
    return points, boxes, masks


def decode_prompts(
    model: Sam, features: torch.Tensor, points: tuple[torch.Tensor, torch.Tensor] | None,
    boxes: torch.Tensor | None, mask_input: torch.Tensor | None, multimask_output: bool,
    input_size: tuple[int, int], original_size: tuple[int, int], *,
    return_logits: bool = False, dense_pe: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input-frame prompts on one image's embedding -> masks B x C x H x W in the original
    frame (bool, or logits with return_logits), IoU B x C, low-res logits B x C x L x L."""
    low_res, iou = model.decode(features, points, boxes, mask_input, multimask_output, dense_pe)
    masks = model.postprocess_masks(low_res, input_size, original_size)
    if not return_logits:
        masks = masks > model.mask_threshold
    return masks, iou, low_res


class Predictor:
    """Prompted segmentation of one image at a time with a `Sam` model."""

    def __init__(self, model: Sam) -> None:
        self.model = model
        self.transform = ResizeLongestSide(model.config.image_size)
        self.reset_image()

    # -- image -------------------------------------------------------------------------
    @torch.inference_mode()
    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """image: H x W x 3 uint8 in `image_format` ("RGB" or "BGR")."""
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"image must have shape H x W x 3, got {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8, got {image.dtype}")
        if image_format != self.model.image_format:
            image = image[..., ::-1]
        resized = self.transform.apply_image(np.ascontiguousarray(image))
        tensor = torch.as_tensor(resized, device=self.model.device)
        self.set_torch_image(tensor.permute(2, 0, 1)[None].float(), image.shape[:2])

    @torch.inference_mode()
    def set_torch_image(
        self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]
    ) -> None:
        """transformed_image: 1 x 3 x h x w float 0..255, already resized (input frame)."""
        s = self.model.config.image_size
        if (transformed_image.ndim != 4 or transformed_image.shape[:2] != (1, 3)
                or max(transformed_image.shape[2:]) != s):
            raise ValueError(
                f"transformed_image must be 1 x 3 x h x w with longest side {s}, got "
                f"{tuple(transformed_image.shape)}"
            )
        self.reset_image()
        self.original_size = (int(original_image_size[0]), int(original_image_size[1]))
        self.input_size = (int(transformed_image.shape[-2]), int(transformed_image.shape[-1]))
        self.features = self.model.encode_image(transformed_image)
        self.is_image_set = True

    def set_embedding(
        self, features: torch.Tensor, original_size: tuple[int, int]
    ) -> None:
        """Use an image embedding computed earlier (a cache) instead of running the encoder."""
        e = self.model.config.embed_size
        if features.ndim != 4 or features.shape[0] != 1 or features.shape[-2:] != (e, e):
            raise ValueError(f"features must be 1 x C x {e} x {e}, got {tuple(features.shape)}")
        self.reset_image()
        self.original_size = (int(original_size[0]), int(original_size[1]))
        self.input_size = preprocess_shape(*self.original_size, self.model.config.image_size)
        self.features = features.to(self.model.device, torch.float32)
        self.is_image_set = True

    def get_image_embedding(self) -> torch.Tensor:
        """1 x C x E x E embedding of the current image."""
        self._require_image()
        return self.features

    def reset_image(self) -> None:
        self.is_image_set = False
        self.features: torch.Tensor | None = None
        self.original_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None

    def _require_image(self) -> None:
        if not self.is_image_set:
            raise ValueError("no image set: call set_image(image) before predicting")

    # -- prompts -----------------------------------------------------------------------
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One prompt in the original frame: point_coords N x 2 (x, y) pixels,
        point_labels N (1 foreground, 0 background), box 4 (x0, y0, x1, y1), mask_input
        1 x L x L low-res logits from an earlier call.

        Returns masks C x H x W (bool, or float logits with return_logits), IoU
        predictions C, low-res logits C x L x L; C = 3 with multimask_output, else 1.
        """
        self._require_image()
        coords, labels, boxes, masks = check_prompts(
            point_coords, point_labels, box, mask_input,
            batched=False, low_res=self.model.config.low_res_size,
        )
        out = self.predict_batch(
            None if coords is None else coords[None],
            None if labels is None else labels[None],
            None if boxes is None else boxes[None],
            None if masks is None else masks[None],
            multimask_output=multimask_output, return_logits=return_logits,
        )
        return out[0][0], out[1][0], out[2][0]

    def predict_batch(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        batch_size: int = 64,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """K prompts on the current image in one call (original frame): point_coords
        K x N x 2, point_labels K x N, boxes K x 4, mask_input K x 1 x L x L. Decoded
        `batch_size` prompts at a time. Returns K x C x H x W, K x C, K x C x L x L."""
        self._require_image()
        coords, labels, boxes, masks = check_prompts(
            point_coords, point_labels, boxes, mask_input,
            batched=True, low_res=self.model.config.low_res_size,
        )
        points, boxes_t, masks_t = input_frame_prompts(
            self.transform, self.original_size, coords, labels, boxes, masks, self.model.device)
        k = next(len(a) for a in (coords, boxes, masks) if a is not None)
        outs = []
        for i in range(0, k, batch_size):
            sl = slice(i, i + batch_size)
            res = self.predict_torch(
                None if points is None else points[0][sl],
                None if points is None else points[1][sl],
                None if boxes_t is None else boxes_t[sl], None if masks_t is None else masks_t[sl],
                multimask_output=multimask_output, return_logits=return_logits,
            )
            outs.append([t.cpu().numpy() for t in res])
        return tuple(np.concatenate([o[j] for o in outs]) for j in range(3))  # type: ignore

    @torch.inference_mode()
    def predict_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched prompts already in the *input frame*: point_coords B x N x 2, point_labels
        B x N, boxes B x 4, mask_input B x 1 x L x L. Returns masks B x C x H x W (original
        frame), IoU B x C, low-res logits B x C x L x L."""
        self._require_image()
        points = None
        if point_coords is not None:
            if point_labels is None:
                raise ValueError("point_labels must be given with point_coords")
            points = (point_coords, point_labels)
        return decode_prompts(self.model, self.features, points, boxes, mask_input,
                              multimask_output, self.input_size, self.original_size,
                              return_logits=return_logits)
