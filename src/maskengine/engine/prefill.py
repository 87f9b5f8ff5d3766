"""Stage 2, semi-automatic: pre-fill the confident masks of images not labelled yet.

For each image: the project's detector (trained on the served model's embeddings) finds
boxes; the served model is prompted with each box; a mask is kept when it passes the
confidence filters (detector score, predicted IoU, stability, area), survives non-maximum
suppression against the image's other proposals and does not repeat a mask the image
already has (live masks, and pre-fills a person rejected). Kept masks are stored as
`proposed` pre-filled masks with their model and detector versions and scores; a person
confirms, edits or rejects each (`services.decide_prefill`), and labels what is missing.

Idempotent and resumable: each image is done in one transaction together with a
`PrefilledImage` row, and images that the current detector has pre-filled are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..masks import nms
from . import rle, services
from .detectors import DetectorError, current_detector, detect, image_ref, load_detector
from .models import (
    DetectorVersion,
    Image,
    ImageStatus,
    Interaction,
    Mask,
    MaskSource,
    PrefilledImage,
    PrefillState,
    Role,
    User,
)
from .prefill_config import PrefillConfig
from .segmenter import Segmenter
from .store import Project


@dataclass(frozen=True)
class Proposal:
    mask: np.ndarray  # H x W bool
    box: tuple[float, float, float, float]  # the detection's box, XYXY original frame
    detector_score: float
    iou: float
    stability: float


@dataclass(frozen=True)
class PrefillSummary:
    detector_id: int
    images: int  # pre-filled now
    skipped: int  # pre-filled by this detector before
    detections: int
    proposed: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """N x H x W and M x H x W bool -> N x M IoU."""
    fa = torch.from_numpy(a.reshape(len(a), -1)).float()
    fb = torch.from_numpy(b.reshape(len(b), -1)).float()
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return (inter / union.clamp(min=1)).numpy()


def propose(seg: Segmenter, head, det_cfg, ref, existing: np.ndarray,  # noqa: ANN001
            cfg: PrefillConfig) -> tuple[int, list[Proposal]]:
    """Detections on one image -> (number of detections, proposals that pass the filters,
    best first). `existing`: K x H x W bool masks the image has already."""
    dets = [d for d in detect(head, det_cfg, seg.embedding(ref), seg.model.config.image_size,
                              ref.height, ref.width) if d.score >= cfg.min_detector_score]
    if not dets:
        return 0, []
    outs = seg.decode_boxes(ref, np.array([d.box for d in dets]), multimask=cfg.multimask,
                            stability_offset=cfg.stability_offset)
    cands = [Proposal(o.mask, d.box, d.score, o.iou, o.stability)
             for d, o in zip(dets, outs, strict=True)
             if o.iou >= cfg.min_predicted_iou and o.stability >= cfg.min_stability
             and int(o.mask.sum()) >= max(cfg.min_area, 1)]
    if not cands:
        return len(dets), []
    boxes = torch.tensor([rle.encode(c.mask).bbox for c in cands], dtype=torch.float32)
    boxes[:, 2:] += boxes[:, :2]
    score = torch.tensor([c.detector_score * c.iou for c in cands])
    cands = [cands[i] for i in nms(boxes, score, cfg.nms_iou).tolist()]
    if len(existing):
        ious = _mask_iou(np.stack([c.mask for c in cands]), existing)
        cands = [c for c, row in zip(cands, ious, strict=True) if row.max() <= cfg.existing_iou]
    return len(dets), cands[:cfg.max_masks]


def _targets(project: Project, cfg: PrefillConfig, detector_id: int,
             images: Sequence[int] | None) -> tuple[list[int], int]:
    """Image ids to pre-fill (todo images of the split, or the ids given) and how many of
    them this detector did already."""
    with project.session() as s:
        if images:
            known = set(s.scalars(select(Image.id).where(Image.id.in_(list(images)))))
            missing = [i for i in images if i not in known]
            if missing:
                raise ValueError(f"no image with id {', '.join(map(str, missing))}")
            ids = list(dict.fromkeys(images))
        else:
            q = select(Image.id).where(Image.status == ImageStatus.todo.value)
            if cfg.split != "all":
                q = q.where(Image.split == cfg.split)
            ids = list(s.scalars(q.order_by(Image.id)))
        done = set(s.scalars(select(PrefilledImage.image_id).where(
            PrefilledImage.detector_version_id == detector_id)))
    return [i for i in ids if i not in done], sum(i in done for i in ids)


def prefill_user(s, name: str | None = None) -> User:  # noqa: ANN001
    """The user a pre-fill is logged under: `name`, or the first admin."""
    q = select(User).where(User.name == name) if name else (
        select(User).where(User.role == Role.admin.value).order_by(User.id).limit(1))
    user = s.scalar(q)
    if user is None:
        raise ValueError(f"user {name!r} does not exist" if name else "the project has no admin")
    return user


def prefill_project(
    project: Project, seg: Segmenter, cfg: PrefillConfig | None = None, *,
    images: Sequence[int] | None = None, user: str | None = None, progress: bool = False,
    on_image: Callable[[int, int], None] | None = None,
) -> PrefillSummary:
    """Pre-fill the images not labelled yet (status todo, of `cfg.split`), or the ids in
    `images`, with the newest detector of `seg`'s model version. `on_image(done, total)` is
    called after each image and may raise to stop (what is done stays)."""
    cfg = cfg or PrefillConfig()
    with project.session() as s:
        dv = current_detector(s, seg.model_version_id)
        if dv is None:
            raise DetectorError(
                f"no detector for the served model version {seg.model_version_id}: train one "
                "with `maskengine detector PROJECT` (a round trains one too)")
        head, det_cfg = load_detector(project, dv)
        dv_id = dv.id
        user_id = prefill_user(s, user).id
    todo, skipped = _targets(project, cfg, dv_id, images)
    t_start = time.perf_counter()
    totals = [0, 0, 0]  # images, detections, proposed

    def one(image_id: int) -> None:
        t0 = time.perf_counter()
        with project.session() as s:
            image = s.get(Image, image_id)
            ref = image_ref(project, image)
            existing = [rle.decode(c, image.height, image.width) for c in s.scalars(
                select(Mask.rle_counts).where(Mask.image_id == image_id,
                                              (Mask.deleted_at.is_(None))
                                              | (Mask.prefill_state
                                                 == PrefillState.rejected.value)))]
        n_det, props = propose(seg, head, det_cfg, ref,
                               np.stack(existing) if existing else np.zeros((0, 1, 1)), cfg)
        try:
            with project.session() as s:
                author = s.get(User, user_id)
                for p in props:
                    services.create_mask(
                        s, image_id=image_id, counts=rle.encode(p.mask).counts, author=author,
                        source=MaskSource.prefill, model_version_id=seg.model_version_id,
                        predicted_iou=p.iou, stability_score=p.stability, proposed=True,
                        meta={"detector_version_id": dv_id,
                              "detector_score": round(p.detector_score, 4),
                              "box": [round(v, 1) for v in p.box], "prompt": "box"})
                s.add(PrefilledImage(image_id=image_id, detector_version_id=dv_id,
                                     detections=n_det, proposed=len(props),
                                     seconds=round(time.perf_counter() - t0, 3)))
        except IntegrityError:
            return  # another run pre-filled this image meanwhile: its masks stand
        totals[0] += 1
        totals[1] += n_det
        totals[2] += len(props)

    _run(todo, one, progress, on_image)
    return PrefillSummary(detector_id=dv_id, images=totals[0], skipped=skipped,
                          detections=totals[1], proposed=totals[2],
                          seconds=round(time.perf_counter() - t_start, 1))


def _run(todo: list[int], one: Callable[[int], None], progress: bool,
         on_image: Callable[[int, int], None] | None) -> None:
    if not progress:
        for k, image_id in enumerate(todo):
            one(image_id)
            if on_image is not None:
                on_image(k + 1, len(todo))
        return
    from rich.progress import Progress

    with Progress() as bar:
        task = bar.add_task("pre-filling", total=len(todo))
        for k, image_id in enumerate(todo):
            one(image_id)
            bar.advance(task)
            if on_image is not None:
                on_image(k + 1, len(todo))


def prefill_stats(s) -> dict:  # noqa: ANN001
    """Pre-filled masks by state, and the people's decisions: count, seconds in all."""
    states = dict(s.execute(select(Mask.prefill_state, func.count(Mask.id))
                            .where(Mask.prefill_state != "").group_by(Mask.prefill_state)).all())
    decisions = {k: {"count": int(n), "seconds": round(float(sec or 0.0), 3)}
                 for k, n, sec in s.execute(
                     select(Interaction.kind, func.count(Interaction.id),
                            func.sum(Interaction.seconds))
                     .join(Mask, Mask.id == Interaction.mask_id)
                     .where(Mask.prefill_state != "",
                            Interaction.kind.in_(["confirm", "edit", "reject"]))
                     .group_by(Interaction.kind))}
    images = s.scalar(select(func.count(PrefilledImage.image_id.distinct()))) or 0
    detectors = s.scalar(select(func.count(DetectorVersion.id))) or 0
    return {"masks": {st.value: int(states.get(st.value, 0)) for st in PrefillState},
            "decisions": {k: decisions.get(k, {"count": 0, "seconds": 0.0})
                          for k in ("confirm", "edit", "reject")},
            "images": int(images), "detectors": int(detectors)}
