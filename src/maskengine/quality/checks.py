"""`maskengine check`: rank a project's accepted masks by how likely they are wrong, and
list duplicates, overlaps, near-duplicate images and suspicious shapes.

One pass over the images: each image's live, not rejected masks are decoded once, the
served model is re-asked for each (`signals.ask_model`), the outline is held against the
image's edges, the stored clicks against the mask, and every pair of masks is compared
(COCO RLE IoU). Each mask gets one `score` in [0, 1] (see `combine`); the report lists
masks by score, highest first, so a reviewer sees the likeliest errors first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image as PILImage
from pycocotools import mask as mask_utils
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..engine import rle
from ..engine.models import Image, ImageStatus, Mask
from ..engine.project_dataset import accepted
from ..engine.segmenter import ImageRef, Segmenter
from ..engine.store import Project
from ..engine.versions import load_version, served_version
from . import signals
from .check_config import CheckConfig
from .drift import pooled_embedding
from .imagehash import dhash_file, near_duplicates, similar_vectors


@dataclass
class MaskCheck:
    """What the checks found about one mask. `flags` name the checks it failed."""

    mask_id: int
    image_id: int
    area: int
    source: str
    model_iou_box: float | None = None
    model_iou_clicks: float | None = None
    clicks: int = 0
    click_errors: int = 0
    edge_weakness: float | None = None
    components: int = 1
    duplicate_of: int | None = None
    flags: list[str] = field(default_factory=list)
    score: float = 0.0


@dataclass(frozen=True)
class MaskPair:
    image_id: int
    a: int
    b: int
    iou: float
    kind: str  # "duplicate" or "overlap"


@dataclass(frozen=True)
class ImagePair:
    a: int
    b: int
    split_a: str
    split_b: str
    distance: float  # dHash bits, or 1 - cosine for embeddings
    method: str  # "dhash" or "embedding"

    @property
    def crosses_split(self) -> bool:
        return self.split_a != self.split_b


@dataclass
class CheckReport:
    masks: list[MaskCheck]  # highest score first
    pairs: list[MaskPair]
    images: list[ImagePair]
    done_without_masks: list[int]
    model_version_id: int | None

    def to_dict(self) -> dict:
        return {
            "model_version_id": self.model_version_id,
            "masks": [asdict(m) for m in self.masks],
            "mask_pairs": [asdict(p) for p in self.pairs],
            "image_pairs": [{**asdict(p), "crosses_split": p.crosses_split}
                            for p in self.images],
            "done_without_masks": self.done_without_masks,
            "summary": {
                "masks": len(self.masks),
                "flagged": sum(1 for m in self.masks if m.flags),
                "duplicates": sum(1 for p in self.pairs if p.kind == "duplicate"),
                "overlaps": sum(1 for p in self.pairs if p.kind == "overlap"),
                "near_duplicate_images": len(self.images),
                "across_split": sum(1 for p in self.images if p.crosses_split),
                "done_without_masks": len(self.done_without_masks),
            },
        }


CERTAIN_FLAGS = ("tiny", "whole-image", "duplicate")


def combine(m: MaskCheck) -> float:
    """One score in [0, 1] from the evidence. A tiny, whole-image or duplicate mask is
    surely wrong (1). Otherwise the mean of the model's disagreement and the outline's
    edge weakness (each alone is noisy: a weak model misses small objects, textured
    objects have inner edges), or the share of stored clicks the mask contradicts when
    that is higher: a correct mask never puts its own positive click outside itself, so a
    contradicted click is strong evidence on its own (a swapped mask, a shifted one).
    Fragmented masks are listed but not pushed up: occluded objects are in pieces too."""
    if any(f in CERTAIN_FLAGS for f in m.flags):
        return 1.0
    parts = []
    if m.model_iou_box is not None:
        parts.append(1.0 - max(m.model_iou_box, m.model_iou_clicks or 0.0))
    if m.edge_weakness is not None:
        parts.append(m.edge_weakness)
    evidence = float(np.mean(parts)) if parts else 0.0
    return max(evidence, m.click_errors / m.clicks if m.clicks else 0.0)


def served_segmenter(project: Project, device: str = "cpu") -> Segmenter | None:
    """The served (last promoted) model version with its embedding cache, or None."""
    with project.session() as s:
        mv = served_version(s)
        if mv is None:
            return None
        model = load_version(project, mv, device)
        mv_id, name, number = mv.id, mv.name, mv.round
    return Segmenter(model, mv_id, project.cache_dir / "embeddings", name=name, round=number)


def _load(project: Project) -> list[tuple[Image, list[Mask]]]:
    with project.session() as s:
        images = list(s.scalars(select(Image).order_by(Image.id)))
        masks = s.scalars(
            accepted(select(Mask))
            .options(selectinload(Mask.interactions)).order_by(Mask.id))
        by_image: dict[int, list[Mask]] = {im.id: [] for im in images}
        for m in masks:
            by_image[m.image_id].append(m)
    return [(im, by_image[im.id]) for im in images]


def _pairs(image: Image, masks: list[Mask], cfg: CheckConfig) -> list[MaskPair]:
    if len(masks) < 2:
        return []
    rles = [{"size": [image.height, image.width], "counts": m.rle_counts.encode("ascii")}
            for m in masks]
    ious = np.asarray(mask_utils.iou(rles, rles, [0] * len(rles)))
    out = []
    for i, j in zip(*np.nonzero(np.triu(ious > cfg.overlap_iou, k=1)), strict=True):
        kind = "duplicate" if ious[i, j] > cfg.duplicate_iou else "overlap"
        out.append(MaskPair(image.id, masks[i].id, masks[j].id, float(ious[i, j]), kind))
    return out


def _check_image(project: Project, image: Image, masks: list[Mask], cfg: CheckConfig,
                 segmenter: Segmenter | None) -> tuple[list[MaskCheck], list[MaskPair]]:
    ref = ImageRef(id=image.id, path=project.image_path(image), sha256=image.sha256,
                   height=image.height, width=image.width)
    with PILImage.open(ref.path) as im:
        edges = signals.edge_map(np.asarray(im.convert("RGB")))
    pairs = _pairs(image, masks, cfg)
    later_dup = {p.b: p.a for p in pairs if p.kind == "duplicate"}  # the later copy is suspect
    out = []
    for m in masks:
        bits = rle.decode(m.rle_counts, image.height, image.width)
        clicks = signals.stored_clicks(m.interactions)
        c = MaskCheck(mask_id=m.id, image_id=image.id, area=m.area, source=m.source,
                      clicks=len(clicks), click_errors=signals.click_errors(bits, clicks),
                      edge_weakness=signals.edge_weakness(edges, bits),
                      components=signals.components(bits), duplicate_of=later_dup.get(m.id))
        if segmenter is not None:
            ans = signals.ask_model(segmenter, ref, bits, clicks)
            c.model_iou_box, c.model_iou_clicks = ans.iou_box, ans.iou_clicks
        if m.area < cfg.min_area:
            c.flags.append("tiny")
        if c.components > cfg.max_components:
            c.flags.append("fragmented")
        if m.area > cfg.max_coverage * image.height * image.width:
            c.flags.append("whole-image")
        if c.duplicate_of is not None:
            c.flags.append("duplicate")
        if c.click_errors:
            c.flags.append("contradicts-clicks")
        c.score = combine(c)
        out.append(c)
    return out, pairs


def _image_pairs(project: Project, images: list[Image], cfg: CheckConfig,
                 segmenter: Segmenter | None) -> list[ImagePair]:
    out: list[ImagePair] = []
    def pair(a: int, b: int, d: float, how: str) -> ImagePair:
        return ImagePair(images[a].id, images[b].id, images[a].split, images[b].split, d, how)
    if cfg.hash_distance >= 0:
        hashes = [dhash_file(project.image_path(im)) for im in images]
        out += [pair(p.a, p.b, p.distance, "dhash")
                for p in near_duplicates(hashes, cfg.hash_distance)]
    if cfg.embedding_cosine > 0 and segmenter is not None:
        vecs = np.stack([pooled_embedding(segmenter, project, im) for im in images])
        out += [pair(p.a, p.b, p.distance, "embedding")
                for p in similar_vectors(vecs, cfg.embedding_cosine)]
    return out


def run_checks(project: Project, cfg: CheckConfig | None = None,
               segmenter: Segmenter | None = None,
               progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Check every accepted mask and image of `project`. The served model is loaded unless
    `segmenter` is given or `cfg.model` is False; `progress(done, total)` is called after
    each image."""
    cfg = cfg or CheckConfig()
    own = None
    if cfg.model and segmenter is None:
        segmenter = own = served_segmenter(project, cfg.device)
    if not cfg.model:
        segmenter = None
    try:
        rows = _load(project)
        checks: list[MaskCheck] = []
        pairs: list[MaskPair] = []
        for k, (image, masks) in enumerate(rows):
            if masks:
                c, p = _check_image(project, image, masks, cfg, segmenter)
                checks += c
                pairs += p
            if progress is not None:
                progress(k + 1, len(rows))
        images = [im for im, _ in rows]
        image_pairs = _image_pairs(project, images, cfg, segmenter)
    finally:
        if own is not None:
            own.close()
    empty = [im.id for im, masks in rows if im.status == ImageStatus.done.value and not masks]
    checks.sort(key=lambda c: (-c.score, c.mask_id))
    return CheckReport(masks=checks, pairs=pairs, images=image_pairs, done_without_masks=empty,
                       model_version_id=segmenter.model_version_id if segmenter else None)
