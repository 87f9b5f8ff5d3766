"""`maskengine drift`: which new images look least like the images the model was trained on.

Reference: the train-split images with accepted masks (what rounds train on). Candidates:
the images without accepted masks (the ones still to annotate). Each image is described by
the served model's image embedding, mean-pooled over its grid (C values, from the same
cache the annotation server fills; missing ones are computed). Channels are standardised
by the reference images' mean and standard deviation, and an image's `distance` is the
mean Euclidean distance to its k nearest reference images.

Calibration: every reference image gets the same distance to the *other* reference images
(leave one out), which is how far a new image of the same kind is expected to be. An
image's `score` is its distance over the median of those; `percentile` the share of
reference images that are nearer to the rest than it is. Images with a score above the
threshold are flagged: annotating them first teaches the model the most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from sqlalchemy import select

from ..engine.models import Image, Mask
from ..engine.project_dataset import accepted
from ..engine.segmenter import ImageRef, Segmenter
from ..engine.store import Project
from .check_config import DriftConfig


class DriftError(ValueError):
    """Drift cannot be measured: no served model, or too few reference images."""


@dataclass(frozen=True)
class DriftItem:
    image_id: int
    path: str
    split: str
    distance: float
    score: float  # distance / median leave-one-out distance of the reference images
    percentile: float  # share of reference images nearer to the others, in [0, 1]
    flagged: bool


@dataclass
class DriftReport:
    model_version_id: int
    reference_images: int
    reference_median: float
    threshold: float
    items: list[DriftItem]  # highest score first: the order to annotate in

    def to_dict(self) -> dict:
        return {"model_version_id": self.model_version_id,
                "reference_images": self.reference_images,
                "reference_median": self.reference_median, "threshold": self.threshold,
                "flagged": sum(i.flagged for i in self.items),
                "images": [asdict(i) for i in self.items]}


def pooled_embedding(segmenter: Segmenter, project: Project, image: Image) -> np.ndarray:
    """The served model's embedding of `image` (cached), mean-pooled to C float32 values."""
    ref = ImageRef(image.id, project.image_path(image), image.sha256, image.height,
                   image.width)
    return segmenter.embedding(ref).float().mean(dim=(0, 2, 3)).numpy()


def knn_distances(reference: np.ndarray, candidates: np.ndarray,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """(candidates' distances M, reference images' leave-one-out distances N) for
    reference N x C and candidates M x C: mean distance to the k nearest reference rows,
    after standardising each column by the reference's mean and std. N >= 2."""
    mu = reference.mean(0)
    sd = reference.std(0)
    sd = np.where(sd > 1e-6 * max(float(sd.max()), 1e-12), sd, np.inf)  # constant: ignored
    r = (reference - mu) / sd
    c = (candidates - mu) / sd

    def nearest(d: np.ndarray, kk: int) -> np.ndarray:
        return np.sort(d, axis=1)[:, :kk].mean(1) if len(d) else np.zeros(0)

    own = np.linalg.norm(r[:, None] - r[None], axis=-1)
    np.fill_diagonal(own, np.inf)
    loo = nearest(own, min(k, len(r) - 1))
    dist = nearest(np.linalg.norm(c[:, None] - r[None], axis=-1), min(k, len(r) - 1))
    return dist, loo


def _images(project: Project) -> tuple[list[Image], list[Image]]:
    """(reference: train images with accepted masks, candidates: images without any)."""
    with project.session() as s:
        with_masks = set(s.scalars(accepted(select(Mask.image_id).distinct())))
        images = list(s.scalars(select(Image).order_by(Image.id)))
    reference = [im for im in images if im.id in with_masks and im.split == "train"]
    return reference, [im for im in images if im.id not in with_masks]


def run_drift(project: Project, cfg: DriftConfig | None = None,
              segmenter: Segmenter | None = None,
              progress: Callable[[int, int], None] | None = None) -> DriftReport:
    """Score every image without accepted masks against the trained-on images. The served
    model is loaded unless `segmenter` is given; `progress(done, total)` follows the
    embeddings (computed once per image and model version, then read from the cache)."""
    from .checks import served_segmenter

    cfg = cfg or DriftConfig()
    reference, candidates = _images(project)
    if len(reference) < 2:
        raise DriftError(f"drift needs at least 2 train images with accepted masks to compare "
                         f"with, the project has {len(reference)}: annotate some first")
    own = None
    if segmenter is None:
        segmenter = own = served_segmenter(project, cfg.device)
        if segmenter is None:
            raise DriftError("the project has no served model yet: start `maskengine serve` "
                             "once (it registers the starting model)")
    try:
        todo = reference + candidates
        vecs = []
        for n, im in enumerate(todo):
            vecs.append(pooled_embedding(segmenter, project, im))
            if progress is not None:
                progress(n + 1, len(todo))
    finally:
        if own is not None:
            own.close()
    x = np.stack(vecs).astype(np.float64)
    dist, loo = knn_distances(x[:len(reference)], x[len(reference):], cfg.neighbours)
    median = float(np.median(loo))
    scale = median if median > 0 else 1.0
    items = [DriftItem(image_id=im.id, path=im.path, split=im.split, distance=float(d),
                       score=float(d / scale), percentile=float((loo < d).mean()),
                       flagged=bool(d / scale > cfg.threshold))
             for im, d in zip(candidates, dist, strict=True)]
    items.sort(key=lambda i: (-i.score, i.image_id))
    return DriftReport(model_version_id=segmenter.model_version_id,
                       reference_images=len(reference), reference_median=median,
                       threshold=cfg.threshold, items=items)
