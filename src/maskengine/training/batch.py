"""Turn dataset samples into network inputs and per-prompt targets.

Frames: every tensor here is in the model's *input frame* (image resized so the longest
side is S = image_size, padded right/bottom to S x S).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..data.types import Sample, drop_large
from ..modeling.sam import normalize_and_pad
from ..transforms import ResizeLongestSide


@dataclass(frozen=True)
class Batch:
    """inputs B x 3 x S x S float (normalised, padded: ready for the image encoder);
    targets P x L x L float in [0, 1] (area-averaged masks at the loss size);
    boxes P x 4 (x0, y0, x1, y1) input-frame pixels of each target; image_index P long."""

    inputs: torch.Tensor
    targets: torch.Tensor
    boxes: torch.Tensor
    image_index: torch.Tensor


def _resize_masks(masks: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """N x H x W bool -> N x h x w bool (bilinear on 0/255, threshold at half)."""
    if len(masks) == 0:
        return np.zeros((0, *hw), bool)
    out = [cv2.resize(m.astype(np.uint8) * 255, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
           for m in masks]
    return np.stack(out) > 127


def _place(image: np.ndarray, masks: np.ndarray, size: int, scale: float,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Large-scale jitter: resize by `scale` x the fit-to-`size` factor, crop a random
    size x size window when larger. Returns h x w x 3 uint8 and N x h x w bool (h, w <= size)."""
    h, w = image.shape[:2]
    f = size / max(h, w) * scale
    nh, nw = max(1, int(h * f + 0.5)), max(1, int(w * f + 0.5))
    image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    masks = _resize_masks(masks, (nh, nw))
    y0 = int(rng.integers(0, nh - size + 1)) if nh > size else 0
    x0 = int(rng.integers(0, nw - size + 1)) if nw > size else 0
    return image[y0:y0 + size, x0:x0 + size], masks[:, y0:y0 + size, x0:x0 + size]


def _focus_view(image: np.ndarray, masks: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """The view the focus pass would show the model for one of the sample's small masks
    (chosen at random): the square crop `maskengine.focus.focus_crop` picks around its box
    and a point inside, with every mask cut to it (masks left empty are dropped). The
    sample unchanged when it has no small mask."""
    from ..focus import FocusConfig, focus_crop

    cfg = FocusConfig()
    size = image.shape[:2]
    order = rng.permutation(len(masks))
    for i in order:
        ys, xs = np.nonzero(masks[i])
        if len(ys) == 0:
            continue
        k = int(rng.integers(len(ys)))
        crop = focus_crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1),
                          np.array([[xs[k], ys[k]]]), size, cfg)
        if crop is None:
            continue
        x0, y0, side = crop
        cut = masks[:, y0:y0 + side, x0:x0 + side]
        cut = cut[cut.reshape(len(cut), -1).any(1)]
        return np.ascontiguousarray(image[y0:y0 + side, x0:x0 + side]), cut
    return image, masks


def make_batch(
    samples: Sequence[Sample],
    *,
    image_size: int,
    loss_size: int,
    masks_per_image: int,
    max_mask_fraction: float,
    preprocess: Callable[[torch.Tensor], torch.Tensor],
    rng: np.random.Generator,
    jitter: tuple[float, float] | None = None,
    focus_views: float = 0.0,
) -> Batch:
    """Resize (or jitter) each sample into the input frame, pick up to `masks_per_image`
    masks at random, and build targets at `loss_size`. `preprocess` is `Sam.preprocess`.
    With `focus_views` > 0, that share of the samples is first replaced by a focus-pass
    view around one of its small masks (`_focus_view`)."""
    if image_size % loss_size:
        raise ValueError(f"loss_size {loss_size} must divide image_size {image_size}")
    resize = ResizeLongestSide(image_size)
    inputs, targets, boxes, index = [], [], [], []
    for b, sample in enumerate(samples):
        image, masks = sample.image, sample.masks
        if focus_views > 0 and rng.random() < focus_views:
            image, masks = _focus_view(image, masks, rng)
        masks = drop_large(masks, max_mask_fraction)
        if len(masks) > masks_per_image:
            masks = masks[np.sort(rng.choice(len(masks), masks_per_image, replace=False))]
        if jitter is not None:
            image, masks = _place(image, masks, image_size, float(rng.uniform(*jitter)), rng)
        else:
            image = resize.apply_image(image)
            masks = _resize_masks(masks, image.shape[:2])
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        inputs.append(preprocess(x[None])[0])
        h, w = image.shape[:2]
        full = torch.zeros(len(masks), image_size, image_size)
        full[:, :h, :w] = torch.from_numpy(masks).float()
        k = image_size // loss_size
        tgt = F.avg_pool2d(full[:, None], k)[:, 0] if k > 1 else full
        keep = (tgt > 0.5).flatten(1).any(1)
        for m, t in zip(masks[keep.numpy()], tgt[keep], strict=True):
            ys, xs = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
            boxes.append([xs[0], ys[0], xs[-1], ys[-1]])
            targets.append(t)
            index.append(b)
    s = loss_size
    return Batch(
        inputs=torch.stack(inputs),
        targets=torch.stack(targets) if targets else torch.zeros(0, s, s),
        boxes=torch.tensor(boxes, dtype=torch.float).reshape(-1, 4),
        image_index=torch.tensor(index, dtype=torch.long),
    )


@dataclass(frozen=True)
class StepBatches:
    """A run's micro-batches as a pure function of (seed, step, micro): which images, which
    masks, which jitter. Indexable by i = (step - start) * accumulate + micro, so DataLoader
    workers can build the batches of the next steps while the model trains (a GPU would
    otherwise wait on the CPU drawing scenes); built inline or ahead, the run is the same.

    `dataset` must be picklable to be used by workers (the synthetic and file datasets are)."""

    dataset: object  # data.Dataset
    seed: int
    image_size: int
    loss_size: int
    batch_size: int
    masks_per_image: int
    max_mask_fraction: float
    jitter: bool = False
    focus_views: float = 0.0  # share of samples shown as a focus-pass view (make_batch)
    start: int = 0
    steps: int = 0
    accumulate: int = 1
    rank: int = 0  # data-parallel processes: rank r builds micro-batches r, world + r, ...
    world: int = 1

    def __len__(self) -> int:
        return max(0, self.steps - self.start) * self.accumulate

    def __getitem__(self, i: int) -> tuple[list[int], Batch]:
        step, m = divmod(i, self.accumulate)
        return self.build(self.start + step, m * self.world + self.rank)

    def build(self, step: int, micro: int) -> tuple[list[int], Batch]:
        """(dataset indices, batch) of micro-batch `micro` of step `step`; a draw with no
        usable mask is redrawn (8 tries)."""
        rng = np.random.default_rng([self.seed, step, micro])
        pre = partial(normalize_and_pad, image_size=self.image_size)
        n = len(self.dataset)  # type: ignore[arg-type]
        for _ in range(8):
            keys = [int(k) for k in rng.integers(0, n, self.batch_size)]
            batch = make_batch(
                [self.dataset[k] for k in keys], image_size=self.image_size,  # type: ignore[index]
                loss_size=self.loss_size, masks_per_image=self.masks_per_image,
                max_mask_fraction=self.max_mask_fraction, preprocess=pre, rng=rng,
                jitter=(0.1, 2.0) if self.jitter else None, focus_views=self.focus_views,
            )
            if len(batch.targets):
                return keys, batch
        raise ValueError("the dataset gave 8 batches in a row without a usable mask")
